"""Two-step runs of the SFT and DPO stages on the micro model: loss finite, weights changed, checkpoint usable."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from stagekit.config import ConfigError

pytestmark = pytest.mark.e2e

CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1"]


def _weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def _changed(before: dict, after: dict) -> int:
    return sum(not torch.equal(before[k], after[k]) for k in before)


def test_sft_two_steps(micro_base, stage_data, tmp_path):
    from sft.__main__ import main

    out = tmp_path / "sft"
    summary = main(
        [
            "--config", "configs/sft/tiny.yaml", "--model_name_or_path", str(micro_base),
            "--dataset_path", str(stage_data["sft"]), "--output_dir", str(out), "--max_steps", "2",
            "--per_device_train_batch_size", "4", "--max_length", "256", *CPU,
        ]
    )  # fmt: skip
    assert summary["steps"] == 2 and math.isfinite(summary["train_loss"])
    assert _changed(_weights(micro_base), _weights(out)) > 10
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2]
    assert json.loads((out / "run_config.json").read_text())["stage"] == "sft"
    # the checkpoint is plain transformers: loads without our attention and runs
    plain = AutoModelForCausalLM.from_pretrained(out, attn_implementation="sdpa")
    assert torch.isfinite(plain(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


def test_sft_loss_is_on_assistant_tokens_only(micro_base, stage_data, tmp_path):
    """The tokens SFTTrainer trains on decode to exactly the assistant replies plus their <|im_end|>."""
    from trl import SFTTrainer

    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer
    from sft.config import SFTStageConfig
    from stagekit.stage_io import load_records

    args = SFTStageConfig(
        output_dir=str(tmp_path), assistant_only_loss=True, packing=False, bf16=False, report_to="none",
        max_length=256,
    )  # fmt: skip
    tok = load_tokenizer(micro_base)
    ds = load_records(stage_data["sft"], key="dataset_path", columns=["messages"])
    trainer = SFTTrainer(model=load_model(micro_base), args=args, train_dataset=ds, processing_class=tok)
    row = trainer.train_dataset[0]
    trained = [t for t in row["labels"] if t != -100]
    reply = ds[0]["messages"][-1]["content"]
    # TRL's Qwen2.5 training template tags "\n" + content + "<|im_end|>\n" as the assistant's output
    assert tok.decode(trained) == "\n" + reply + "<|im_end|>\n"
    assert len(trained) < len(row["input_ids"]) / 2  # the system and user turns are not trained on


def test_dpo_two_steps(micro_base, stage_data, tmp_path):
    from offline_rl.__main__ import main

    out = tmp_path / "dpo"
    summary = main(
        [
            "--config", "configs/dpo/tiny.yaml", "--model_name_or_path", str(micro_base),
            "--dataset_path", str(stage_data["preference"]), "--eval_dataset_path", str(stage_data["preference"]),
            "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4", *CPU,
        ]
    )  # fmt: skip
    assert summary["steps"] == 2 and math.isfinite(summary["train_loss"])
    assert 0.0 <= summary["eval_reward_accuracy"] <= 1.0
    assert _changed(_weights(micro_base), _weights(out)) > 10


def test_unknown_config_key_is_refused_before_any_work(micro_base, stage_data, tmp_path):
    from sft.__main__ import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rat: 1.0e-3\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        main(["--config", str(bad), "--output_dir", str(tmp_path / "x")])
    with pytest.raises(ConfigError, match="dataset_path"):
        main(["--model_name_or_path", str(micro_base), "--dataset_path", str(tmp_path / "missing"), *CPU])
    assert not (tmp_path / "x").exists()
