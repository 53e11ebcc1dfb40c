"""Every Triton kernel we ship compiles for real GPU targets, with every autotune config it would try, on CPU.

`triton.compile(ASTSource(...), target=GPUTarget("cuda", cap, 32))` runs the whole lowering and the ptxas that
ships inside the triton wheel, no GPU needed (NOTES.md: ~4 s a variant here). Targets: sm_80 (A100) and sm_90
(H100/H200); dtypes bf16 and fp16; head_dim 64 and 128 (Qwen2.5's: 64 for 0.5B, 128 from 1.5B up); group 7
(GQA 28/4, 7B). Each variant's shared memory (`metadata.shared`) must fit the target's per-block limit
(A100 166,912 B; H100/H200 232,448 B: 163 KB and 227 KB opt-in): a config that could not fit would fail at launch
on that GPU. The count of variants per target is printed (`-s`). The compiles take minutes on 2 cores, so the
test is in the slow tier, which CI runs.
"""

from __future__ import annotations

import collections
import itertools
import os

import pytest

if os.environ.get("TRITON_INTERPRET") == "1":  # the interpreter replaces triton.jit: nothing to compile
    pytest.skip("compiling for GPU targets needs TRITON_INTERPRET unset", allow_module_level=True)

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from qwen25.attention import dca_triton, triton_flash  # noqa: E402

pytestmark = pytest.mark.slow

# per-block shared memory limits (cudaDevAttrMaxSharedMemoryPerBlockOptin)
TARGETS = {"sm_80": (80, 166_912), "sm_90": (90, 232_448)}
DTYPES = {"bf16": "*bf16", "fp16": "*fp16"}
HEAD_DIMS = (64, 128)
GROUP = 7


def _signature(fn, data: str, pointers: dict[str, str], constexprs: dict) -> dict[str, str]:
    """Triton signature of `fn`: tensors named in `pointers` get that type, other tensors `data`, scalars i32/fp32."""
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in pointers:
            sig[name] = pointers[name]
        elif name[0].isupper():  # tensor arguments are upper case (Q, K, V, O, LSE, DO, ...)
            sig[name] = data
        elif name.startswith("cu_seqlens"):
            sig[name] = "*i32"
        elif "scale" in name:
            sig[name] = "fp32"
        else:
            sig[name] = "i32"  # strides, totals
    return sig


FP32_BUFFERS = {"LSE": "*fp32", "DELTA": "*fp32"}


def kernel_variants():
    """(kernel name, jit function, constexprs, triton.Config) for every variant a GPU launch could compile."""
    tuned = {
        "fwd": triton_flash._attn_fwd_kernel,
        "dkdv": triton_flash._attn_bwd_dkdv_kernel,
        "dq": triton_flash._attn_bwd_dq_kernel,
    }
    for (name, fn), head_dim in itertools.product(tuned.items(), HEAD_DIMS):
        for config in triton_flash._tuned(name).configs:
            consts = {"GROUP": GROUP, "HEAD_DIM": head_dim, "DOT_PRECISION": "tf32", **config.kwargs}
            yield name, fn, consts, config
    for head_dim in HEAD_DIMS:
        for config in dca_triton._tuned().configs:
            fn = dca_triton._dca_fwd_kernel
            consts = {k: v for k, v in {"GROUP": GROUP, "HEAD_DIM": head_dim, "DOT_PRECISION": "tf32"}.items()
                      if k in fn.arg_names}  # fmt: skip
            yield "dca_fwd", fn, {**consts, **config.kwargs}, config
        # the backward's preprocess has fixed blocks (64 on CUDA)
        yield "bwd_preprocess", triton_flash._attn_bwd_preprocess, {"HEAD_DIM": head_dim, "BLOCK_M": 64}, None


def _compile(fn, sig, consts, config, cap: int):
    options = {"num_warps": config.num_warps, "num_stages": config.num_stages} if config else {}
    return triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", cap, 32),
                          options=options)  # fmt: skip


@pytest.mark.parametrize("target", list(TARGETS))
def test_every_variant_compiles_and_fits_shared_memory(target):
    cap, limit = TARGETS[target]
    counts, over = collections.Counter(), []
    for dtype_name, data in DTYPES.items():
        for name, fn, consts, config in kernel_variants():
            sig = _signature(fn, data, FP32_BUFFERS, consts)
            compiled = _compile(fn, sig, consts, config, cap)
            counts[name] += 1
            shared = compiled.metadata.shared
            if shared > limit:
                over.append(f"{name} {dtype_name} {consts} warps={config and config.num_warps} "
                            f"stages={config and config.num_stages}: {shared} B")  # fmt: skip
    print(f"\n{target}: {sum(counts.values())} variants compiled ({dict(counts)}); over {limit} B: {len(over)}")
    assert not over, "\n".join(over)
