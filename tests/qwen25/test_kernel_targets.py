"""Every Triton kernel we ship compiles for sm_80 (A100) and sm_90 (H100/H200), with every autotune config, on CPU.

`python -m qwen25.attention.gpu_targets --target T` compiles each variant (the varlen forward, the two backward
kernels and the DCA forward x their autotune configs x bf16/fp16 x head_dim 64/128, plus the backward's
preprocess) through the ptxas inside the triton wheel and reads its shared memory. Each target runs in its own
process (TRITON_INTERPRET unset: the conftest sets it for the kernel tests in this process), both at once on the
machine's two cores: ~6 min, so the test is in the slow tier, which CI runs. Run with `-s` to see the counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

EXPECTED_VARIANTS = {"fwd": 20, "dkdv": 20, "dq": 20, "dca_fwd": 16, "bwd_preprocess": 4}  # 2 dtypes x 2 head_dims


def test_every_kernel_variant_compiles_for_a100_and_h100_within_shared_memory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    procs = {
        target: subprocess.Popen(
            [sys.executable, "-m", "qwen25.attention.gpu_targets", "--target", target, "--quiet",
             "--json", str(tmp_path / f"{target}.json")],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        for target in ("sm_80", "sm_90")
    }
    for target, proc in procs.items():
        out, err = proc.communicate(timeout=1800)
        print(out.strip())
        path = tmp_path / f"{target}.json"
        report = json.loads(path.read_text()) if path.exists() else {}
        assert report, f"{target}: no report (rc {proc.returncode}):\n{err[-3000:]}"
        assert report["failed"] == [], f"{target}: variants that do not compile: {report['failed']}"
        assert report["over_limit"] == [], f"{target}: over {report['shared_limit']} B: {report['over_limit']}"
        assert report["per_kernel"] == EXPECTED_VARIANTS, report["per_kernel"]
        assert all(v["shared"] and v["shared"] > 0 for v in report["all"])
        assert proc.returncode == 0
