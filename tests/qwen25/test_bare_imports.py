"""The model, its kernels, the gpu tests and the GPU benchmarks import with torch, triton and transformers alone.

A lent GPU machine is a bare image (no TRL, datasets, DeepSpeed, wandb, FastAPI, math-verify), and `make gpu-check`
runs there on the preinstalled torch. The first try failed in 4 s a section because `qwen25.attention.dca` reached
TRL through `stagekit.config`; this test blocks those packages in a fresh interpreter and imports what gpu-check runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ABSENT_ON_BARE_GPU_IMAGE = ["trl", "datasets", "deepspeed", "wandb", "fastapi", "uvicorn", "math_verify"]
GPU_CHECK_MODULES = [
    "qwen25.model", "qwen25.ops", "qwen25.attention.triton_flash", "qwen25.attention.dca_triton",
    "benchmarks.attention", "benchmarks.sft_step_cuda", "benchmarks.generation_cuda", "benchmarks.gpu_check",
    "tests.qwen25.test_attention_triton", "tests.qwen25.test_fused_linear_ce",
]  # fmt: skip

PROBE = """
import importlib, sys
# a None entry makes `import trl` raise ModuleNotFoundError and importlib.util.find_spec("trl") return None,
# as on a machine without the package (transformers' availability checks use find_spec)
for name in {blocked!r}:
    sys.modules[name] = None
for module in {modules!r}:
    importlib.import_module(module)
print("imported", len({modules!r}))
"""


def test_gpu_check_imports_without_stage_packages():
    code = PROBE.format(blocked=ABSENT_ON_BARE_GPU_IMAGE, modules=GPU_CHECK_MODULES)
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "TRITON_INTERPRET": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"imported {len(GPU_CHECK_MODULES)}" in done.stdout
