"""Every Triton kernel we ship compiles for sm_80 (A100) and sm_90 (H100/H200), with every autotune config, on CPU;
configs that cannot fit a target's shared memory are pruned before launch.

`python -m qwen25.attention.gpu_targets --target T` compiles each variant (the varlen forward, the two backward
kernels and the DCA forward x their autotune configs x bf16/fp16 x head_dim 64/128, plus the backward's
preprocess) through the ptxas inside the triton wheel and reads its shared memory. Each target runs in its own
process (TRITON_INTERPRET unset: the conftest sets it for the kernel tests in this process), both at once on the
machine's two cores: ~7 min, so the test is in the slow tier, which CI runs. Run with `-s` to see the counts.

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

EXPECTED_VARIANTS = {"fwd": 20, "dkdv": 20, "dq": 20, "dca_fwd": 16, "bwd_preprocess": 4}  # 2 dtypes x 2 head_dims
# what each target must prune: the variants over its limit (measured with triton 3.9; the test re-derives them)
EXPECTED_PRUNED = {"sm_80": ["dca_fwd/d128/M128N64w8s2"], "sm_90": []}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("targets")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    procs = {
        target: subprocess.Popen(
            [sys.executable, "-m", "qwen25.attention.gpu_targets", "--target", target, "--quiet",
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


@pytest.mark.slow
@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_every_variant_compiles(reports, target):
    report, returncode = reports[target]
    assert report["failed"] == [], f"{target}: variants that do not compile: {report['failed']}"
    assert report["per_kernel"] == EXPECTED_VARIANTS, report["per_kernel"]
    assert all(v["shared"] and v["shared"] > 0 for v in report["all"])
    assert returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("target", ["sm_80", "sm_90"])
def test_the_prune_drops_exactly_what_cannot_fit(reports, target):
    from qwen25.attention.gpu_targets import pruned_before_launch, table_entries, variant_key

    report, _ = reports[target]
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


def test_select_fitting_keeps_unknown_configs_and_never_returns_nothing():
    configs = triton_flash._configs([(128, 64, 8, 2), (64, 64, 4, 2), (16, 16, 1, 1)])  # the last: not in the table
    kept = triton_flash.select_fitting("dca_fwd", 128, configs, (8, 0), 166_912)
    assert [c.kwargs["BLOCK_M"] for c in kept] == [64, 16]  # 128 x 64 pruned on an A100, the unknown one kept
    tiny_limit = triton_flash.select_fitting("dca_fwd", 128, configs[:2], (8, 0), 1024)
    assert [c.kwargs["BLOCK_M"] for c in tiny_limit] == [64]  # none fits: the smallest is kept
    assert triton_flash.select_fitting("dca_fwd", 128, configs, (7, 5), 1024) == configs  # no table for sm_75
