"""Compile every Triton kernel we ship for real GPU targets, with every autotune config, without a GPU.

`triton.compile(ASTSource(...), target=GPUTarget("cuda", capability, 32))` runs the whole lowering and the ptxas
that ships inside the triton wheel; no driver is needed (NOTES.md: seconds a variant on CPU). This module lists the
variants a GPU launch could build (each autotuned kernel x its configs x dtype x head_dim, plus the fixed-block
backward preprocess), compiles them for a target and reads each one's shared memory (`metadata.shared`) against the
target's per-block limit. tests/qwen25/test_kernel_targets.py runs it for sm_80 and sm_90; a user can run it for
their card before a launch:

    python -m qwen25.attention.gpu_targets --target sm_90           # H100/H200
    python -m qwen25.attention.gpu_targets --target sm_80 --json a100.json

`--write_table` records the shared memory of every 16-bit variant per target in `shared_memory.json` beside this
module: the kernels' autotuners read it to prune configs that cannot fit the GPU they are about to run on
(`triton_flash.prune_to_shared_memory`). The test compiles again and checks the table still matches.

TRITON_INTERPRET must be unset (the interpreter replaces `triton.jit`, so there is nothing to compile).
Why hand-written: Triton has no "compile this autotuned kernel for that GPU" entry point; `JITFunction.warmup` needs
the target's driver. The kernels, configs and launch arguments are this project's, so the list is too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from qwen25.attention import dca_triton, triton_flash

# per-block shared memory a kernel may use (cudaDevAttrMaxSharedMemoryPerBlockOptin): A100, H100/H200
TARGETS = {"sm_80": (80, 166_912), "sm_90": (90, 232_448)}
DTYPES = ("bf16", "fp16")
HEAD_DIMS = (64, 128)  # Qwen2.5: 64 for 0.5B, 128 from 1.5B up
GROUP = 7  # GQA 28/4 (7B); the group size changes no tile, so no shared memory
FP32_BUFFERS = {"LSE": "*fp32", "DELTA": "*fp32"}
PREPROCESS_BLOCK = 64  # _flash_bwd's fixed block on CUDA


@dataclass
class Variant:
    kernel: str
    dtype: str
    head_dim: int
    block_m: int
    block_n: int | None
    num_warps: int
    num_stages: int
    shared: int | None = None  # bytes, after compiling
    error: str | None = None


def _signature(fn, dtype: str, constexprs: dict) -> dict[str, str]:
    """Triton signature of one of our kernels: upper-case tensor arguments in `dtype` (LSE/DELTA fp32),
    cu_seqlens int32, scales fp32, the other scalars (strides, totals, chunk length) int32."""
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in FP32_BUFFERS:
            sig[name] = FP32_BUFFERS[name]
        elif name[0].isupper():
            sig[name] = f"*{dtype}"
        elif name.startswith("cu_seqlens"):
            sig[name] = "*i32"
        elif "scale" in name:
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
    return sig


def variants(dtypes: tuple[str, ...] = DTYPES):
    """(Variant, jit function, constexprs) for every kernel build a CUDA launch of ours could ask for."""
    tuned = {
        "fwd": (triton_flash._attn_fwd_kernel, triton_flash._tuned("fwd").configs),
        "dkdv": (triton_flash._attn_bwd_dkdv_kernel, triton_flash._tuned("dkdv").configs),
        "dq": (triton_flash._attn_bwd_dq_kernel, triton_flash._tuned("dq").configs),
        "dca_fwd": (dca_triton._dca_fwd_kernel, dca_triton._tuned().configs),
    }
    for dtype, head_dim in itertools.product(dtypes, HEAD_DIMS):
        for kernel, (fn, configs) in tuned.items():
            for config in configs:
                consts = {"GROUP": GROUP, "HEAD_DIM": head_dim, "DOT_PRECISION": "tf32", **config.kwargs}
                variant = Variant(kernel, dtype, head_dim, config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"],
                                  config.num_warps, config.num_stages)  # fmt: skip
                yield variant, fn, consts
        consts = {"HEAD_DIM": head_dim, "BLOCK_M": PREPROCESS_BLOCK}
        yield Variant("bwd_preprocess", dtype, head_dim, PREPROCESS_BLOCK, None, 4, 3), \
            triton_flash._attn_bwd_preprocess, consts  # fmt: skip


def compile_variant(variant: Variant, fn, consts: dict, capability: int) -> Variant:
    source = ASTSource(fn=fn, signature=_signature(fn, variant.dtype, consts), constexprs=consts)
    options = {"num_warps": variant.num_warps, "num_stages": variant.num_stages}
    try:
        compiled = triton.compile(source, target=GPUTarget("cuda", capability, 32), options=options)
        variant.shared = int(compiled.metadata.shared)
    except Exception as exc:  # noqa: BLE001 - reported per variant, the others still compile
        variant.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return variant


def check_target(target: str, progress: bool = True, dtypes: tuple[str, ...] = DTYPES) -> dict:
    """Compile every variant for `target`; returns the counts, the variants and those over the limit."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("TRITON_INTERPRET=1 replaces triton.jit; unset it to compile for a GPU target")
    if target not in TARGETS:
        raise ValueError(f"target {target!r}; known: {sorted(TARGETS)}")
    capability, limit = TARGETS[target]
    done = []
    for variant, fn, consts in variants(dtypes):
        done.append(compile_variant(variant, fn, consts, capability))
        if progress:
            v = done[-1]
            print(f"{target} {v.kernel:14s} {v.dtype} d{v.head_dim:<3d} M{v.block_m} N{v.block_n} w{v.num_warps} "
                  f"s{v.num_stages}: {v.error or f'{v.shared} B'}", file=sys.stderr, flush=True)  # fmt: skip
    over = [asdict(v) for v in done if v.shared is not None and v.shared > limit]
    failed = [asdict(v) for v in done if v.error]
    counts: dict[str, int] = {}
    for v in done:
        counts[v.kernel] = counts.get(v.kernel, 0) + 1
    return {"target": target, "capability": capability, "shared_limit": limit, "variants": len(done),
            "per_kernel": counts, "over_limit": over, "failed": failed,
            "max_shared": max((v.shared or 0) for v in done), "all": [asdict(v) for v in done]}  # fmt: skip


