"""Our GRPO trainer: TRL's `GRPOTrainer` plus what TRL 1.16 does not do: DAPO's dynamic sampling, the
rollout-mismatch metrics, and (with `padding_free`) packed log-prob passes (online_rl/packed.py).

Dynamic sampling (DAPO, Yu et al. 2025): a group whose `num_generations` rewards are all equal has zero advantage
and gives no policy gradient. With `dynamic_sampling: true` such groups are dropped, and further queries are drawn
and sampled (at most `max_resample_rounds` rounds) until the batch has as many groups as it started with; a batch
still short after the last round is trained as it is and the log says so. A group counts as flat exactly as TRL's
`frac_reward_zero_std` counts it (torch.isclose(std, 0)). Refill queries walk the training rows in training order
(the report's variance order when it is on) from the queries after this step's batch; such a query may come again
in its own step later, with fresh samples, as in DAPO. Logged per step: `dynamic_sampling/dropped_frac` (flat groups
of the step's own batch), `/rounds`, `/kept_groups`, `/short_batch`.

Mismatch (with our rollout engine, online_rl/rollout.py): TRL logs |old - sampling| log-prob differences and the
importance-sampling ratios; we add `mismatch/kl` (k1: mean over completion tokens of sampling - old log-prob, an
estimate of KL(generator || trainer) on the generator's samples), `mismatch/kl_k3` (the non-negative k3 estimator)
and `mismatch/clipped_frac` (tokens, or sequences in the sequence modes, whose ratio fell outside
[vllm_importance_sampling_clip_min, _clip_max]: truncated in the *_truncate modes, masked in the *_mask modes).
"""

from __future__ import annotations

import math

import torch
from trl import GRPOTrainer
from trl.trainer.utils import pad

from online_rl.packed import PackedLogpsMixin

# How the tensors of TRL's generation output are padded: kept rows of several outputs are re-padded and stacked.
LEFT_PADDED = ("prompt_ids", "prompt_mask")
RIGHT_PADDED = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                "sampling_per_token_logps", "tool_mask", "importance_sampling_ratio")  # fmt: skip
PER_ROW = ("advantages",)


