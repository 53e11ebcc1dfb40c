"""`use_peft: true`: the SFT stage trains LoRA adapters that plain PEFT loads, plus a merged full checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

pytestmark = pytest.mark.e2e

CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1"]


def test_sft_lora_adapter_loads_in_plain_peft(micro_base, stage_data, tmp_path):
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
    adapter = out / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["peft_type"] == "LORA"
    lora = load_file(str(adapter / "adapter_model.safetensors"))
    assert lora and all("lora_" in k for k in lora)  # adapter weights only, no base weights
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in lora.items())  # B starts at zero: it trained

    ids = torch.tensor([[3, 17, 41, 5, 99, 12, 7, 64]])
    base = AutoModelForCausalLM.from_pretrained(micro_base, attn_implementation="sdpa").eval()
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
        peft_logits = PeftModel.from_pretrained(base, adapter).eval()(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out, attn_implementation="sdpa").eval()
        merged_logits = merged(input_ids=ids).logits
    # the merged checkpoint is the trained model (W + scale * B A); the plain-PEFT model computes the same function
    torch.testing.assert_close(peft_logits, merged_logits, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(peft_logits, base_logits, atol=1e-3)  # and it is not the base model
