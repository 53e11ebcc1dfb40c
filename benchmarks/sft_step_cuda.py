"""One packed SFT step of the full Qwen2.5-0.5B architecture on a GPU: ours vs plain transformers, in one process.

The model is configs/model/qwen2.5-0.5b.yaml (24 layers, hidden 896, GQA 14/2, head_dim 64, vocabulary 151,936,
tied embeddings), random init, bf16 weights, on one CUDA device. The batch is one row of `--tokens` tokens packed
from seeded uneven documents (lengths in [256, 4096]), position ids restarting per document, labels on every
token but each document's first (as the SFT stage's packing makes them). A step is forward + backward + AdamW.

Variants, same weights, same batch, measured one after the other in this process:
  ours          `attn_implementation="qwen25"` (the Triton varlen kernel, no cross-document attention), gradient
                checkpointing, the fused linear cross-entropy (logits never whole);
  transformers  `attn_implementation="sdpa"` with the same position ids (transformers turns them into a packed
                mask), gradient checkpointing, the model's own loss on full fp32 logits.
Printed: peak GPU memory of the step over the model and optimizer states (torch.cuda.max_memory_allocated after a
reset), the median step time of `--steps` timed steps after one warm-up, tokens/s, the first step's loss (the two
must agree to bf16 precision: same model, same batch, different kernels), and the ours/transformers ratios.
A variant that runs out of memory is reported as such, not hidden.

    python3 benchmarks/sft_step_cuda.py                     # 32,768 tokens, 3 timed steps (an H100/H200: ~1 min)
    python3 benchmarks/sft_step_cuda.py --tokens 4096 --json out.json

Needs only torch, triton and transformers (no TRL, datasets or wandb), so it runs on a bare GPU image too.
Without CUDA it exits with a message (exit 2): the CPU equivalent is `benchmarks/memory_32k.py --sft-step`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

GIB = 1024**3
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python3 benchmarks/sft_step_cuda.py` from anywhere

from benchmarks.attention import document_lengths  # noqa: E402
from benchmarks.memory_plan import planned_step  # noqa: E402
from qwen25.memory_plan import Architecture  # noqa: E402
from qwen25.model import build_model, load_preset, make_config  # noqa: E402
from qwen25.ops import fused_linear_cross_entropy  # noqa: E402


def packed_row(tokens: int, vocab: int, seed: int, low: int = 256, high: int = 4096):
    """input_ids, position_ids, labels of one packed row: (1, tokens) each; document lengths too."""
    lengths = document_lengths(tokens, low, high, seed)  # the attention benchmark's uneven documents
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, tokens), generator=g)
    position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
    labels = ids.clone()
    labels[position_ids == 0] = -100  # no document predicts across its start
    return ids, position_ids, labels, lengths


def _loss(model, variant: str, ids, position_ids, labels) -> torch.Tensor:
    if variant == "ours":
        hidden = model.model(input_ids=ids, position_ids=position_ids, use_cache=False).last_hidden_state
        hidden, target = hidden[0, :-1], labels[0, 1:]  # position t predicts token t + 1
        return fused_linear_cross_entropy(hidden, model.lm_head.weight, target)
    return model(input_ids=ids, position_ids=position_ids, labels=labels, use_cache=False).loss


def run_variant(variant: str, tokens: int, steps: int, seed: int, device: str = "cuda", layers: int | None = None
                ) -> dict:
    preset = load_preset("qwen2.5-0.5b")
    overrides = {"num_hidden_layers": layers} if layers else {}
    config = make_config(preset, max_position_embeddings=max(tokens, preset["max_position_embeddings"]), **overrides)
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    model = build_model(config, seed=seed)  # fp32 init on CPU, the same weights for both variants
    if variant == "transformers":
        model.config._attn_implementation = "sdpa"
    model = model.to(device, torch.bfloat16).train()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    ids, position_ids, labels, lengths = (
        t.to(device) if torch.is_tensor(t) else t for t in packed_row(tokens, config.vocab_size, seed)
    )
    result = {"variant": variant, "tokens": tokens, "documents": len(lengths), "steps": steps}
    times, loss_first = [], None
    try:
        for step in range(steps + 1):
            if step == 1:  # after the warm-up step: states allocated, kernels compiled and tuned
                sync()
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                result["resident_gib"] = torch.cuda.memory_allocated() / GIB if cuda else 0.0
            sync()
            start = time.perf_counter()
            loss = _loss(model, variant, ids, position_ids, labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync()
            if step == 0:
                loss_first = float(loss.detach())
            else:
                times.append(time.perf_counter() - start)
    except torch.OutOfMemoryError as exc:
        result["error"] = f"out of memory: {str(exc).splitlines()[0]}"
        return result
    finally:
        del model, optimizer
        if cuda:
            torch.cuda.empty_cache()
    result["peak_gib"] = torch.cuda.max_memory_allocated() / GIB if cuda else 0.0
    result["step_peak_over_resident_gib"] = result["peak_gib"] - result["resident_gib"]
    result["step_seconds"] = statistics.median(times)
    result["tokens_per_s"] = tokens / result["step_seconds"]
    result["loss_first_step"] = loss_first
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=32768)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=["ours", "transformers"], choices=["ours", "transformers"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: a smoke run of the code path (no memory figures), e.g. with --layers 2")
    parser.add_argument("--layers", type=int, help="override the 24 layers (smoke runs)")
    args = parser.parse_args(argv)
    if args.tokens < 2 or args.steps < 1:
        parser.error(f"--tokens must be >= 2 and --steps >= 1 (got {args.tokens}, {args.steps})")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("sft_step_cuda: no CUDA device; this benchmark times a GPU step (CPU: memory_32k.py --sft-step)")
        return 2
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (smoke run)"
    print(f"{where}: Qwen2.5-0.5B architecture ({args.layers or 24} layers, random init), bf16, one packed "
          f"row of {args.tokens} tokens, fwd + bwd + AdamW, gradient checkpointing", flush=True)
    rows = []
    for variant in args.variants:
        print(f"{variant} ...", flush=True)
        rows.append(run_variant(variant, args.tokens, args.steps, args.seed, args.device, args.layers))
    # the memory plan's step over resident (qwenpost plan's terms: bf16 gradients, checkpointed activations, loss)
    arch = Architecture.from_config({**load_preset("qwen2.5-0.5b"), **({"num_hidden_layers": args.layers}
                                                                       if args.layers else {})})  # fmt: skip
    for r in rows:
        r["planned_step_gib"] = planned_step(arch, args.tokens, fused=r["variant"] == "ours", b=2,
                                             checkpointing=True)[0] / GIB  # fmt: skip
    print("\n| variant | docs | resident GiB | step peak GiB | peak over resident | planned | step s | tokens/s "
          "| loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | {r['documents']} | - | - | - | {r['planned_step_gib']:.2f} | - | - | "
                  f"{r['error']} |")
            continue
        print(f"| {r['variant']} | {r['documents']} | {r['resident_gib']:.2f} | {r['peak_gib']:.2f} | "
              f"{r['step_peak_over_resident_gib']:.2f} | {r['planned_step_gib']:.2f} | {r['step_seconds']:.3f} | "
              f"{r['tokens_per_s']:,.0f} | {r['loss_first_step']:.4f} |")
    done = {r["variant"]: r for r in rows if "error" not in r}
    summary = {"rows": rows}
    if {"ours", "transformers"} <= set(done):
        ours, theirs = done["ours"], done["transformers"]
        summary["tokens_per_s_ratio"] = ours["tokens_per_s"] / theirs["tokens_per_s"]
        peaks = ours["step_peak_over_resident_gib"], theirs["step_peak_over_resident_gib"]
        summary["step_peak_ratio"] = peaks[0] / peaks[1] if peaks[1] else float("nan")  # CPU smoke runs: no peaks
        summary["loss_abs_diff"] = abs(ours["loss_first_step"] - theirs["loss_first_step"])
        print(f"\nours / transformers: tokens/s {summary['tokens_per_s_ratio']:.2f}x, step peak over resident "
              f"{summary['step_peak_ratio']:.1%}; first-step loss |diff| {summary['loss_abs_diff']:.2e}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
