"""Held-out evaluation of a checkpoint: greedy answers to RL-query rows, checked by the verifier, scored by the
service. `generate_answers` and `score_answers` are also the engine of `qwenpost eval`'s benchmark suites
(pipeline/eval_suites.py): one batched generation loop and one way of verifying, whatever the data.

For each row (`prompt` messages, `reference` verifier spec) the model answers greedily (batched, left-padded,
KV cache, our attention); the verifier from `reference` gives accuracy and whether the answer was in the
expected format; the reward service, when given, gives the mean reward the RL stage optimises.
Prompts past the trained length: pass `dca` (Dual Chunk Attention, qwen25/attention/dca.py) to evaluate with it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from data_builders.verifiers import verify
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer


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


@torch.inference_mode()
def generate_answers(
    model,
    tokenizer,
    prompts: list[list[dict]],
    *,
    max_new_tokens: int,
    batch_size: int,
    desc: str = "eval",
    num_samples: int = 0,
    temperature: float = 1.0,
) -> list[str]:
    """Completions for chat prompts, in order: greedy (num_samples 0), or `num_samples` per prompt sampled at
    `temperature` (plain sampling, no top-k/top-p), prompt-major: prompt 0's samples first. Sampling draws from
    the global torch RNG: callers that must not disturb it wrap the call in `torch.random.fork_rng()`."""
    tokenizer.padding_side = "left"
    device = getattr(model, "device", None)
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0, "num_return_sequences": num_samples}
        if num_samples
        else {"do_sample": False}
    )
    answers: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, unit="batch"):
        chunk = prompts[start : start + batch_size]
        texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in chunk]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        if device is not None:
            batch = batch.to(device)
        out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
        new_tokens = out[:, batch["input_ids"].shape[1] :]  # (batch, new) after the left-padded prompt
        answers.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return answers


def score_answers(answers: list[str], references: list[dict | str], *, code_workers: int | None = None) -> list:
    """The verifier's verdict on each answer, in order; code references run together on the sandbox's worker pool."""
    from data_builders.verifiers import parse_reference

    refs = [parse_reference(r) for r in references]
    results: list = [None] * len(refs)
    code = [i for i, r in enumerate(refs) if r.get("type") == "code"]
    if code:
        from data_builders.verifiers.code import verify_code_many

        batch = verify_code_many([(answers[i], refs[i]) for i in code], workers=code_workers)
        for i, result in zip(code, batch, strict=True):
            results[i] = result
    for i, ref in enumerate(refs):
        if results[i] is None:
            results[i] = verify(answers[i], ref)
    return results


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    rows: list[dict],
    *,
    reward_client=None,
    max_new_tokens: int = 64,
    batch_size: int = 32,
    label: str | None = None,
    dca: dict | bool | None = None,
) -> EvalResult:
    """Accuracy, format rate and mean reward of `checkpoint` on RL-query rows.

    dca: Dual Chunk Attention, as `qwen25.model.load_model` takes it (None: the checkpoint's config decides).
    """
    model = load_model(checkpoint, dca=dca).eval()
    tokenizer = load_tokenizer(checkpoint)
    prompts = [row["prompt"] for row in rows]
    answers = generate_answers(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, desc=label or "eval"
    )
    results = score_answers(answers, [row["reference"] for row in rows])
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
