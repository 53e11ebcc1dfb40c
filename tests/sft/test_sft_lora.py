"""`use_peft: true`: the SFT stage trains LoRA adapters that plain PEFT loads, plus a merged full checkpoint."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM

pytestmark = pytest.mark.e2e

CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1"]


def test_sft_lora_adapter_loads_in_plain_peft(micro_base, stage_data, tmp_path, lora_checks):
    from sft.__main__ import main

    out = tmp_path / "sft_lora"
    summary = main(
        [
            "--config", "configs/sft/tiny.yaml", "--model_name_or_path", str(micro_base),
            "--dataset_path", str(stage_data["sft"]), "--output_dir", str(out), "--max_steps", "3",
            "--per_device_train_batch_size", "2", "--max_length", "256", "--use_peft", "true", "--lora_r", "4",
            "--learning_rate", "1e-2", *CPU,
        ]
    )  # fmt: skip
    assert summary["steps"] == 3
    lora_checks(micro_base, out, AutoModelForCausalLM, r=4)
