"""The memory plan (qwen25/memory_plan.py, `qwenpost plan`) against measured peaks: planned vs measured, one table.

Rows measured here, each in a fresh subprocess (benchmarks/memory_32k.py's children: peak RSS over the model and
its inputs, VmHWM reset through /proc/self/clear_refs), fp32 on CPU, no gradient checkpointing:
  tiny           one SFT forward + backward of the tiny default model (configs/model/tiny.yaml, vocabulary 2,048)
                 on one packed row of 1,024 tokens (configs/sft/tiny.yaml's max_length), fused loss as the stage
  0.5b-width     the 2-layer Qwen2.5-0.5B-width model (vocabulary 151,936, tied) at 4,096 and 8,192 tokens, with
                 transformers' loss on full logits and with our fused loss
and the rows recorded on a GPU by `make gpu-check` (docs/gpu_check/*.json, sft_step: the full 24-layer 0.5B, bf16,
gradient checkpointing, 32,768 packed tokens), re-planned now. The plan's terms for a forward + backward over
resident weights: the gradients, the activations and the loss head (no optimizer states: the measured step has
none, or had them resident before the peak was reset). Goal: every row within 25%.

    .venv/bin/python benchmarks/memory_plan.py                      # ~15 min on 2 shared cores
    .venv/bin/python benchmarks/memory_plan.py --tokens 4096        # the 4K rows only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from qwen25.memory_plan import GIB, Architecture, Launch, Workload, plan  # noqa: E402

STEP_TERMS = ("gradients", "activations", "loss head")


def planned_step(arch: Architecture, tokens: int, *, fused: bool, b: int, checkpointing: bool) -> tuple[int, str]:
    """Planned bytes of a forward + backward over resident weights, and the terms that made it."""
    pl = plan(arch, Workload("sft", tokens, gradient_checkpointing=checkpointing, fused_loss=fused, compute_bytes=b),
              Launch("none", 1), gpu_memory_gib=1e6)  # fmt: skip
    terms = [t for t in pl.terms if t.name.startswith(STEP_TERMS)]
    grads = next(t for t in terms if t.name.startswith("gradients"))
    total = sum(t.bytes for t in terms) - grads.bytes + grads.bytes * b // 4  # gradients in the weights' dtype
    return total, " + ".join(f"{t.name.split(' (')[0]} {t.bytes * (b / 4 if t is grads else 1) / GIB:.2f}"
                             for t in terms)  # fmt: skip


def measure(args: list[str]) -> dict:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed (rc {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def tiny_child() -> dict:
    """Runs in the subprocess: the tiny model's SFT forward + backward on one 1,024-token row, fused loss."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from benchmarks.memory_32k import _measure_step
    from qwen25.ops.fused_lm_head import add_fused_linear_ce_head

    widths = {**yaml.safe_load((REPO / "configs/model/tiny.yaml").read_text()), "vocab_size": 2048}
    torch.manual_seed(0)
    model = Qwen2ForCausalLM._from_config(Qwen2Config(**widths), attn_implementation="sdpa", dtype=torch.float32)
    add_fused_linear_ce_head(model.train())
    ids = torch.randint(0, 2048, (1, 1024))
    labels = ids.clone()
    labels[:, ::7] = -100
    return _measure_step(lambda: model(input_ids=ids, labels=labels, fused_lm_head=True).loss)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--tiny-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny_child:
        print(json.dumps(tiny_child()))
        return

    rows = []  # (what, planned bytes, measured bytes, terms)
    tiny = Architecture.from_config({**yaml.safe_load((REPO / "configs/model/tiny.yaml").read_text()),
                                     "vocab_size": 2048})  # fmt: skip
    print("tiny SFT step ...", flush=True)
    got = measure(["benchmarks/memory_plan.py", "--tiny-child"])
    planned, terms = planned_step(tiny, 1024, fused=True, b=4, checkpointing=False)
    rows.append(("tiny, 1,024 tokens, fused, fp32, CPU", planned, got["peak_delta_bytes"], terms))
    widths = yaml.safe_load((REPO / "configs/model/qwen2.5-0.5b.yaml").read_text())
    two = Architecture.from_config({**widths, "num_hidden_layers": 2})
    for tokens in args.tokens:
        for variant, fused in (("model_loss", False), ("fused", True)):
            print(f"2-layer 0.5B width, {variant}, {tokens} tokens ...", flush=True)
            got = measure(["benchmarks/memory_32k.py", "--sft-step-child", variant, "--tokens", str(tokens)])
            planned, terms = planned_step(two, tokens, fused=fused, b=4, checkpointing=False)
            label = "fused" if fused else "full logits"
            rows.append((f"0.5B width x 2 layers, {tokens:,} tokens, {label}, fp32, CPU", planned,
                         got["peak_delta_bytes"], terms))  # fmt: skip
    full = Architecture.from_config(widths)
    for record in sorted((REPO / "docs/gpu_check").glob("*.json")):
        section = json.loads(record.read_text())["sections"].get("sft_step", {})
        for r in section.get("summary", {}).get("rows", []):
            if "step_peak_over_resident_gib" not in r:
                continue
            fused = r["variant"] == "ours"
            planned, terms = planned_step(full, r["tokens"], fused=fused, b=2, checkpointing=True)
            label = "ours: fused" if fused else "transformers: full logits"
            rows.append((f"0.5B (24 layers), {r['tokens']:,} tokens, {label}, bf16, ckpt, {record.stem}", planned,
                         int(r["step_peak_over_resident_gib"] * GIB), terms))  # fmt: skip

    print("\n| step | planned GiB | measured GiB | planned / measured | planned terms (GiB) |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for what, planned, measured, terms in rows:
        ratio = planned / measured
        worst = max(worst, abs(ratio - 1))
        print(f"| {what} | {planned / GIB:.2f} | {measured / GIB:.2f} | {ratio:.2f} | {terms} |")
    print(f"\nworst |planned / measured - 1|: {worst:.1%} (goal <= 25%: {'met' if worst <= 0.25 else 'NOT met'})")


if __name__ == "__main__":
    main()
