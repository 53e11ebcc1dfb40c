"""Peak memory of loss + backward at 32,768 tokens, hidden 896, vocabulary 151,936 (Qwen2.5-0.5B's LM head), CPU.

Variants, each measured in a fresh subprocess:
  naive  full fp32 logits, `F.cross_entropy`, backward (what a plain `model(labels=...)` does);
  fused  `qwen25.ops.fused_linear_cross_entropy` (chunked over tokens, logits never whole);
  trl    TRL 1.16's own chunked log-prob kernel (`trl.kernels.ChunkedLogProbFunction`), with `--trl`.
Measure: the child builds its inputs (hidden, weight, targets), resets its peak RSS (`/proc/self/clear_refs` 5),
runs loss + backward, and reports VmHWM - VmRSS(before): the extra memory the loss needed at its peak, including
the gradients it returns. The naive logits of 32K tokens do not fit on a small machine, so naive runs at the
largest of a few sizes that fits the budget and is scaled linearly (per token) to the target; the table says so.

    .venv/bin/python benchmarks/memory_32k.py                 # ~20 min on 2 shared cores (fused: ~36 TFLOP)
    .venv/bin/python benchmarks/memory_32k.py --tokens 4096   # quick look

`--sft-step` measures a whole SFT step instead: forward + backward of a 2-layer model with Qwen2.5-0.5B's widths
and vocabulary (configs/model/qwen2.5-0.5b.yaml, num_hidden_layers 2, tied embeddings) on one row of `--tokens`
tokens, labels on every 7th token ignored, with and without the fused loss, each in a fresh subprocess and
measured as above (peak RSS over the model, its inputs and imports; so the delta includes the activations, the
weight gradients and the loss's own peak). Loss variants:
  model_loss  `model(input_ids, labels=...)`: transformers' loss on full fp32 logits;
  fused       the SFT stage's `fused_linear_ce: true` head (`model(..., labels=..., fused_lm_head=True)`).
Attention is PyTorch's sdpa (its CPU flash kernel keeps attention memory linear in the row length; on CPU our
`qwen25` attention runs the reference, which builds a (tokens x tokens) mask, and would measure that instead).

    .venv/bin/python benchmarks/memory_32k.py --sft-step                  # 32,768 tokens (CPU: long; ~20+ GB naive)
    .venv/bin/python benchmarks/memory_32k.py --sft-step --tokens 4096    # what fits a small shared machine
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

GIB = 1024**3


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _measure_step(loss_fn) -> dict:
    """Peak extra RSS (VmHWM, reset first) and time of `loss_fn()` plus its backward, in this process."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    loss = loss_fn()
    loss.backward()
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM")
    return {"peak_delta_bytes": (peak - before) * 1024, "seconds": seconds, "loss": float(loss.detach())}


def child(variant: str, tokens: int, hidden: int, vocab: int, chunk: int | None) -> dict:
    """Runs in the subprocess: one loss + backward, returns the peak extra RSS in bytes and the time."""
    import torch
    import torch.nn.functional as F
    from trl.kernels import ChunkedLogProbFunction

    from qwen25.ops import fused_linear_cross_entropy

    # everything imported before the baseline, so library import costs do not count for any variant
    torch.manual_seed(0)
    h = (torch.randn(tokens, hidden) * 0.05).requires_grad_()
    w = (torch.randn(vocab, hidden) * 0.02).requires_grad_()
    target = torch.randint(0, vocab, (tokens,))
    target[::7] = -100  # some ignored tokens, as in a real batch

    def loss_fn():
        if variant == "naive":
            return F.cross_entropy(h @ w.T, target, ignore_index=-100)
        if variant == "fused":
            return fused_linear_cross_entropy(h, w, target, chunk_size=chunk)
        if variant == "trl":
            mask = target != -100
            args = (h[mask], w, None, target[mask], 1.0, 32768, None, 1.0, ("log_probs",))
            return -ChunkedLogProbFunction.apply(*args)[0].sum() / mask.sum()
        raise ValueError(f"unknown variant {variant!r}")

    return _measure_step(loss_fn)


def sft_step_child(variant: str, tokens: int) -> dict:
    """Runs in the subprocess: one SFT forward + backward of the 2-layer 0.5B-width model, peak extra RSS."""
    import torch
    import yaml
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from qwen25.ops.fused_lm_head import add_fused_linear_ce_head

    widths = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/model/qwen2.5-0.5b.yaml").read_text())
    config = Qwen2Config(**{**widths, "num_hidden_layers": 2, "max_position_embeddings": max(tokens, 32768)})
    torch.manual_seed(0)
    model = Qwen2ForCausalLM._from_config(config, attn_implementation="sdpa", dtype=torch.float32).train()
    if variant == "fused":
        add_fused_linear_ce_head(model)
    ids = torch.randint(0, config.vocab_size, (1, tokens))
    labels = ids.clone()
    labels[:, ::7] = -100  # some ignored tokens, as in a real batch
    if variant not in ("model_loss", "fused"):
        raise ValueError(f"unknown sft-step variant {variant!r}")
    extra = {"use_cache": False} if variant == "model_loss" else {"fused_lm_head": True}
    return _measure_step(lambda: model(input_ids=ids, labels=labels, **extra).loss)  # peak over model, inputs, imports


