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


def test_online_merging_runs_under_fsdp2_and_is_refused_with_deepspeed_or_fsdp1(monkeypatch):
    path = ROOT / "configs" / "dpo" / "qwen2.5-7b.yaml"
    args = ["--config", str(path), "--use_cpu", "true"]
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")  # as `accelerate launch --config_file configs/accelerate/fsdp2.yaml` sets
    assert parse_config(DPOStageConfig, args).optimizer == "online_merging"
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(ConfigError, match="FSDP version 1 flattens"):
        parse_config(DPOStageConfig, args)
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="DeepSpeed flattens.*fsdp2.yaml"):
        parse_config(DPOStageConfig, args)
    parse_config(DPOStageConfig, [*args, "--optimizer", "adamw"])  # AdamW under ZeRO is fine


@pytest.mark.parametrize("size", ["7b", "14b", "32b", "72b"])
def test_big_dpo_configs_launch_on_fsdp2_and_fit(size):
    """Every 7B-72B DPO config names the FSDP2 launcher and a GPU count whose memory plan fits 80 GiB GPUs."""
    from pipeline.plan import plan_stage

    path = ROOT / "configs" / "dpo" / f"qwen2.5-{size}.yaml"
    header = path.read_text().split("model_name_or_path")[0]
    assert "--config_file configs/accelerate/fsdp2.yaml" in header and "--optimizer adamw" not in header
    gpus = int(header.split("--gpus ")[1].split()[0])
    plan = plan_stage(path, accelerate_config=str(ROOT / "configs/accelerate/fsdp2.yaml"), gpus=gpus, gpu_memory=80,
                      model_config=str(ROOT / "configs" / "model" / f"qwen2.5-{size}.yaml"))  # fmt: skip
    assert plan.fits and any(t.name.startswith("task vector") for t in plan.terms)