variant_key = triton_flash.shared_memory_key  # the table's key, as the autotuners' prune reads it


def table_entries(report: dict) -> dict[str, int]:
    """{variant_key: shared bytes} of a `check_target` report's 16-bit variants."""
    entries: dict[str, int] = {}
    for v in report["all"]:
        key = variant_key(v["kernel"], v["head_dim"], v["block_m"], v["block_n"], v["num_warps"], v["num_stages"])
        if entries.setdefault(key, v["shared"]) != v["shared"]:
            raise AssertionError(f"{report['target']} {key}: bf16 and fp16 builds differ in shared memory")
    return entries


TUNED_CONFIGS = {
    "fwd": lambda: triton_flash._tuned("fwd").configs,
    "dkdv": lambda: triton_flash._tuned("dkdv").configs,
    "dq": lambda: triton_flash._tuned("dq").configs,
    "dca_fwd": lambda: dca_triton._tuned().configs,
}


def pruned_before_launch(report: dict) -> list[str]:
    """The variant keys the autotuners' prune (`triton_flash.select_fitting`) drops on this target, from its own
    compiled sizes: it must drop exactly the variants over the limit."""
    table = {report["target"]: table_entries(report)}
    dropped = []
    for kernel, configs in TUNED_CONFIGS.items():
        for head_dim in HEAD_DIMS:
            kept = triton_flash.select_fitting(kernel, head_dim, configs(), report["capability"],
                                               report["shared_limit"], table=table)  # fmt: skip
            dropped += [variant_key(kernel, head_dim, c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps,
                                    c.num_stages) for c in configs() if c not in kept]  # fmt: skip
    return dropped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=sorted(TARGETS), required=True)
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--quiet", action="store_true", help="no line per variant")
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES),
                        help="16-bit input types to build (their shared memory is the same: both are 2 bytes)")
    parser.add_argument("--write_table", action="store_true",
                        help=f"record this target's shared memory per variant in {triton_flash.SHARED_MEMORY_TABLE}")
    args = parser.parse_args(argv)
    try:
        report = check_target(args.target, progress=not args.quiet, dtypes=tuple(args.dtypes))
    except RuntimeError as exc:
        print(f"gpu_targets: {exc}", file=sys.stderr)
        return 2
    print(f"{report['target']}: {report['variants']} variants ({report['per_kernel']}); largest shared memory "
          f"{report['max_shared']} B of {report['shared_limit']}; over the limit: {len(report['over_limit'])}; "
          f"failed to compile: {len(report['failed'])}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    pruned = pruned_before_launch(report)
    print(f"pruned before launch on {report['target']} by the autotuners: {pruned or 'none'}")
    if args.write_table:
        path = triton_flash.SHARED_MEMORY_TABLE
        table = json.loads(path.read_text()) if path.exists() else {}
        table[report["target"]] = table_entries(report)
        path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(table[report['target']])} entries for {report['target']} to {path}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
