"""Held-out evaluation of a checkpoint: greedy answers to RL-query rows, checked by the verifier, scored by the
service. The answers come from the project's one generation loop (`qwen25.generation.generate`) and the verdicts
from `verifiers.verify_many`, as in `qwenpost eval`'s benchmark suites (evals/suites.py) and GRPO's held-out curve.

For each row (`prompt` messages, `reference` verifier spec) the model answers greedily (batched, left-padded,
KV cache, our attention); the verifier from `reference` gives accuracy and whether the answer was in the
expected format; the reward service, when given, gives the mean reward the RL stage optimises.
Prompts past the trained length: pass `dca` (Dual Chunk Attention, qwen25/attention/dca.py) to evaluate with it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from qwen25.generation import generate
from qwen25.model import load_for_inference
from qwen25.tokenizer import load_tokenizer
from verifiers import verify_many


@dataclass
class EvalResult:
    checkpoint: str
    n: int
    accuracy: float  # share of answers the verifier accepts
    format_rate: float  # share of answers given in the expected final-answer format
    mean_reward: float | None  # mean total reward from the service (None without one)
    samples: list[dict]  # a few (prompt, response, passed) for the eye

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    rows: list[dict],
    *,
    reward_client=None,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    label: str | None = None,
    dca: dict | bool | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> EvalResult:
    """Accuracy, format rate and mean reward of `checkpoint` on RL-query rows.

    dca: Dual Chunk Attention, as `qwen25.model.load_model` takes it (None: the checkpoint's config decides).
    device/dtype: where and in what precision the model runs (`stagekit.device`; "auto": a GPU in bf16 if any).
    """
    model = load_for_inference(checkpoint, device=device, dtype=dtype, dca=dca)
    tokenizer = load_tokenizer(checkpoint)
    prompts = [row["prompt"] for row in rows]
    answers = generate(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, desc=label or "eval"
    )
    results = verify_many(answers, [row["reference"] for row in rows])
    mean_reward = None
    if reward_client is not None:
        scored = reward_client.score(
            [
                {"prompt": row["prompt"], "response": answer, "reference": row["reference"]}
                for answer, row in zip(answers, rows, strict=True)
            ]
        )
        mean_reward = sum(s["reward"] for s in scored) / len(scored)
    n = len(rows)
    return EvalResult(
        checkpoint=str(checkpoint),
        n=n,
        accuracy=sum(r.passed for r in results) / n,
        format_rate=sum(r.format_ok for r in results) / n,
        mean_reward=mean_reward,
        samples=[
            {"prompt": row["prompt"][-1]["content"], "response": answer, "passed": r.passed}
            for row, answer, r in list(zip(rows, answers, results, strict=True))[:3]
        ],
    )
