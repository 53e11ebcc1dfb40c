"""Every Triton kernel we ship compiles for sm_80 (A100) and sm_90 (H100/H200), with every autotune config, on CPU;
configs that cannot fit a target's shared memory are pruned before launch.

`python -m qwen25.attention.gpu_targets --target T` compiles each variant (the varlen forward, the two backward
kernels and the DCA forward x their autotune configs x bf16/fp16 x head_dim 64/128, plus the backward's
preprocess) through the ptxas inside the triton wheel and reads its shared memory. Each target runs in its own
process (TRITON_INTERPRET unset: the conftest sets it for the kernel tests in this process), both at once on the
machine's two cores. The bf16 builds (40 per target, ~4.5 min) are in the slow tier, which CI runs; the fp16 builds
have the same shared memory (2-byte elements; checked here against the same table) and are marked `kernel` too, so
they run with `make test-grids` (by hand): both dtypes at once took 533 s here, which CI's 30 minutes cannot spare.
Run with `-s` to see the counts.

The autotuners prune by the recorded table `qwen25/attention/shared_memory.json` (`triton_flash.select_fitting`):
the test checks the table matches what the compiler reports today and that the prune drops exactly the variants
over each target's limit. On sm_80 that is the DCA forward's 128 x 64 blocks at head_dim 128 (237,568 B of
166,912): without the prune an A100 would compile and try it at launch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qwen25.attention import triton_flash

REPO = Path(__file__).resolve().parents[2]

EXPECTED_VARIANTS = {"fwd": 10, "dkdv": 10, "dq": 10, "dca_fwd": 8, "bwd_preprocess": 2}  # per dtype: 2 head_dims
# what each target must prune: the variants over its limit (measured with triton 3.9; the test re-derives them)
EXPECTED_PRUNED = {"sm_80": ["dca_fwd/d128/M128N64w8s2"], "sm_90": []}


def compile_targets(out: Path, dtype: str) -> dict:
    """Both targets' gpu_targets reports for one dtype, compiled in two processes at once."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    procs = {
        target: subprocess.Popen(
            [sys.executable, "-m", "qwen25.attention.gpu_targets", "--target", target, "--quiet", "--dtypes", dtype,
             "--json", str(out / f"{target}.json")],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for target in ("sm_80", "sm_90")
    }
    result = {}
    for target, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=1800)
        print(stdout.strip())
        path = out / f"{target}.json"
        assert path.exists(), f"{target}: no report (rc {proc.returncode}):\n{stderr[-3000:]}"
        result[target] = (json.loads(path.read_text()), proc.returncode)
    return result


def check_report(report: dict, returncode: int, target: str) -> None:
    """Every variant compiled; the prune drops exactly those over the limit; the checked-in table is current."""
    from qwen25.attention.gpu_targets import pruned_before_launch, table_entries, variant_key

    assert report["failed"] == [], f"{target}: variants that do not compile: {report['failed']}"
    assert report["per_kernel"] == EXPECTED_VARIANTS, report["per_kernel"]
    assert all(v["shared"] and v["shared"] > 0 for v in report["all"])
    assert returncode == 0
    over = sorted({variant_key(v["kernel"], v["head_dim"], v["block_m"], v["block_n"], v["num_warps"],
                               v["num_stages"]) for v in report["over_limit"]})  # fmt: skip
    assert over == EXPECTED_PRUNED[target]
    assert sorted(pruned_before_launch(report)) == over
    # the autotuners read the checked-in table: it must match what the compiler says today
    recorded = json.loads(triton_flash.SHARED_MEMORY_TABLE.read_text())[target]
    assert recorded == table_entries(report), (
        f"{triton_flash.SHARED_MEMORY_TABLE} is stale for {target}: "
        f"python -m qwen25.attention.gpu_targets --target {target} --write_table"
    )


@pytest.mark.slow
def test_bf16_builds_compile_for_a100_and_h100_and_the_prune_matches(tmp_path):
    for target, (report, returncode) in compile_targets(tmp_path, "bf16").items():
        check_report(report, returncode, target)


@pytest.mark.slow
@pytest.mark.kernel  # make test-grids: by hand (CI runs the bf16 builds above)
def test_fp16_builds_compile_for_a100_and_h100_and_the_prune_matches(tmp_path):
    for target, (report, returncode) in compile_targets(tmp_path, "fp16").items():
        check_report(report, returncode, target)


def test_select_fitting_keeps_unknown_configs_and_never_returns_nothing():
    configs = triton_flash._configs([(128, 64, 8, 2), (64, 64, 4, 2), (16, 16, 1, 1)])  # the last: not in the table
    kept = triton_flash.select_fitting("dca_fwd", 128, configs, (8, 0), 166_912)
    assert [c.kwargs["BLOCK_M"] for c in kept] == [64, 16]  # 128 x 64 pruned on an A100, the unknown one kept
    tiny_limit = triton_flash.select_fitting("dca_fwd", 128, configs[:2], (8, 0), 1024)
    assert [c.kwargs["BLOCK_M"] for c in tiny_limit] == [64]  # none fits: the smallest is kept
    assert triton_flash.select_fitting("dca_fwd", 128, configs, (7, 5), 1024) == configs  # no table for sm_75