def flat_groups(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """(groups,) bool: the groups whose rewards are all equal (zero std, as TRL's frac_reward_zero_std)."""
    grouped = rewards.view(-1, num_generations)
    std = grouped.std(dim=1) if num_generations > 1 else torch.zeros(grouped.shape[0])
    return torch.isclose(std, torch.zeros_like(std))


def join_outputs(parts: list[tuple[dict, torch.Tensor]], *, pad_token_id: int) -> dict:
    """Stack the rows `index` of each TRL generation output (dicts of tensors) into one output, re-padding prompts on
    the left and completions on the right, and recounting `num_items_in_batch` (the loss tokens)."""
    keys = set(parts[0][0])
    unknown = keys - set(LEFT_PADDED) - set(RIGHT_PADDED) - set(PER_ROW) - {"num_items_in_batch"}
    if unknown:
        raise ValueError(f"dynamic_sampling cannot join generation outputs with {sorted(unknown)} (multimodal?)")
    out: dict = {}
    for key in keys - {"num_items_in_batch"}:
        chunks = [part[key][index] for part, index in parts]
        if key in PER_ROW or chunks[0].dim() == 2 and chunks[0].shape[1] == 1 and key == "importance_sampling_ratio":
            out[key] = torch.cat(chunks)  # one value per row (sequence-level IS weights: (B, 1))
            continue
        value = pad_token_id if key in ("prompt_ids", "completion_ids") else (1 if key == "tool_mask" else 0)
        rows = [row for chunk in chunks for row in chunk]
        out[key] = pad(rows, padding_value=value, padding_side="left" if key in LEFT_PADDED else "right")
    mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
    out["num_items_in_batch"] = mask.sum()
    return out


class QwenGRPOTrainer(PackedLogpsMixin, GRPOTrainer):
    """TRL's GRPOTrainer with dynamic sampling and mismatch metrics (module docstring)."""

    def __init__(self, *args, rollout_engine=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.rollout_engine = rollout_engine
        if rollout_engine is not None:
            rollout_engine.attach(self)
        self._last_rewards: torch.Tensor | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        weights = self.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        self._last_rewards = (rewards_per_func * weights).nansum(dim=1).detach().cpu()
        return rewards_per_func

    def _generate_and_score_completions(self, inputs):
        training = self.model.training
        if self.rollout_engine is not None:
            self.rollout_engine.round = 0
        output = super()._generate_and_score_completions(inputs)
        if training:
            self._log_mismatch(output)
        if not (training and self.args.dynamic_sampling):
            return output
        return self._dynamic_sampling(inputs, output)

    # ---------------------------------------------------------------- dynamic sampling
    def _dynamic_sampling(self, inputs: list[dict], output: dict) -> dict:
        g = self.num_generations
        flat = flat_groups(self._last_rewards, g)
        wanted = len(flat)
        dropped_frac = float(flat.float().mean())
        parts = [(output, self._rows(~flat, g))]
        kept = int((~flat).sum())
        last, rounds = output, 0
        while kept < wanted and rounds < self.args.max_resample_rounds:
            rounds += 1
            refill = self._refill_inputs(wanted - kept, rounds)
            if self.rollout_engine is not None:
                self.rollout_engine.round = rounds
            last = super()._generate_and_score_completions(refill)
            self._log_mismatch(last)
            live = ~flat_groups(self._last_rewards, g)
            take = live & (torch.cumsum(live.int(), 0) <= wanted - kept)
            parts.append((last, self._rows(take, g)))
            kept += int(take.sum())
        if self.rollout_engine is not None:
            self.rollout_engine.round = 0
        metrics = self._metrics["train"]
        metrics["dynamic_sampling/dropped_frac"].append(dropped_frac)
        metrics["dynamic_sampling/rounds"].append(float(rounds))
        metrics["dynamic_sampling/kept_groups"].append(float(kept))
        metrics["dynamic_sampling/short_batch"].append(float(kept < wanted))
        if kept < wanted:
            print(f"[online_rl] dynamic sampling: step {self.state.global_step} trains on {kept} of {wanted} groups "
                  f"after {rounds} refill rounds (max_resample_rounds); the rest had equal rewards", flush=True)
        if kept == 0:  # nothing with signal: train on the step's own batch (zero advantages, the KL term only)
            return output
        return join_outputs(parts, pad_token_id=self._tokenizer.pad_token_id)

    @staticmethod
    def _rows(groups: torch.Tensor, g: int) -> torch.Tensor:
        return torch.nonzero(groups.repeat_interleave(g)).squeeze(1)

    def _refill_inputs(self, groups: int, round_: int) -> list[dict]:
        """`groups` queries x num_generations rows, walking the training rows from the queries after this step's."""
        dataset, order = self.train_dataset, self._query_order()
        per_step = self.args.generation_batch_size // self.num_generations
        start = (self.state.global_step + 1) * per_step + (round_ - 1) * groups
        rows = []
        for j in range(groups):
            row = dataset[order[(start + j) % len(order)]]
            rows.extend(dict(row) for _ in range(self.num_generations))
        return rows

    def _query_order(self) -> list[int]:
        if not hasattr(self, "_order_cache"):
            sampler = self._get_train_sampler()
            seen, order = set(), []
            for i in sampler:  # TRL's order, each query once
                if i not in seen:
                    seen.add(i)
                    order.append(i)
            self._order_cache = order
        return self._order_cache

    # ---------------------------------------------------------------- mismatch
    def _log_mismatch(self, output: dict) -> None:
        old, sampled = output.get("old_per_token_logps"), output.get("sampling_per_token_logps")
        if old is None or sampled is None or not self.vllm_importance_sampling_correction:
            return
        mask = output["completion_mask"] * output["tool_mask"] if "tool_mask" in output else output["completion_mask"]
        mask = mask.bool()
        diff = torch.nan_to_num(old - sampled, nan=0.0)  # log(train / generator) per token
        tokens = diff[mask]
        if tokens.numel() == 0:
            return
        metrics = self._metrics["train"]
        metrics["mismatch/kl"].append(float((-tokens).mean()))
        metrics["mismatch/kl_k3"].append(float((torch.exp(tokens) - tokens - 1).mean()))
        low = self.vllm_importance_sampling_clip_min
        high = self.vllm_importance_sampling_clip_max
        low = -math.inf if low is None else low
        high = math.inf if high is None else high
        if self.vllm_importance_sampling_mode.startswith("sequence"):
            ratio = torch.exp((diff * mask).sum(dim=1))
        else:
            ratio = torch.exp(tokens)
        metrics["mismatch/clipped_frac"].append(float(((ratio < low) | (ratio > high)).float().mean()))
