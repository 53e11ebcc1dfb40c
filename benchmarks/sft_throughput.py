"""SFT throughput and peak memory: our SFT stage vs plain TRL SFTTrainer, same tiny model and data, one process.

  ours   packing (best-fit-decreasing, padding-free rows of `--max-length` tokens), our `qwen25` attention on
         `cu_seq_lens`, fused linear cross-entropy, assistant-only loss: what `python -m sft` runs;
  plain  TRL SFTTrainer with `packing: false` (each batch padded to its longest sample), `attn_implementation:
         sdpa`, TRL's own LM head, assistant-only loss.
Both train `--steps` optimizer steps (after `--warmup` steps that are not timed) on the same conversations: a base
checkpoint of configs/model/tiny.yaml (random init, tokenizer trained on the data) and arithmetic word problems
with 1 to 12 worked steps, so lengths vary as in real SFT data. Tokens/s counts only real (non-pad) tokens in
both: a padded batch counts its attention mask, a packed padding-free row all its tokens. Peak memory: each
variant runs in a fresh subprocess and reports its peak RSS (VmHWM).
On CPU our attention runs packed rows as one causal `scaled_dot_product_attention` per sample
(qwen25/attention/registration.py `_segmented_sdpa`); on CUDA the Triton varlen kernel skips cross-sample blocks.
Run:

    .venv/bin/python benchmarks/sft_throughput.py              # ~3 min on 2 shared cores
    .venv/bin/python benchmarks/sft_throughput.py --steps 40 --rows 2048
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3


def conversations(n: int, seed: int = 0) -> list[dict]:
    """`n` SFT rows: a sum of 2 to 13 numbers, answered with one line per partial sum (varied lengths)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        numbers = [rng.randint(1, 99) for _ in range(rng.randint(2, 13))]
        lines, total = [], numbers[0]
        for x in numbers[1:]:
            lines.append(f"{total} + {x} = {total + x}.")
            total += x
        question = f"Add these numbers: {', '.join(map(str, numbers))}. What is the total?"
        answer = " ".join(lines) + f" The answer is \\boxed{{{total}}}."
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return rows


def _peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM")


def child(variant: str, base: str, data: str, args: argparse.Namespace) -> dict:
    """Runs in the subprocess: build the trainer of `variant`, train, return tokens/s and peak RSS."""
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import SFTTrainer

    from qwen25.model import load_model
    from qwen25.ops.fused_lm_head import use_fused_linear_ce
    from qwen25.tokenizer import load_tokenizer
    from sft.config import SFTStageConfig

    torch.set_num_threads(args.threads)
    ours = variant == "ours"
    cfg = SFTStageConfig(
        output_dir=tempfile.mkdtemp(prefix=f"sft_tp_{variant}_"), report_to="none", bf16=False, seed=0,
        max_steps=args.warmup + args.steps, learning_rate=1e-3, logging_steps=1000, save_strategy="no",
        assistant_only_loss=True, max_length=args.max_length, packing=ours, fused_linear_ce=ours,
        per_device_train_batch_size=args.packed_batch if ours else args.padded_batch, dataloader_num_workers=0,
    )  # fmt: skip
    model = load_model(base) if ours else AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa")
    trainer = SFTTrainer(
        model=model, args=cfg, train_dataset=load_from_disk(data), processing_class=load_tokenizer(base)
    )
    if ours:
        use_fused_linear_ce(trainer, stats=("entropy", "is_top1"))
        assert model.config._attn_implementation == "qwen25"

    counts: list[int] = []
    compute_loss = trainer.compute_loss

    def counting_loss(model, inputs, *a, **k):
        mask = inputs.get("attention_mask")
        counts.append(int(mask.sum()) if mask is not None else inputs["input_ids"].numel())  # real tokens only
        return compute_loss(model, inputs, *a, **k)

    trainer.compute_loss = counting_loss

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, *_, **__):
            self.ends.append(time.perf_counter())

    clock = Clock()
    trainer.add_callback(clock)
    trainer.train()
    timed_tokens = sum(counts[args.warmup :])  # one compute_loss per step (no accumulation)
    seconds = clock.ends[-1] - clock.ends[args.warmup - 1]
    return {
        "tokens_per_s": timed_tokens / seconds, "tokens": timed_tokens, "seconds": seconds,
        "peak_rss_bytes": _peak_rss_bytes(), "tokens_per_step": sum(counts) / max(len(counts), 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rows", type=int, default=1024, help="conversations in the data set")
    parser.add_argument("--max-length", type=int, default=1024, help="packed row length (ours); truncation (both)")
    parser.add_argument("--packed-batch", type=int, default=2, help="packed rows per step (ours; tiny.yaml's 2)")
    parser.add_argument("--padded-batch", type=int, default=16, help="samples per step (plain)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["ours", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.base, args.data, args)))
        return
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")

    from datasets import Dataset

    from qwen25.init import init_base_checkpoint

    rows = conversations(args.rows)
    with tempfile.TemporaryDirectory(prefix="sft_throughput_") as tmp:
        corpus = [m["content"] for r in rows for m in r["messages"]]
        base = init_base_checkpoint(Path(tmp) / "base", model_config="tiny", corpus=corpus, seed=0)
        data = Path(tmp) / "sft"
        Dataset.from_list(rows).save_to_disk(str(data))
        results = {}
        variants = ("plain", "ours")
        for variant in variants:
            print(f"{variant} ...", flush=True)
            cmd = [sys.executable, __file__, "--child", variant, "--base", str(base), "--data", str(data),
                   "--steps", str(args.steps), "--warmup", str(args.warmup), "--max-length", str(args.max_length),
                   "--packed-batch", str(args.packed_batch), "--padded-batch", str(args.padded_batch),
                   "--threads", str(args.threads)]  # fmt: skip
            env = {**os.environ, "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"}
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{variant} failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
            results[variant] = json.loads(done.stdout.strip().splitlines()[-1])

    print(f"\nSFT on configs/model/tiny.yaml, {args.rows} conversations, {args.steps} timed steps, CPU fp32, 1 proc")
    print(f"{'variant':58s} {'tokens/s':>9s} {'tokens/step':>11s} {'peak RSS GiB':>12s}")
    labels = {
        "plain": "plain TRL (padding, sdpa, TRL head)",
        "ours": "ours (packing, qwen25 attention, fused linear CE)",
    }
    for variant in variants:
        r = results[variant]
        peak = r["peak_rss_bytes"] / GIB
        print(f"{labels[variant]:58s} {r['tokens_per_s']:9.0f} {r['tokens_per_step']:11.0f} {peak:12.2f}")
    speedup = results["ours"]["tokens_per_s"] / results["plain"]["tokens_per_s"]
    memory = results["ours"]["peak_rss_bytes"] / results["plain"]["peak_rss_bytes"]
    print(f"ours / plain: {speedup:.2f}x tokens/s (goal >= 2x), {memory:.2f}x peak RSS")


if __name__ == "__main__":
    main()
