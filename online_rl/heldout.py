"""The held-out reward curve of a GRPO run: every `heldout_eval_steps` optimizer steps (and at steps 0 and the
last) the policy answers the held-out queries greedily, the reward service scores the answers, and the run
appends {step, verifier_mean, accuracy, format_rate, reward_mean} to `<output_dir>/heldout_reward.jsonl` and
redraws `<output_dir>/reward_curve.png`.

With `samples` k > 0 each evaluation also draws k responses per query at the training temperature and records
their mean verifier reward (`sampled_verifier_mean`). That is the expected reward of the sampling policy, the
quantity GRPO maximises, and it averages k answers per query where greedy has one 0/1 answer. The samples come
from a fixed seed inside `torch.random.fork_rng`: every evaluation uses the same random stream, and the training
RNG (with it, an exact resume) is untouched.

The main process alone generates, on its unwrapped model: fine on one process or with DDP, not with ZeRO-3's
sharded weights (there, evaluate the checkpoints).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import TrainerCallback

from qwen25.generation import generate
from stagekit.atomic import staged_file, write_atomic


def plot_curve(points: list[dict], path: str | os.PathLike, *, title: str) -> None:
    """Held-out verifier reward (and total reward) against the policy step, as a PNG (write, then rename)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [p["verifier_mean"] for p in points], "o-", label="verifier reward, greedy")
    if all(p.get("sampled_verifier_mean") is not None for p in points):
        k = points[-1].get("samples")
        ax.plot(steps, [p["sampled_verifier_mean"] for p in points], "^-", label=f"verifier reward, {k} samples/query")
    if all(p.get("reward_mean") is not None for p in points):
        ax.plot(steps, [p["reward_mean"] for p in points], "s--", label="total reward, greedy")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("held-out reward (mean)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


class HeldoutRewardCallback(TrainerCallback):
    """Greedy held-out evaluation every `every` steps, scored by the reward service; JSONL + PNG in output_dir."""

    def __init__(
        self,
        rows: list[dict],
        client,
        *,
        every: int,
        max_new_tokens: int,
        batch_size: int = 32,
        samples: int = 0,
        temperature: float = 1.0,
        seed: int = 0,
    ):
        self.rows, self.client, self.every = rows, client, every
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.samples, self.temperature, self.seed = samples, temperature, seed
        self.points: list[dict] = []

    def _files(self, args) -> tuple[Path, Path]:
        out = Path(args.output_dir)
        return out / "heldout_reward.jsonl", out / "reward_curve.png"

    def _score(self, rows: list[dict], answers: list[str]) -> dict:
        """Means over the answers: verifier reward, accuracy, format rate (the verifier's) and total reward."""
        results = self.client.score(
            [{"prompt": r["prompt"], "response": a, "reference": r["reference"]} for r, a in zip(rows, answers)]
        )
        verifiers = [res["components"].get("verifier") or {} for res in results]
        n = len(results)
        return {
            "verifier_mean": sum(v.get("score", 0.0) for v in verifiers) / n,
            "accuracy": sum(bool(v.get("passed")) for v in verifiers) / n,
            "format_rate": sum(bool(v.get("format_ok")) for v in verifiers) / n,
            "reward_mean": sum(res["reward"] for res in results) / n,
        }

    def evaluate(self, model, tokenizer, step: int) -> dict:
        was_training = model.training
        model.eval()
        prompts = [r["prompt"] for r in self.rows]
        answers = generate(
            model, tokenizer, prompts, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
            desc=f"held-out @ step {step}",
        )  # fmt: skip
        sampled = None
        if self.samples:
            with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
                torch.manual_seed(self.seed)
                sampled = generate(
                    model, tokenizer, prompts, max_new_tokens=self.max_new_tokens,
                    batch_size=max(1, self.batch_size // self.samples), desc=f"held-out @ step {step}, sampled",
                    samples=self.samples, temperature=self.temperature,
                )  # fmt: skip
        tokenizer.padding_side = "left"
        if was_training:
            model.train()
        point = {"step": step, "n": len(self.rows), **self._score(self.rows, answers), "example": answers[0][:120]}
        if sampled is not None:
            repeated = [r for r in self.rows for _ in range(self.samples)]  # prompt-major, as generate returns them
            means = self._score(repeated, sampled)
            point |= {
                "samples": self.samples,
                "temperature": self.temperature,
                "sampled_verifier_mean": means["verifier_mean"],
                "sampled_accuracy": means["accuracy"],
                "sampled_reward_mean": means["reward_mean"],
            }
        return point

    def _record(self, args, state, model, tokenizer) -> None:
        if not state.is_world_process_zero or any(p["step"] == state.global_step for p in self.points):
            return
        point = self.evaluate(model, tokenizer, state.global_step)
        self.points.append(point)
        jsonl, png = self._files(args)
        write_atomic(jsonl, "".join(json.dumps(p) + "\n" for p in self.points))
        plot_curve(self.points, png, title=f"GRPO held-out reward ({point['n']} queries)")
        print(
            f"[held-out] step {point['step']}: verifier {point['verifier_mean']:.3f}  accuracy {point['accuracy']:.3f}"
            f"  reward {point['reward_mean']:.3f}"
            + (f"  sampled verifier {point['sampled_verifier_mean']:.3f}" if "sampled_verifier_mean" in point else ""),
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
