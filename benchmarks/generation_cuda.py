"""GRPO-shaped generation on a GPU: our attention vs transformers SDPA, in one process.

The rollout of one GRPO step at the report's group size: `--queries` prompts x 8 responses (RECIPE.md: 8 responses
per query), sampled with the KV cache by transformers' `generate`, from the full Qwen2.5-0.5B architecture
(configs/model/qwen2.5-0.5b.yaml, random init, bf16) on one CUDA device. Prompts have seeded uneven lengths and
are left-padded to the longest, as `qwen25.generation.generate` pads them; every response is forced to
`--new_tokens` tokens (`min_new_tokens`), so both variants do the same work. Printed: new tokens/s of each and the
ratio, peak GPU memory, and whether the greedy first 16 tokens of the two agree (a parity check, bf16).

    python3 benchmarks/generation_cuda.py                       # 8 queries x 8, 256 new tokens
    python3 benchmarks/generation_cuda.py --queries 32 --json out.json

Needs only torch, triton and transformers. Without CUDA it exits with a message (exit 2).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

GIB = 1024**3
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qwen25.model import build_model, load_preset, make_config  # noqa: E402

RESPONSES_PER_QUERY = 8  # RECIPE.md: GRPO samples 8 responses per query


def left_padded_prompts(queries: int, vocab: int, seed: int, low: int, high: int, pad_id: int):
    """input_ids and attention_mask (queries, longest), left-padded; prompt lengths seeded in [low, high]."""
    rng = random.Random(seed)
    lengths = [rng.randint(low, high) for _ in range(queries)]
    g = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.full((queries, longest), pad_id, dtype=torch.long)
    mask = torch.zeros(queries, longest, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, longest - n :] = torch.randint(1, vocab, (n,), generator=g)
        mask[row, longest - n :] = 1
    return ids, mask


def run_variant(variant: str, args) -> dict:
    preset = load_preset("qwen2.5-0.5b")
    overrides = {"num_hidden_layers": args.layers} if args.layers else {}
    model = build_model(make_config(preset, **overrides), seed=args.seed)
    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if variant == "transformers":
        model.config._attn_implementation = "sdpa"
    model = model.to(args.device, torch.bfloat16).eval()
    pad_id = 0
    ids, mask = (t.to(args.device) for t in left_padded_prompts(args.queries, model.config.vocab_size, args.seed,
                                                            args.prompt_min, args.prompt_max, pad_id))
    common = {"attention_mask": mask, "pad_token_id": pad_id, "eos_token_id": None}
    with torch.inference_mode():
        greedy = model.generate(ids, max_new_tokens=16, min_new_tokens=16, do_sample=False, **common)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        out = model.generate(ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=True,
                             temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=RESPONSES_PER_QUERY, **common)
        sync()
        seconds = time.perf_counter() - start
    new = out.shape[0] * (out.shape[1] - ids.shape[1])
    result = {"variant": variant, "sequences": out.shape[0], "new_tokens": new, "seconds": seconds,
              "tokens_per_s": new / seconds, "peak_gib": torch.cuda.max_memory_allocated() / GIB if cuda else 0.0,
              "greedy_16": greedy[:, ids.shape[1]:].tolist()}  # fmt: skip
    del model
    if cuda:
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument("--prompt_min", type=int, default=64)
    parser.add_argument("--prompt_max", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cpu: a smoke run of the code path (no memory figures), e.g. with --layers 2")
    parser.add_argument("--layers", type=int, help="override the 24 layers (smoke runs)")
    args = parser.parse_args(argv)
    if min(args.queries, args.new_tokens, args.prompt_min) < 1 or args.prompt_max < args.prompt_min:
        parser.error("--queries, --new_tokens, --prompt_min must be >= 1 and --prompt_max >= --prompt_min")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("generation_cuda: no CUDA device; this benchmark times GPU generation")
        return 2
    where = torch.cuda.get_device_name() if args.device == "cuda" else "CPU (smoke run)"
    print(f"{where}: Qwen2.5-0.5B architecture (random init), bf16, {args.queries} queries x "
          f"{RESPONSES_PER_QUERY} responses, {args.new_tokens} new tokens each, prompts {args.prompt_min}-"
          f"{args.prompt_max} tokens left-padded", flush=True)
    rows = {}
    for variant in ("ours", "transformers"):
        print(f"{variant} ...", flush=True)
        rows[variant] = run_variant(variant, args)
    print("\n| variant | sequences | new tokens | seconds | tokens/s | peak GiB |\n|---|---|---|---|---|---|")
    for r in rows.values():
        print(f"| {r['variant']} | {r['sequences']} | {r['new_tokens']} | {r['seconds']:.2f} | "
              f"{r['tokens_per_s']:,.0f} | {r['peak_gib']:.2f} |")
    ratio = rows["ours"]["tokens_per_s"] / rows["transformers"]["tokens_per_s"]
    a, b = rows["ours"]["greedy_16"], rows["transformers"]["greedy_16"]
    same = sum(x == y for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / sum(len(r) for r in a)
    print(f"\nours / transformers tokens/s: {ratio:.2f}x; greedy first 16 tokens identical: {same:.1%} "
          "(bf16: kernels may round differently, and one different token changes the rest of its row)")
    if args.json:
        summary = {"rows": [{k: v for k, v in r.items() if k != "greedy_16"} for r in rows.values()],
                   "tokens_per_s_ratio": ratio, "greedy_agreement": same}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
