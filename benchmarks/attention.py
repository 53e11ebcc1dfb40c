"""Attention throughput: this project's Triton varlen kernel vs PyTorch SDPA (flash backend), in TFLOP/s.

On CUDA, for packed rows of 4K, 16K and 32K tokens, head_dim 128, GQA 28/4 (Qwen2.5-7B), bf16, it times the
forward and forward+backward of both in the same run, in two layouts per row size:
  1 doc   one causal sequence filling the row: SDPA gets the same work in one call;
  docs    uneven documents (seeded lengths in [256, 4096], the last one trimmed to fit): the kernel takes the row
          with its cu_seqlens in one launch; SDPA has no varlen entry point, so it runs one call per document
          (each (1, H, len, D), prepared outside the timed region).
Goals (issue 3): forward >= 1.2x SDPA, forward+backward >= 1.0x.

FLOPs follow FlashAttention-2's convention for causal attention: forward = 4 * sum(len_i^2) / 2 * n_heads *
head_dim (two matmuls, 2 FLOP per multiply-add, half the pairs visible); the backward is 2.5x the forward (five
matmuls instead of two), so forward+backward = 3.5x the forward. Both implementations are charged the same
count, so the ratios do not depend on the convention.

Without CUDA the kernel cannot be timed (the interpreter measures Python): the CPU path times the PyTorch
reference alone at small sizes and says so.

    .venv/bin/python benchmarks/attention.py                       # CUDA: the table; CPU: the reference only
    .venv/bin/python benchmarks/attention.py --tokens 4096 16384   # a subset of the row sizes
"""

from __future__ import annotations

import argparse
import itertools
import random
import time

import torch

FWD_GOAL, FWD_BWD_GOAL = 1.2, 1.0
BWD_FACTOR = 2.5  # backward FLOPs / forward FLOPs (FA2)


def causal_fwd_flops(lengths: list[int], n_heads: int, head_dim: int) -> float:
    """FA2's count for causal attention over packed sequences: 4 * sum(len^2) / 2 * n_heads * head_dim."""
    return 4.0 * sum(n * n for n in lengths) / 2 * n_heads * head_dim


def document_lengths(total: int, low: int, high: int, seed: int) -> list[int]:
    """Seeded uneven lengths in [low, high] summing to `total` (the last one trimmed)."""
    rng = random.Random(seed)
    lengths: list[int] = []
    while sum(lengths) < total:
        lengths.append(min(rng.randint(low, high), total - sum(lengths)))
    return lengths


def _cu(lengths: list[int], device) -> torch.Tensor:
    return torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32, device=device)


