"""RL log-prob pass, packed vs padded: tokens/s and peak memory, both measured in this one process.

The pass GRPO runs three times per batch (old policy, reference: no gradient; the loss pass: forward + backward) and
DPO twice (policy, reference), on a batch of prompts with completions of mixed lengths:
  padded  TRL 1.16's pass: `model(input_ids, attention_mask, labels=..., fused_lm_head=True)` on the padded
          (B, P + C) batch (left-padded prompts, right-padded completions), as GRPOTrainer.
          _get_per_token_logps_and_entropies does it;
  packed  `qwen25.packing.packed_token_logps(..., fused_lm_head=True)`: the real tokens of the batch in one row,
          position_ids restarting per sequence, our attention on the segments (what `padding_free: true` runs).
Both through TRL's fused LM head (temperature 0.7, log-probs and entropy), our `qwen25` attention, fp32. The model is
configs/model/tiny.yaml (random init; `--vocab` sets the vocabulary, which the preset leaves to the tokenizer).
The batch (fixed seed): `--rows` prompts of 16-128 tokens with completions of `--min-len` to `--max-len` tokens
(uniform). Tokens/s counts real (non-pad) tokens in both. The two variants alternate over `--reps` repetitions after
one untimed warm-up each; the median is reported. Peak memory: CUDA, torch.cuda.max_memory_allocated over the pass;
CPU, the process's VmHWM (reset through /proc/self/clear_refs) minus its RSS before the pass, i.e. the extra memory
the pass needed at its peak (allocator caching makes this approximate on CPU).
On CPU our attention runs a packed row as one SDPA call per sequence (`_segmented_sdpa`), a padded batch as one SDPA
call on a (B, 1, L, L) mask; on CUDA the Triton varlen kernel runs both, skipping the padding.

    .venv/bin/python benchmarks/logprob_packing.py            # 32 rows, completions 16-512 tokens, 1 thread
    .venv/bin/python benchmarks/logprob_packing.py --quick    # a few seconds: checks that it runs
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

GIB = 1024**3


def ragged_batch(rows: int, min_len: int, max_len: int, vocab: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(rows, P + C) GRPO-layout ids and mask (prompts of 16-128 tokens left-padded, completions right-padded), C."""
    gen = torch.Generator().manual_seed(seed)
    prompt_lens = torch.randint(16, 129, (rows,), generator=gen).tolist()
    completion_lens = torch.randint(min_len, max_len + 1, (rows,), generator=gen).tolist()
    width_p, width_c = max(prompt_lens), max(completion_lens)
    ids = torch.randint(1, vocab, (rows, width_p + width_c), generator=gen)
    mask = torch.zeros_like(ids)
    for row, (p, c) in enumerate(zip(prompt_lens, completion_lens)):
        mask[row, width_p - p : width_p + c] = 1
    return ids, mask, width_c


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def measure_peak(fn, device: torch.device) -> float:
    """Extra memory (bytes) `fn()` needed at its peak."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) * 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=32, help="sequences per batch (GRPO: prompts x generations)")
    parser.add_argument("--min-len", type=int, default=16, help="shortest completion")
    parser.add_argument("--max-len", type=int, default=512, help="longest completion")
    parser.add_argument("--vocab", type=int, default=8192, help="vocabulary of the random-init model")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per variant (median reported)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-backward", action="store_true", help="time only the no-gradient pass")
    parser.add_argument("--quick", action="store_true", help="4 rows, completions 4-32, vocab 512, 1 rep")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.min_len, args.max_len, args.vocab, args.reps = 4, 4, 32, 512, 1

    from trl.trainer.utils import add_fused_lm_head

    from qwen25.model import build_model, load_preset, make_config
    from qwen25.packing import packed_token_logps

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(make_config(load_preset("tiny"), vocab_size=args.vocab), seed=0).to(device)
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    ids, mask, completion_width = ragged_batch(args.rows, args.min_len, args.max_len, args.vocab, args.seed)
    ids, mask = ids.to(device), mask.to(device)
    real = int(mask.sum())

    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-completion_width] = -100

    def padded():
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        return out.log_probs[:, -completion_width:], out.entropy[:, -completion_width:]

    def packed():
        return packed_token_logps(model, ids, mask, completion_width, compute_entropy=True, fused_lm_head=True)

    variants = {"padded": padded, "packed": packed}
    with torch.no_grad():  # the two agree (tests/qwen25/test_packing.py checks it at 1e-5); a cheap guard here
        diff = (padded()[0] - packed()[0]).abs().max().item()

    modes = [("no_grad", False)] + ([] if args.no_backward else [("fwd+bwd", True)])
    results: dict[tuple[str, str], dict] = {}
    for mode, grad in modes:

        def run(fn, grad=grad):
            if grad:
                logps, entropy = fn()
                (logps.sum() + 0.01 * entropy.sum()).backward()
                model.zero_grad(set_to_none=True)
            else:
                with torch.no_grad():
                    fn()
            if device.type == "cuda":
                torch.cuda.synchronize()

        times = {name: [] for name in variants}
        for name, fn in variants.items():
            run(fn)  # warm-up
        for _ in range(args.reps):
            for name, fn in variants.items():
                start = time.perf_counter()
                run(fn)
                times[name].append(time.perf_counter() - start)
        for name, fn in variants.items():
            seconds = statistics.median(times[name])
            results[(mode, name)] = {"tokens_per_s": real / seconds, "seconds": seconds,
                                     "peak": measure_peak(lambda fn=fn: run(fn), device)}  # fmt: skip

    padded_tokens = ids.numel()
    print(
        f"\nlog-prob pass on configs/model/tiny.yaml (vocab {args.vocab}), {args.rows} rows, completions "
        f"{args.min_len}-{args.max_len} tokens, {device.type} fp32, {args.threads} thread(s), median of {args.reps}"
    )
    print(f"real tokens {real}, padded batch {tuple(ids.shape)} = {padded_tokens} ({real / padded_tokens:.0%} real); "
          f"max |logps diff| packed vs padded {diff:.1e}")  # fmt: skip
    print("| pass | variant | tokens/s | ms | peak extra memory GiB |")
    print("|---|---|---|---|---|")
    for mode, _ in modes:
        for name in variants:
            r = results[(mode, name)]
            print(f"| {mode} | {name} | {r['tokens_per_s']:.0f} | {r['seconds'] * 1e3:.0f} | {r['peak'] / GIB:.3f} |")
    for mode, _ in modes:
        speed = results[(mode, "packed")]["tokens_per_s"] / results[(mode, "padded")]["tokens_per_s"]
        memory = results[(mode, "packed")]["peak"] / max(results[(mode, "padded")]["peak"], 1)
        print(f"{mode}: packed / padded {speed:.2f}x tokens/s, {memory:.2f}x peak memory")


if __name__ == "__main__":
    main()
