"""`use_peft: true` in DPO: LoRA adapters trained against the policy with its adapter switched off as the reference
(no second model kept), saved for plain PEFT beside the merged checkpoint the next stage reads."""

from __future__ import annotations

import math

import pytest
from transformers import AutoModelForCausalLM

from offline_rl.config import DPOStageConfig
from stagekit.config import ConfigError, parse_config

pytestmark = pytest.mark.e2e

CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1"]


@pytest.mark.parametrize("precompute", ["true", "false"])
def test_dpo_lora_trains_an_adapter_against_the_adapter_off_reference(
    micro_base, stage_data, tmp_path, lora_checks, precompute
):
    from offline_rl.__main__ import main

    out = tmp_path / "dpo_lora"
    summary = main(
        [
            "--config", "configs/dpo/tiny.yaml", "--model_name_or_path", str(micro_base),
            "--dataset_path", str(stage_data["preference"]), "--eval_dataset_path", "",
            "--output_dir", str(out), "--max_steps", "3", "--per_device_train_batch_size", "4",
            "--learning_rate", "1e-2", "--use_peft", "true", "--lora_r", "4",
            "--precompute_ref_log_probs", precompute, "--ref_logprob_cache", "false", *CPU,
        ]
    )  # fmt: skip
    assert summary["steps"] == 3 and math.isfinite(summary["train_loss"])
    # precomputed or on the fly, no reference copy of the weights: the reference is the adapter switched off
    assert summary["lora"] == {"r": 4, "alpha": 32, "reference_model_kept": False}
    lora_checks(micro_base, out, AutoModelForCausalLM, r=4)


def test_online_merging_with_lora_is_refused_naming_both(tmp_path):
    base = ["--output_dir", str(tmp_path), "--bf16", "false"]
    with pytest.raises(ConfigError, match="online_merging.*use_peft"):
        parse_config(DPOStageConfig, [*base, "--optimizer", "online_merging", "--online_merging_base_model",
                                      str(tmp_path), "--use_peft", "true"])  # fmt: skip
    with pytest.raises(ConfigError, match="lora_r"):
        parse_config(DPOStageConfig, [*base, "--use_peft", "true", "--lora_r", "0"])
