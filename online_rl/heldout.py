"""The held-out reward curve of a GRPO run: every `heldout_eval_steps` optimizer steps (and at steps 0 and the
last) the policy answers the held-out queries greedily, the reward service scores the answers, and the run
appends {step, verifier_mean, accuracy, format_rate, reward_mean} to `<output_dir>/heldout_reward.jsonl` and
redraws `<output_dir>/reward_curve.png`. Greedy decoding draws no random numbers, so the evaluations leave
the training RNG, and with it an exact resume, untouched. The main process alone generates, on its unwrapped
model: fine on one process or with DDP, not with ZeRO-3's sharded weights (there, evaluate the checkpoints).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import TrainerCallback

from pipeline.evaluate import generate_answers


def plot_curve(points: list[dict], path: str | os.PathLike, *, title: str) -> None:
    """Held-out verifier reward (and total reward) against the policy step, as a PNG (write, then rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [p["verifier_mean"] for p in points], "o-", label="verifier reward (mean)")
    if all(p.get("reward_mean") is not None for p in points):
        ax.plot(steps, [p["reward_mean"] for p in points], "s--", label="total reward (mean)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("held-out reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


class HeldoutRewardCallback(TrainerCallback):
    """Greedy held-out evaluation every `every` steps, scored by the reward service; JSONL + PNG in output_dir."""

    def __init__(self, rows: list[dict], client, *, every: int, max_new_tokens: int, batch_size: int = 32):
        self.rows, self.client, self.every = rows, client, every
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.points: list[dict] = []

    def _files(self, args) -> tuple[Path, Path]:
        out = Path(args.output_dir)
        return out / "heldout_reward.jsonl", out / "reward_curve.png"

    def evaluate(self, model, tokenizer, step: int) -> dict:
        was_training = model.training
        model.eval()
        answers = generate_answers(
            model, tokenizer, [r["prompt"] for r in self.rows], max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size, desc=f"held-out @ step {step}",
        )  # fmt: skip
        tokenizer.padding_side = "left"
        if was_training:
            model.train()
        results = self.client.score(
            [{"prompt": r["prompt"], "response": a, "reference": r["reference"]} for r, a in zip(self.rows, answers)]
        )
        verifiers = [(res["components"].get("verifier") or {}) for res in results]
        n = len(results)
        return {
            "step": step,
            "n": n,
            "verifier_mean": sum(v.get("score", 0.0) for v in verifiers) / n,
            "accuracy": sum(bool(v.get("passed")) for v in verifiers) / n,
            "format_rate": sum(bool(v.get("format_ok")) for v in verifiers) / n,
            "reward_mean": sum(res["reward"] for res in results) / n,
            "example": answers[0][:120],
        }

    def _record(self, args, state, model, tokenizer) -> None:
        if not state.is_world_process_zero or any(p["step"] == state.global_step for p in self.points):
            return
        point = self.evaluate(model, tokenizer, state.global_step)
        self.points.append(point)
        jsonl, png = self._files(args)
        tmp = jsonl.with_name(jsonl.name + ".tmp")
        tmp.write_text("".join(json.dumps(p) + "\n" for p in self.points))
        os.replace(tmp, jsonl)
        plot_curve(self.points, png, title=f"GRPO held-out reward ({point['n']} queries, greedy)")
        print(
            f"[held-out] step {point['step']}: verifier {point['verifier_mean']:.3f}  accuracy {point['accuracy']:.3f}"
            f"  reward {point['reward_mean']:.3f}",
            flush=True,
        )

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        jsonl, _ = self._files(args)
        if jsonl.is_file():  # resumed: keep the points up to the checkpoint's step, drop the rest
            points = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
            self.points = [p for p in points if p["step"] <= state.global_step] if state.global_step else []
        self._record(args, state, model, processing_class)

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.every == 0:
            self._record(args, state, model, processing_class)

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        self._record(args, state, model, processing_class)
