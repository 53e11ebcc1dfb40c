"""`use_peft: true` in `python -m reward train`: LoRA on the backbone plus the fresh score head trained in full,
saved as a plain-PEFT adapter (head included) beside the merged checkpoint the reward service loads."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from reward.config import RewardTrainConfig
from stagekit.config import ConfigError, parse_config

pytestmark = pytest.mark.e2e


def test_reward_lora_adapter_carries_the_head_and_loads_in_plain_peft(
    micro_base, preference_data, tmp_path, reward_train_argv, lora_checks
):
    from reward.model_scorer import RewardModelScorer
    from reward.train import main

    out = tmp_path / "rm_lora"
    summary = main(reward_train_argv(micro_base, preference_data, out, "--use_peft", "true", "--lora_r", "4",
                                     "--max_steps", "4", "--learning_rate", "1e-2"))  # fmt: skip
    assert summary["lora"] == {"r": 4, "alpha": 32} and math.isfinite(summary["train_loss"])
    assert 0.0 <= summary["eval_accuracy"] <= 1.0
    tensors = lora_checks(micro_base, out, AutoModelForSequenceClassification, r=4, num_labels=1)
    heads = [k for k in tensors if "score" in k]
    assert heads and all(tensors[k].shape[0] == 1 for k in heads)  # the one-logit head travels with the adapter

    # the merged checkpoint is what the service serves: it scores a pair the way the summary's evaluation did
    scorer = RewardModelScorer.from_pretrained(str(out), device="cpu", max_length=128)
    prompt = [{"role": "user", "content": "Sam has 2 apples and gets 3 more. How many?"}]
    rewards = scorer([(prompt, "2 + 3 = 5. The answer is \\boxed{5}."), (prompt, "The answer is \\boxed{6}.")])
    assert len(rewards) == 2 and all(math.isfinite(r) for r in rewards)
    assert not torch.isclose(torch.tensor(rewards[0]), torch.tensor(rewards[1]))


def test_reward_config_names_a_bad_criterion_or_lora_value(tmp_path):
    base = ["--output_dir", str(tmp_path), "--bf16", "false", "--use_cpu", "true"]
    with pytest.raises(ConfigError, match="criterion: 'politeness'"):
        parse_config(RewardTrainConfig, [*base, "--criterion", "politeness"])
    with pytest.raises(ConfigError, match="lora_dropout"):
        parse_config(RewardTrainConfig, [*base, "--use_peft", "true", "--lora_dropout", "1.0"])
