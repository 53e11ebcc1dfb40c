"""Every Qwen2.5 DPO config parses through the stage's parser and holds the report's values (RECIPE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from offline_rl.config import DPOStageConfig
from offline_rl.online_merging import OM_DEFAULTS
from stagekit.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parents[2]
SIZES = ["0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b"]


@pytest.mark.parametrize("size", SIZES)
def test_dpo_config_has_report_values(size):
    path = ROOT / "configs" / "dpo" / f"qwen2.5-{size}.yaml"
    assert yaml.safe_load(path.read_text())["bf16"] is True
    # bf16 is refused on a machine without a GPU unless use_cpu: set it here only, to parse on CPU
    cfg = parse_config(DPOStageConfig, ["--config", str(path), "--use_cpu", "true"])
    assert cfg.num_train_epochs == 1 and cfg.learning_rate == 7e-7  # report
    assert cfg.optimizer == "online_merging"  # report: the Online Merging Optimizer
    assert (cfg.online_merging_variant, cfg.online_merging_reserve_p, cfg.online_merging_alpha) == (
        OM_DEFAULTS["variant"], OM_DEFAULTS["reserve_p"], OM_DEFAULTS["alpha"],
    )  # fmt: skip
    assert cfg.precompute_ref_log_probs and cfg.ref_logprob_cache
    assert cfg.fused_linear_ce and cfg.gradient_checkpointing
    assert cfg.dataset_path == "runs/data/full/preference"  # configs/data/full.yaml: about 150,000 pairs
    assert cfg.model_name_or_path == f"runs/sft/qwen2.5-{size}"  # the SFT config's output_dir
    sft = yaml.safe_load((ROOT / "configs" / "sft" / f"qwen2.5-{size}.yaml").read_text())
    assert cfg.model_name_or_path == sft["output_dir"]
    assert cfg.online_merging_base_model == sft["model_name_or_path"]  # the task vector is SFT - its own base
    assert cfg.experiment == f"qwen2.5-{size}" and cfg.output_dir.endswith(f"qwen2.5-{size}")


def test_online_merging_is_refused_with_deepspeed(monkeypatch):
    path = ROOT / "configs" / "dpo" / "qwen2.5-7b.yaml"
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="unsharded"):
        parse_config(DPOStageConfig, ["--config", str(path), "--use_cpu", "true"])
    # the documented fallback parses
    parse_config(DPOStageConfig, ["--config", str(path), "--use_cpu", "true", "--optimizer", "adamw"])
