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
from collections.abc import Sequence

from datasets import Dataset

from online_rl.config import GRPOStageConfig
from online_rl.rewards import connect
from qwen25.generation import generate
from qwen25.model import load_for_inference
from qwen25.tokenizer import load_tokenizer
from stagekit.atomic import save_dataset
from stagekit.config import ConfigError, parse_config, require_path
from stagekit.stage_io import load_records


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


def sample_responses(
    model, tokenizer, prompts: list, *, k: int, max_new_tokens: int, temperature: float, top_p: float,
    top_k: int | None, batch_size: int, seed: int,
) -> list[list[str]]:
    """k sampled completions per chat prompt, [[str] * k] in prompt order; seeded, so a rerun samples the same."""
    flat = generate(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, samples=k,
        temperature=temperature, top_p=top_p, top_k=top_k, seed=seed, desc="score: sampling",
    )  # fmt: skip
    return [flat[i * k : (i + 1) * k] for i in range(len(prompts))]


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


def main(argv: list[str] | None = None) -> dict:
    """`python -m online_rl score --config FILE`: the scoring pass; writes scored_dataset_path, returns a summary."""
    cfg = parse_config(GRPOStageConfig, argv)
    model_dir = require_path(cfg, "model_name_or_path", checkpoint=True)
    rows = load_query_rows(cfg.dataset_path, key="dataset_path", columns=["prompt", "reference"])
    client = connect(cfg)  # a clear error before the model loads if the service is down

    tokenizer = load_tokenizer(model_dir)
    model = load_for_inference(model_dir, device=cfg.score_device, dtype=cfg.score_dtype, dca=cfg.dca)
    samples = sample_responses(
        model, tokenizer, rows["prompt"], k=cfg.score_samples, max_new_tokens=cfg.max_completion_length,
        temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, batch_size=cfg.score_batch_size,
        seed=cfg.seed,
    )  # fmt: skip
    variances = score_queries(rows, samples, client)
    client.close()
    scored = order_by_variance(rows.add_column("reward_variance", variances))
    save_dataset(scored, cfg.scored_dataset_path)
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
