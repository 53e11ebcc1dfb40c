"""Query ordering by reward variance (RECIPE.md, online RL: "queries ordered by the variance of their reward
scores, highest first").

`python -m online_rl score --config configs/grpo/<name>.yaml` is the scoring pass: the starting policy
(`model_name_or_path`) samples `score_samples` responses per query at the training temperature, the reward
service scores them, and each query's population variance of the total reward is written to its
`reward_variance` field (the DESIGN.md RL query row) in `scored_dataset_path`, sorted highest variance first.
Training then reads that dataset with TRL's own `RepeatSampler` and `shuffle_dataset=False`: the sampler walks
the rows in order, repeating each `num_generations` times, so no sampler of ours is needed, and the Trainer's
own data skipping on resume lands on the exact query where the run stopped.

A query whose samples all get the same reward (all right or all wrong) has variance 0 and gives GRPO no
signal; ordering by variance puts the queries the policy is unsure about first.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch
from datasets import Dataset
from tqdm.auto import tqdm

from pipeline.configs import ConfigError


def reward_variance(rewards: Sequence[float]) -> float:
    """Population variance of one query's sampled rewards: mean((r - mean(r))^2); 0.0 for fewer than 2."""
    if len(rewards) < 2:
        return 0.0
    mean = sum(rewards) / len(rewards)
    return sum((r - mean) ** 2 for r in rewards) / len(rewards)


def variance_order(variances: Sequence[float | None]) -> list[int]:
    """Row indices, highest variance first; ties keep dataset order (stable). None (unscored) is an error."""
    missing = [i for i, v in enumerate(variances) if v is None]
    if missing:
        raise ConfigError(
            f"{len(missing)} of {len(variances)} queries have no reward_variance (first: row {missing[0]}); "
            "run the scoring pass first: python -m online_rl score --config <grpo config>"
        )
    return sorted(range(len(variances)), key=lambda i: -variances[i])


def load_query_rows(path: str | os.PathLike, *, key: str, columns: list[str]) -> Dataset:
    """`load_records` of RL-query rows plus their `id`; rows without one (hand-made files) get the row index."""
    from pipeline.stage_io import load_records

    try:
        return load_records(path, key=key, columns=["id", *columns])
    except ConfigError as e:
        if "lacks column(s) ['id']" not in str(e):
            raise
    rows = load_records(path, key=key, columns=columns)
    return rows.add_column("id", [str(i) for i in range(len(rows))])


def order_by_variance(dataset: Dataset) -> Dataset:
    """The dataset's rows sorted by `reward_variance`, highest first (stable)."""
    if "reward_variance" not in dataset.column_names:
        raise ConfigError(
            "the queries have no reward_variance column; run python -m online_rl score --config <grpo config>"
        )
    return dataset.select(variance_order(dataset["reward_variance"]))


@torch.inference_mode()
def sample_responses(
    model, tokenizer, prompts: list, *, k: int, max_new_tokens: int, temperature: float, top_p: float,
    top_k: int | None, batch_size: int, seed: int,
) -> list[list[str]]:
    """k sampled completions per chat prompt, [[str] * k] in prompt order; seeded, so a rerun samples the same."""
    tokenizer.padding_side = "left"
    out: list[list[str]] = []
    generator_seed = torch.Generator().manual_seed(seed)
    for start in tqdm(range(0, len(prompts), batch_size), desc="score: sampling", unit="batch"):
        chunk = prompts[start : start + batch_size]
        texts = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in chunk]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator_seed)))  # per-batch seed
        ids = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature, top_p=top_p,
            top_k=top_k, num_return_sequences=k, pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        new_tokens = ids[:, batch["input_ids"].shape[1] :]  # (len(chunk) * k, new), k rows per prompt in a row
        texts_out = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        out.extend(texts_out[i * k : (i + 1) * k] for i in range(len(chunk)))
    return out


def score_queries(rows: Dataset, samples: list[list[str]], client) -> list[float]:
    """Each query's reward variance over its sampled responses, scored through the reward service."""
    items = [
        {"prompt": row["prompt"], "response": response, "reference": row["reference"]}
        for row, responses in zip(rows, samples, strict=True)
        for response in responses
    ]
    rewards = [result["reward"] for result in client.score(items)]
    k = len(samples[0]) if samples else 0
    return [reward_variance(rewards[i * k : (i + 1) * k]) for i in range(len(samples))]


def save_dataset_atomic(dataset: Dataset, path: str | os.PathLike) -> None:
    """save_to_disk into `<path>.tmp`, then rename over `path`: a killed run never leaves half a dataset."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    dataset.save_to_disk(str(tmp))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict:
    """`python -m online_rl score --config FILE`: the scoring pass; writes scored_dataset_path, returns a summary."""
    from online_rl.config import GRPOStageConfig
    from online_rl.rewards import connect
    from pipeline.configs import parse_config, require_path
    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer

    cfg = parse_config(GRPOStageConfig, argv)
    model_dir = require_path(cfg, "model_name_or_path", checkpoint=True)
    rows = load_query_rows(cfg.dataset_path, key="dataset_path", columns=["prompt", "reference"])
    client = connect(cfg)  # a clear error before the model loads if the service is down

    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, dca=cfg.dca).eval()
    samples = sample_responses(
        model, tokenizer, rows["prompt"], k=cfg.score_samples, max_new_tokens=cfg.max_completion_length,
        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, batch_size=cfg.score_batch_size,
        seed=cfg.seed,
    )  # fmt: skip
    variances = score_queries(rows, samples, client)
    client.close()
    scored = order_by_variance(rows.add_column("reward_variance", variances))
    save_dataset_atomic(scored, cfg.scored_dataset_path)
    nonzero = sum(v > 0 for v in variances)
    summary = {
        "queries": len(variances),
        "samples_per_query": cfg.score_samples,
        "nonzero_variance": nonzero,
        "max_variance": max(variances),
        "mean_variance": sum(variances) / len(variances),
        "output": str(cfg.scored_dataset_path),
    }
    print(f"[online_rl score] {json.dumps(summary)}", flush=True)
    return summary
