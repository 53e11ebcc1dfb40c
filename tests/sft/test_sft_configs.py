"""Every Qwen2.5 SFT config parses through the stage's parser and holds the report's values (RECIPE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from transformers import get_scheduler

from sft.config import SFTStageConfig
from stagekit.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]
SIZES = ["0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b"]


@pytest.mark.parametrize("size", SIZES)
def test_sft_config_has_report_values(size):
    path = ROOT / "configs" / "sft" / f"qwen2.5-{size}.yaml"
    assert yaml.safe_load(path.read_text())["bf16"] is True
    # bf16 is refused on a machine without a GPU unless use_cpu: set it here only, to parse on CPU
    cfg = parse_config(SFTStageConfig, ["--config", str(path), "--use_cpu", "true"])
    assert cfg.num_train_epochs == 2 and cfg.max_length == 32768
    assert cfg.learning_rate == 7e-6 and cfg.weight_decay == 0.1 and cfg.max_grad_norm == 1.0
    assert cfg.bf16 and cfg.gradient_checkpointing and cfg.packing and cfg.assistant_only_loss and cfg.fused_linear_ce
    assert cfg.experiment == f"qwen2.5-{size}" and cfg.output_dir.endswith(f"qwen2.5-{size}")
    assert (ROOT / "configs" / "model" / f"qwen2.5-{size}.yaml").is_file()

    # the schedule the Trainer builds from these keys: 7e-6 after warm-up, 7e-7 at the last step
    steps = 1000
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.learning_rate)
    warmup = cfg.get_warmup_steps(steps)
    scheduler = get_scheduler(
        cfg.lr_scheduler_type, optimizer, num_warmup_steps=warmup, num_training_steps=steps,
        scheduler_specific_kwargs=cfg.lr_scheduler_kwargs,
    )  # fmt: skip
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert warmup == 30 and lrs[0] == 0.0
    assert lrs[warmup] == pytest.approx(7e-6, rel=1e-9)
    assert scheduler.get_last_lr()[0] == pytest.approx(7e-7, rel=1e-9)
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :]))  # decays monotonically


def test_lora_switch_is_validated(tmp_path):
    base = ["--output_dir", str(tmp_path), "--bf16", "false"]
    with pytest.raises(ConfigError, match="lora_r"):
        parse_config(SFTStageConfig, [*base, "--use_peft", "true", "--lora_r", "0"])
    lora = parse_config(SFTStageConfig, [*base, "--use_peft", "true", "--lora_r", "4"]).lora_config()
    assert lora.r == 4 and lora.lora_alpha == 32 and lora.target_modules == "all-linear"
    assert parse_config(SFTStageConfig, base).lora_config() is None
