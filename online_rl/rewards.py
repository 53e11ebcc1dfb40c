"""GRPO's reward function: the reward service over HTTP, one batched async call per generation batch, with
per-component metrics and a per-sample provenance log.

`ServiceReward` is an async callable, so TRL's GRPOTrainer awaits it on its own event loop (TRL runs async
reward functions concurrently with each other). Each call sends every completion of the generation batch to
`/v1/score` (chunked and concurrent in `AsyncRewardClient`), with replicas, retries and exponential back-off,
so a service restart mid-run costs a pause, not the run; an unreachable service after the retries, a
timeout or a malformed reply raises `RewardServiceError` with the URL and the reason.

What TRL cannot know, because it sees only the total reward, is logged here:
- `rewards/<component>/mean|std` for rm, verifier, length_penalty and each criterion (TRL's `log_metric`,
  averaged into the same logs as its own `reward`, `reward_std`, `frac_reward_zero_std`, `kl`, `entropy`,
  `completions/*`, `clip_ratio/*`);
- one JSONL row per scored sample (`ProvenanceLog`): query id, sample index in its group, policy step (the
  optimizer steps taken when it was sampled), prompt, completion, total reward, every component and the
  verifier's verdict and details. On resume the rows of steps after the checkpoint are dropped, because they
  are sampled again.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Sequence
from pathlib import Path

from transformers import TrainerCallback

from reward.client import AsyncRewardClient, RewardClient, RewardServiceError, completion_text, pick_component
from stagekit.atomic import write_atomic
from stagekit.config import ConfigError


def reward_urls(cfg) -> list[str]:
    """`reward_url` "http://a:1, http://b:2" -> the replica URLs."""
    urls = [url.strip() for url in cfg.reward_url.split(",") if url.strip()]
    if not urls:
        raise ConfigError("reward_url: no URL given")
    return urls


def connect(cfg) -> RewardClient:
    """A sync client whose service has answered /healthz; ConfigError naming the URL if it does not in time."""
    client = RewardClient(
        reward_urls(cfg), timeout=cfg.reward_timeout_s, retries=cfg.reward_retries, api_token=cfg.reward_api_token,
        backoff_s=cfg.reward_backoff_s, retry_budget_s=cfg.reward_retry_budget_s,
    )  # fmt: skip
    try:
        client.wait_until_ready(cfg.reward_ready_timeout_s)
    except RewardServiceError as e:
        client.close()
        raise ConfigError(f"reward_url: the reward service is not reachable ({e})") from e
    return client


def component_scores(result: dict) -> dict[str, float]:
    """One service result -> {component: number} for the components it has (verifier: its score; judge: its mapped
    score in [0, 1] and `judge_raw` on its 1-10 scale when it graded, and `judge_unparsable`, `judge_timeout`,
    `judge_error` as 0/1 flags, so `rewards/judge_unparsable/mean` is the share of samples it could not grade)."""
    out = {name: value for name in ("rm", "verifier", "length_penalty", "judge")
           if (value := pick_component(result, name)) is not None}  # fmt: skip
    for name in result["components"].get("criteria") or {}:
        out[f"criterion_{name}"] = pick_component(result, f"criterion:{name}")
    judge = result["components"].get("judge")
    if isinstance(judge, dict):
        if judge.get("status") == "ok":
            out["judge_raw"] = float(judge["raw_score"])
        for status in ("unparsable", "timeout", "error"):
            out[f"judge_{status}"] = float(judge.get("status") == status)
    return out


def component_stats(results: Sequence[dict]) -> dict[str, float]:
    """{"rewards/<component>/mean": ..., "rewards/<component>/std": ...} (population std) over a batch."""
    values: dict[str, list[float]] = {}
    for result in results:
        for name, value in component_scores(result).items():
            values.setdefault(name, []).append(float(value))
    stats = {}
    for name, vals in values.items():
        mean = sum(vals) / len(vals)
        stats[f"rewards/{name}/mean"] = mean
        stats[f"rewards/{name}/std"] = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
    return stats


def provenance_rows(
    *, query_ids: Sequence, prompts: Sequence, completions: Sequence, results: Sequence[dict], policy_step: int,
    num_generations: int, offset: int = 0, policy_versions: Sequence | None = None,
) -> list[dict]:
    """One row per scored sample. Completions arrive as groups of `num_generations` consecutive samples of one
    query (TRL's RepeatSampler); `offset` is this process's first position in the gathered batch."""
    rows = []
    for i, (qid, prompt, completion, result) in enumerate(zip(query_ids, prompts, completions, results, strict=True)):
        verifier = result["components"].get("verifier")
        rows.append(
            {
                "query_id": qid,
                "sample_index": (offset + i) % num_generations,
                "policy_step": policy_step,
                **({"policy_version": policy_versions[i]} if policy_versions is not None else {}),
                "prompt": completion_text(prompt[-1:]) if isinstance(prompt, list) else prompt,
                "completion": completion_text(completion),
                "reward": result["reward"],
                "components": component_scores(result),
                "verifier": verifier,  # {verifier, status, passed, score, format_ok, details} or None
                **({"judge": judge} if (judge := result["components"].get("judge")) else {}),  # score, reason
                "cached": result.get("cached", False),
            }
        )
    return rows


class ProvenanceLog:
    """Append-only JSONL of scored samples (flushed per batch), pruned to the steps before a resume."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def append(self, rows: Sequence[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(row, default=float) + "\n" for row in rows))
            f.flush()

    def rows(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:  # the last line of a killed run may be cut short
                    break
        return out

    def keep_before(self, step: int) -> None:
        """Drop rows sampled at policy step >= `step` (they will be sampled again); write, then rename."""
        if not self.path.exists():
            return
        kept = [row for row in self.rows() if row["policy_step"] < step]
        write_atomic(self.path, "".join(json.dumps(row, default=float) + "\n" for row in kept))


class ServiceReward:
    """TRL reward function (async): total reward from the service; component metrics and provenance on the side."""

    __name__ = "reward_service"  # TRL's name for it in the logs: rewards/reward_service/mean

    def __init__(
        self, urls: Sequence[str], *, timeout: float, retries: int | None, backoff_s: float = 1.0,
        retry_budget_s: float = 120.0,
        api_token: str | None = None, num_generations: int, provenance: ProvenanceLog | None = None,
        process_index: int = 0,
    ):  # fmt: skip
        self.client_kwargs = dict(timeout=timeout, retries=retries, backoff_s=backoff_s, api_token=api_token,
                                  retry_budget_s=retry_budget_s)  # fmt: skip
        self.urls = list(urls)
        self.num_generations = num_generations
        self.provenance = provenance
        self.process_index = process_index
        self._client: AsyncRewardClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client_for_this_loop(self) -> AsyncRewardClient:
        """httpx's async pool belongs to one event loop: TRL's daemon loop in training, a fresh one in tests."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = AsyncRewardClient(self.urls, **self.client_kwargs)
            self._loop = loop
        return self._client

    async def __call__(
        self, prompts: Sequence, completions: Sequence, reference: Sequence | None = None, id: Sequence | None = None,
        trainer_state=None, log_metric=None, policy_version: Sequence | None = None,
        final_response: Sequence | None = None, **kwargs,
    ) -> list[float]:  # fmt: skip
        references = reference if reference is not None else [None] * len(completions)
        # a tool episode (online_rl/tools.py) is scored on its last assistant turn, the answer after the tool calls
        responses = final_response if final_response is not None else [completion_text(c) for c in completions]
        items = [
            {"prompt": p, "response": text, "reference": r}
            for p, text, r in zip(prompts, responses, references, strict=True)
        ]
        results = await self._client_for_this_loop().score(items)
        if log_metric is not None:
            for name, value in component_stats(results).items():
                log_metric(name, value)
        if self.provenance is not None:
            self.provenance.append(
                provenance_rows(
                    query_ids=id if id is not None else [None] * len(items), prompts=prompts, completions=completions,
                    results=results, policy_step=trainer_state.global_step if trainer_state is not None else 0,
                    num_generations=self.num_generations, offset=self.process_index * len(items),
                    policy_versions=policy_version,
                )
            )  # fmt: skip
        return [result["reward"] for result in results]


class ProvenanceCallback(TrainerCallback):
    """Prunes the provenance log to the resumed step at train start; a wandb table of a sample of it at the end."""

    def __init__(self, log: ProvenanceLog, *, table_rows: int, seed: int):
        self.log, self.table_rows, self.seed = log, table_rows, seed

    def on_train_begin(self, args, state, control, **kwargs):
        self.log.keep_before(state.global_step)  # fresh run: step 0, so an old log is cleared

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self.table_rows or "wandb" not in (args.report_to or []):
            return
        import wandb

        if wandb.run is None:
            return
        rows = self.log.rows()
        picked = random.Random(self.seed).sample(rows, min(self.table_rows, len(rows)))
        columns = ["policy_step", "query_id", "sample_index", "prompt", "completion", "reward", "components",
                   "verifier_passed", "verifier_details"]  # fmt: skip
        table = wandb.Table(columns=columns)
        for row in sorted(picked, key=lambda r: (r["policy_step"], str(r["query_id"]), r["sample_index"])):
            verifier = row["verifier"] or {}
            table.add_data(
                row["policy_step"], row["query_id"], row["sample_index"], row["prompt"], row["completion"],
                row["reward"], json.dumps(row["components"]), verifier.get("passed"),
                json.dumps(verifier.get("details")),
            )  # fmt: skip
        wandb.log({"provenance_samples": table, "provenance_rows": len(rows)})