def _inputs(total: int, n_heads: int, n_kv_heads: int, head_dim: int, dtype, device, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    q = torch.randn(total, n_heads, head_dim, generator=g, device=device, dtype=dtype)  # (total, H, D)
    k = torch.randn(total, n_kv_heads, head_dim, generator=g, device=device, dtype=dtype)  # (total, Hkv, D)
    v = torch.randn(total, n_kv_heads, head_dim, generator=g, device=device, dtype=dtype)
    dout = torch.randn(total, n_heads, head_dim, generator=g, device=device, dtype=dtype)
    return q, k, v, dout


# ---------------------------------------------------------------------------------------------------------------
# CUDA


def _sdpa_runner(q, k, v, lengths: list[int]):
    """A function running SDPA (flash backend) per document on (1, H, len, D) copies; says whether K/V were repeated.

    PyTorch's flash backend takes GQA natively (`enable_gqa=True`) where supported; otherwise K/V are repeated
    once here, outside the timed region, and the table marks it.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    groups = q.shape[1] // k.shape[1]
    bounds = list(itertools.pairwise(itertools.accumulate(lengths, initial=0)))
    docs = [
        tuple(x[s:e].transpose(0, 1)[None].contiguous().requires_grad_() for x in (q, k, v)) for s, e in bounds
    ]  # each (1, H or Hkv, len, D)

    def run_gqa(parts):
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return [sdpa(a, b, c, is_causal=True, enable_gqa=True) for a, b, c in parts]

    try:
        run_gqa(docs[:1])
        return docs, run_gqa, False
    except RuntimeError:  # this build's flash backend refuses enable_gqa: repeat K/V outside the timing
        repeated = [
            (a, b.detach().repeat_interleave(groups, 1).requires_grad_(), c.detach().repeat_interleave(groups, 1)
             .requires_grad_())
            for a, b, c in docs
        ]  # fmt: skip

        def run_repeated(parts):
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return [sdpa(a, b, c, is_causal=True) for a, b, c in parts]

        return repeated, run_repeated, True


def bench_cuda(args) -> None:
    from triton.testing import do_bench

    from qwen25.attention.triton_flash import flash_attn_varlen

    device, dtype = "cuda", getattr(torch, args.dtype)
    n_heads, n_kv_heads, head_dim = args.heads, args.kv_heads, args.head_dim
    print(f"{torch.cuda.get_device_name()}, {args.dtype}, heads {n_heads}/{n_kv_heads}, head_dim {head_dim}, causal")
    print("(the first row includes compiling and autotuning the kernels; the timings themselves do not)")
    print("TFLOP/s (FA2 causal count; fwd+bwd = 3.5x fwd); max abs diff: kernel vs SDPA forward output\n")
    print("| tokens | docs | fwd Triton | fwd SDPA | fwd ratio | fwd+bwd Triton | fwd+bwd SDPA | fwd+bwd ratio "
          "| max abs diff |\n|---|---|---|---|---|---|---|---|---|", flush=True)  # fmt: skip
    rows, ratios = [], {"fwd": [], "fwd+bwd": []}
    for total in args.tokens:
        layouts = {"1": [total], "uneven": document_lengths(total, args.doc_min, args.doc_max, args.seed)}
        for name, lengths in layouts.items():
            q, k, v, dout = _inputs(total, n_heads, n_kv_heads, head_dim, dtype, device)
            q, k, v = (x.requires_grad_() for x in (q, k, v))
            cu = _cu(lengths, device)
            longest = max(lengths)

            def kernel_fwd(q=q, k=k, v=v, cu=cu, longest=longest):
                return flash_attn_varlen(q, k, v, cu, cu, longest, longest)

            def kernel_fwd_bwd(q=q, k=k, v=v, dout=dout, kernel_fwd=kernel_fwd):
                kernel_fwd().backward(dout)

            docs, sdpa_run, repeated = _sdpa_runner(q.detach(), k.detach(), v.detach(), lengths)
            douts = [dout[s:e].transpose(0, 1)[None].contiguous()
                     for s, e in itertools.pairwise(itertools.accumulate(lengths, initial=0))]  # fmt: skip

            def sdpa_fwd(docs=docs, sdpa_run=sdpa_run):
                return sdpa_run(docs)

            def sdpa_fwd_bwd(docs=docs, sdpa_run=sdpa_run, douts=douts):
                torch.autograd.backward(sdpa_run(docs), douts)

            with torch.no_grad():
                ours = kernel_fwd()  # (total, H, D)
                theirs = torch.cat([o[0].transpose(0, 1) for o in sdpa_fwd()])  # (total, H, D)
            diff = (ours.float() - theirs.float()).abs().max().item()

            flops = causal_fwd_flops(lengths, n_heads, head_dim)
            grads = [q, k, v] + [t for d in docs for t in d]
            ms = {
                ("triton", "fwd"): do_bench(kernel_fwd, warmup=args.warmup, rep=args.rep),
                ("sdpa", "fwd"): do_bench(sdpa_fwd, warmup=args.warmup, rep=args.rep),
                ("triton", "fwd+bwd"): do_bench(kernel_fwd_bwd, warmup=args.warmup, rep=args.rep, grad_to_none=grads),
                ("sdpa", "fwd+bwd"): do_bench(sdpa_fwd_bwd, warmup=args.warmup, rep=args.rep, grad_to_none=grads),
            }
            tflops = {
                key: (flops if key[1] == "fwd" else flops * (1 + BWD_FACTOR)) / (t * 1e-3) / 1e12
                for key, t in ms.items()
            }
            fwd_ratio = tflops["triton", "fwd"] / tflops["sdpa", "fwd"]
            fb_ratio = tflops["triton", "fwd+bwd"] / tflops["sdpa", "fwd+bwd"]
            ratios["fwd"].append(fwd_ratio)
            ratios["fwd+bwd"].append(fb_ratio)
            docs_label = "1" if name == "1" else f"{len(lengths)} uneven"
            sdpa_mark = "*" if repeated else ""
            rows.append(
                f"| {total} | {docs_label} | {tflops['triton', 'fwd']:.0f} | {tflops['sdpa', 'fwd']:.0f}{sdpa_mark} "
                f"| {fwd_ratio:.2f}x | {tflops['triton', 'fwd+bwd']:.0f} | {tflops['sdpa', 'fwd+bwd']:.0f}{sdpa_mark} "
                f"| {fb_ratio:.2f}x | {diff:.1e} |"
            )
            print(rows[-1], flush=True)
            del q, k, v, dout, docs, douts, ours, theirs
            torch.cuda.empty_cache()

    print()
    if any("*" in r for r in rows):
        print("* this PyTorch's flash backend refused enable_gqa: SDPA ran on K/V repeated outside the timing")
    for key, goal in (("fwd", FWD_GOAL), ("fwd+bwd", FWD_BWD_GOAL)):
        worst = min(ratios[key])
        verdict = "met" if worst >= goal else "NOT met"
        print(f"{key}: worst ratio {worst:.2f}x, goal >= {goal}x: {verdict}")


# ---------------------------------------------------------------------------------------------------------------
# CPU


def bench_cpu_reference(args) -> None:
    from qwen25.attention.reference import attention_reference, build_attention_mask

    print("No CUDA device: the Triton kernel vs SDPA comparison needs CUDA and was NOT run.")
    print("Timing the PyTorch reference (the path CPU runs use) alone, fp32, small rows:\n")
    n_heads, n_kv_heads, head_dim = args.heads, args.kv_heads, args.head_dim
    print("| tokens | docs | fwd ms | fwd GFLOP/s | fwd+bwd ms | fwd+bwd GFLOP/s |\n|---|---|---|---|---|---|")
    for total in args.cpu_tokens:
        lengths = document_lengths(total, max(1, args.doc_min // 16), max(2, args.doc_max // 16), args.seed)
        q, k, v, dout = _inputs(total, n_heads, n_kv_heads, head_dim, torch.float32, "cpu")
        cu = _cu(lengths, "cpu")
        mask = build_attention_mask(1, total, total, torch.device("cpu"), cu_seq_lens_q=cu, cu_seq_lens_k=cu)
        q4, k4, v4 = (x.transpose(0, 1)[None].contiguous().requires_grad_() for x in (q, k, v))  # (1, H, total, D)
        dout4 = dout[None]  # (1, total, H, D), the reference's output layout

        def fwd():
            return attention_reference(q4, k4, v4, mask)

        def fwd_bwd():
            fwd().backward(dout4)

        times = {}
        for name, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
            fn()  # warm-up
            start = time.perf_counter()
            for _ in range(args.cpu_repeats):
                with torch.no_grad() if name == "fwd" else torch.enable_grad():
                    fn()
            times[name] = (time.perf_counter() - start) / args.cpu_repeats
        flops = causal_fwd_flops(lengths, n_heads, head_dim)
        print(
            f"| {total} | {len(lengths)} | {times['fwd'] * 1e3:.1f} | {flops / times['fwd'] / 1e9:.1f} "
            f"| {times['fwd+bwd'] * 1e3:.1f} | {flops * (1 + BWD_FACTOR) / times['fwd+bwd'] / 1e9:.1f} |",
            flush=True,
        )
    print("\nThe reference materialises the (H, L, L) scores, so its FLOP rate is no guide to the kernel's.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 16384, 32768], help="row sizes (CUDA)")
    parser.add_argument("--cpu_tokens", type=int, nargs="+", default=[256, 512, 1024], help="row sizes (CPU)")
    parser.add_argument("--heads", type=int, default=28)
    parser.add_argument("--kv_heads", type=int, default=4)
    parser.add_argument("--head_dim", type=int, default=128)
    parser.add_argument("--dtype", choices=["bfloat16", "float16"], default="bfloat16")
    parser.add_argument("--doc_min", type=int, default=256, help="shortest document of the uneven layout")
    parser.add_argument("--doc_max", type=int, default=4096, help="longest document of the uneven layout")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=25, help="do_bench warm-up, ms")
    parser.add_argument("--rep", type=int, default=100, help="do_bench measuring time, ms")
    parser.add_argument("--cpu_repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if torch.cuda.is_available():
        bench_cuda(args)
    else:
        bench_cpu_reference(args)


if __name__ == "__main__":
    main()