def sft_step(tokens: int) -> None:
    """Parent of `--sft-step`: both variants in fresh subprocesses, one table."""
    rows = {}
    for variant in ("model_loss", "fused"):
        print(f"{variant} at {tokens} tokens ...", flush=True)
        cmd = [sys.executable, __file__, "--sft-step-child", variant, "--tokens", str(tokens)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{variant} at {tokens} tokens failed (rc {done.returncode}):\n{done.stderr[-2000:]}")
        rows[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nSFT step (forward + backward), 2 layers at Qwen2.5-0.5B widths, vocabulary 151,936, {tokens} tokens,")
    print("fp32, CPU, sdpa attention; peak RSS over model + inputs")
    print(f"{'loss':40s} {'peak GiB':>9s} {'seconds':>8s} {'loss value':>11s}")
    for name, label in (("model_loss", "transformers loss (full fp32 logits)"), ("fused", "fused linear CE (ours)")):
        r = rows[name]
        print(f"{label:40s} {r['peak_delta_bytes'] / GIB:9.2f} {r['seconds']:8.1f} {r['loss']:11.6f}")
    ratio = rows["fused"]["peak_delta_bytes"] / rows["model_loss"]["peak_delta_bytes"]
    print(f"fused / full-logits peak: {ratio:.1%}")


def measure(variant: str, tokens: int, hidden: int, vocab: int, chunk: int | None) -> dict:
    cmd = [sys.executable, __file__, "--child", variant, "--tokens", str(tokens), "--hidden", str(hidden),
           "--vocab", str(vocab)] + (["--chunk", str(chunk)] if chunk else [])  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{variant} at {tokens} tokens failed (rc {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--vocab", type=int, default=151936)
    parser.add_argument("--chunk", type=int, default=None, help="fused chunk in tokens (default: 2^26 / vocab)")
    parser.add_argument("--budget-gb", type=float, default=8.0, help="largest naive peak to attempt")
    parser.add_argument("--trl", action="store_true", help="also measure TRL 1.16's chunked kernel")
    parser.add_argument("--sft-step", action="store_true", help="a whole SFT step of a 2-layer 0.5B-width model")
    parser.add_argument("--child", choices=["naive", "fused", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--sft-step-child", choices=["model_loss", "fused"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.tokens, args.hidden, args.vocab, args.chunk)))
        return
    if args.sft_step_child:
        print(json.dumps(sft_step_child(args.sft_step_child, args.tokens)))
        return
    if args.sft_step:
        sft_step(args.tokens)
        return

    # naive: logits, their log-softmax and their gradient are each tokens x vocab x 4 bytes; size the probe from that
    per_token_estimate = 3 * args.vocab * 4
    sizes = [n for n in (1024, 2048, 4096, 8192, 16384, 32768) if n <= args.tokens] or [args.tokens]
    fitting = [n for n in sizes if n * per_token_estimate <= args.budget_gb * GIB]
    naive_tokens = max(fitting) if fitting else min(sizes)
    print(f"naive at {naive_tokens} tokens (estimated {naive_tokens * per_token_estimate / GIB:.1f} GiB) ...",
          flush=True)  # fmt: skip
    naive = measure("naive", naive_tokens, args.hidden, args.vocab, None)
    scale = args.tokens / naive_tokens
    naive_at_target = naive["peak_delta_bytes"] * scale
    print(f"fused at {args.tokens} tokens ...", flush=True)
    fused = measure("fused", args.tokens, args.hidden, args.vocab, args.chunk)
    rows = [
        ("naive (F.cross_entropy, full logits)", naive_tokens, naive["peak_delta_bytes"], naive["seconds"]),
        ("fused (qwen25.ops)", args.tokens, fused["peak_delta_bytes"], fused["seconds"]),
    ]
    if args.trl:
        print(f"trl at {args.tokens} tokens ...", flush=True)
        trl = measure("trl", args.tokens, args.hidden, args.vocab, None)
        rows.append(("trl 1.16 ChunkedLogProbFunction", args.tokens, trl["peak_delta_bytes"], trl["seconds"]))

    print(f"\nloss + backward, hidden {args.hidden}, vocabulary {args.vocab:,}, fp32, CPU; peak RSS over inputs")
    print(f"{'variant':40s} {'tokens':>8s} {'peak GiB':>9s} {'seconds':>8s} {'vs naive@' + str(args.tokens):>14s}")
    for name, tokens, peak, seconds in rows:
        at_target = peak * args.tokens / tokens
        print(f"{name:40s} {tokens:8d} {peak / GIB:9.2f} {seconds:8.1f} {at_target / naive_at_target:14.1%}")
    if naive_tokens != args.tokens:
        print(
            f"naive did not fit the {args.budget_gb:g} GB budget at {args.tokens} tokens: measured at "
            f"{naive_tokens} and scaled linearly x{scale:g} to {naive_at_target / GIB:.1f} GiB"
        )
    print(f"fused / naive at {args.tokens} tokens: {fused['peak_delta_bytes'] / naive_at_target:.1%} (goal <= 10%)")
    print(f"losses agree: naive {naive['loss']:.6f} (at {naive_tokens}), fused {fused['loss']:.6f}")


if __name__ == "__main__":
    main()
