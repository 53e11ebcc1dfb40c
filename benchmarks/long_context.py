"""Prefill past the trained length: peak memory and time, plain attention vs Dual Chunk Attention.

One forward over a single row of N tokens (what generation's prefill does; logits of the last token only) on the
tiny-long model (configs/model/tiny-long.yaml: the tiny architecture, YaRN x4, DCA chunks of 1,024 - 32 tokens),
random weights. Each (variant, length) runs in a fresh subprocess.

- `--device cpu` (default): the PyTorch reference path. plain = `reference.attention_reference`, which materialises
  the whole (heads, N, N) fp32 score matrix; dca = `dca.dual_chunk_attention_reference`, query blocks of at most
  one chunk and 128 MiB of scores, over only the keys each block can see. Peak memory is the child's VmHWM minus
  its RSS before the forward (model and inputs excluded). A plain run whose score matrices alone would exceed
  `--max_gib` is skipped and the table says how much it would need.
- `--device cuda`: bf16, the Triton paths (plain: the FA2 varlen kernel; dca: `dca_triton.dual_chunk_attn_varlen`),
  peak = torch.cuda.max_memory_allocated minus the allocation before the forward; one warm-up forward first
  (autotuning, compilation), then the timed one.

    .venv/bin/python benchmarks/long_context.py --lengths 8192,16384          # CPU, minutes on 2 shared cores
    .venv/bin/python benchmarks/long_context.py                               # CPU 8K/32K/64K: long
    .venv/bin/python benchmarks/long_context.py --device cuda --lengths 32768,131072
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

GIB = 1024**3
ROOT = Path(__file__).resolve().parents[1]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(variant: str, tokens: int, device: str, layers: int | None, vocab: int) -> dict:
    """In the subprocess: build the model, one timed prefill; returns peak extra memory (bytes) and seconds."""
    import torch

    from qwen25.attention import registration
    from qwen25.attention.registration import disable_dca
    from qwen25.model import build_model, load_preset, make_config

    overrides = {} if layers is None else {"num_hidden_layers": layers}
    model = build_model(make_config(load_preset("tiny-long"), vocab_size=vocab, **overrides), seed=0).eval()
    if variant == "plain":
        disable_dca(model)
    registration.BACKEND = "auto"  # CPU: reference; CUDA bf16: the Triton kernels
    if device == "cuda":
        model = model.to(device="cuda", dtype=torch.bfloat16)
    ids = torch.randint(0, vocab, (1, tokens), generator=torch.Generator().manual_seed(0)).to(device)

    def forward():
        with torch.inference_mode():
            return model(input_ids=ids, use_cache=False, logits_to_keep=1).logits

    if device == "cuda":
        forward()  # warm-up: autotuning and compilation
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        start = time.perf_counter()
        logits = forward()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() - before
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        before = _status_kib("VmRSS")
        start = time.perf_counter()
        logits = forward()
        seconds = time.perf_counter() - start
        peak = (_status_kib("VmHWM") - before) * 1024
    assert torch.isfinite(logits.float()).all()
    return {"variant": variant, "tokens": tokens, "seconds": seconds, "peak_bytes": peak, "device": device}


def plain_scores_bytes(tokens: int) -> int:
    """The reference's (heads, N, N) fp32 scores, softmax probabilities and boolean mask of one layer."""
    heads = 4  # tiny preset
    return heads * tokens * tokens * 4 * 2 + tokens * tokens


def run(variant: str, tokens: int, args) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--lengths", str(tokens), "--device", args.device,
           "--vocab", str(args.vocab)] + (["--layers", str(args.layers)] if args.layers else [])  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=args.timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["killed"]
        return {"variant": variant, "tokens": tokens, "error": f"exit {proc.returncode}: {tail[0][:120]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default=None, help="comma-separated prompt lengths (cpu: 8192,32768,65536; "
                        "cuda: 32768,131072)")  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--variants", default="plain,dca")
    parser.add_argument("--layers", type=int, default=None, help="override the tiny preset's 4 layers")
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--max_gib", type=float, default=12.0, help="cpu: skip plain runs needing more than this")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    default = "8192,32768,65536" if args.device == "cpu" else "32768,131072"
    lengths = [int(x) for x in (args.lengths or default).split(",")]
    if args.child:
        print(json.dumps(child(args.child, lengths[0], args.device, args.layers, args.vocab)))
        return

    layers = args.layers or 4
    print(f"prefill, tiny-long model ({layers} layers), device {args.device}, one row, logits of the last token")
    print(f"{'tokens':>8} {'variant':>7} {'seconds':>9} {'tokens/s':>9} {'peak GiB':>9}  note")
    results = []
    for tokens in lengths:
        row = {}
        for variant in args.variants.split(","):
            need = plain_scores_bytes(tokens)
            if variant == "plain" and args.device == "cpu" and need > args.max_gib * GIB:
                r = {"variant": variant, "tokens": tokens, "error": f"skipped: scores alone need {need / GIB:.0f} GiB"}
            else:
                r = run(variant, tokens, args)
            results.append(r)
            row[variant] = r
            if "error" in r:
                print(f"{tokens:>8} {variant:>7} {'-':>9} {'-':>9} {'-':>9}  {r['error']}")
            else:
                note = ""
                if variant != "plain" and "seconds" in row.get("plain", {}):
                    p = row["plain"]
                    note = f"time x{r['seconds'] / p['seconds']:.2f}, memory x{r['peak_bytes'] / p['peak_bytes']:.3f}"
                print(f"{tokens:>8} {variant:>7} {r['seconds']:>9.2f} {tokens / r['seconds']:>9.0f} "
                      f"{r['peak_bytes'] / GIB:>9.3f}  {note}")  # fmt: skip
            sys.stdout.flush()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
