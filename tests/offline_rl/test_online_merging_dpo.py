"""The DPO stage with `optimizer: online_merging` on the micro model: the Trainer really steps our optimizer
(checked exactly at lr = 0, where each step adds alpha * (SFT - base)), and a few real steps stay finite."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from stagekit.config import ConfigError

pytestmark = pytest.mark.e2e

CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1"]
EAGER = ["--fused_linear_ce", "false"]  # the fused head runs in the Triton interpreter on CPU: slow, not under test


@pytest.fixture(scope="module")
def pairs(stage_data, tmp_path_factory):
    """8 of the 36 preference pairs: 2 steps of batch 4, and a cheap eval."""
    from datasets import load_from_disk

    out = tmp_path_factory.mktemp("om") / "pairs"
    load_from_disk(str(stage_data["preference"])).select(range(8)).save_to_disk(str(out))
    return out


@pytest.fixture(scope="module")
def sft_like(micro_base, tmp_path_factory):
    """A copy of the micro base with every weight moved a little: plays the SFT checkpoint (task vector != 0)."""
    out = tmp_path_factory.mktemp("om") / "sft"
    shutil.copytree(micro_base, out)
    gen = torch.Generator().manual_seed(0)
    weights = load_file(out / "model.safetensors")
    weights = {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in weights.items()}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def _run(sft, base, data, out, *extra):
    from offline_rl.__main__ import main

    return main(
        [
            "--config", "configs/dpo/tiny.yaml", "--model_name_or_path", str(sft), "--dataset_path", str(data),
            "--eval_dataset_path", str(data), "--output_dir", str(out), "--per_device_train_batch_size", "4",
            "--optimizer", "online_merging", "--online_merging_base_model", str(base), *extra, *CPU, *EAGER,
        ]
    )  # fmt: skip


def test_trainer_steps_the_online_merging_optimizer(micro_base, sft_like, pairs, tmp_path):
    # lr = 0: the AdamW delta is 0, so with reserve_p = 1 (DARE keeps all) and a wide clip each step adds exactly
    # alpha * (SFT - base); 2 steps with alpha = 0.5 give SFT + (SFT - base) = 2 SFT - base.
    summary = _run(
        sft_like, micro_base, pairs, tmp_path / "dpo", "--max_steps", "2", "--learning_rate", "0",
        "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--online_merging_alpha", "0.5",
        "--online_merging_reserve_p", "1", "--online_merging_clip_val", "100",
    )  # fmt: skip
    assert summary["steps"] == 2 and summary["optimizer"] == "online_merging" and math.isfinite(summary["train_loss"])
    base, sft, out = (load_file(p / "model.safetensors") for p in (micro_base, sft_like, tmp_path / "dpo"))
    for name, w in out.items():
        torch.testing.assert_close(w, 2 * sft[name] - base[name], rtol=0, atol=1e-6, msg=name)


@pytest.mark.slow
def test_online_merging_dpo_trains_without_nan(micro_base, sft_like, stage_data, tmp_path):
    for variant in ("ondare", "onties"):
        out = tmp_path / variant
        summary = _run(
            sft_like, micro_base, stage_data["preference"], out, "--max_steps", "4", "--learning_rate", "1e-3",
            "--online_merging_variant", variant, "--online_merging_reserve_p", "0.3", "--online_merging_alpha", "0.01",
        )  # fmt: skip
        assert summary["steps"] == 4 and math.isfinite(summary["train_loss"]), variant
        assert math.isfinite(summary["eval_loss"]), variant
        weights = load_file(out / "model.safetensors")
        assert all(torch.isfinite(w).all() for w in weights.values()), variant
        sft = load_file(sft_like / "model.safetensors")
        assert sum(not torch.equal(weights[k], sft[k]) for k in sft) > 10, variant


def test_online_merging_settings_are_checked_before_any_work(micro_base, stage_data, tmp_path):
    from offline_rl.__main__ import main

    common = ["--config", "configs/dpo/tiny.yaml", "--model_name_or_path", str(micro_base),
              "--dataset_path", str(stage_data["preference"]), "--eval_dataset_path", str(stage_data["preference"]),
              "--output_dir", str(tmp_path / "x"), *CPU]  # fmt: skip
    with pytest.raises(ConfigError, match="online_merging_base_model is required"):
        main([*common, "--optimizer", "online_merging"])
    with pytest.raises(ConfigError, match="optimizer"):
        main([*common, "--optimizer", "sgd"])
    with pytest.raises(ConfigError, match="online_merging_base_model"):
        main([*common, "--optimizer", "online_merging", "--online_merging_base_model", str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match="reserve_p"):
        main([*common, "--optimizer", "online_merging", "--online_merging_base_model", str(micro_base),
              "--online_merging_reserve_p", "0"])  # fmt: skip
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_online_merging_resume_continues_exactly(micro_base, sft_like, pairs, tmp_path):
    """Stopped at a checkpoint and resumed: the same weights as an uninterrupted run (DARE masks keyed by the step
    count, tau_ref and the moments restored from optimizer.pt)."""
    import json

    om = ["--max_steps", "4", "--learning_rate", "1e-3", "--online_merging_reserve_p", "0.5",
          "--online_merging_alpha", "0.1", "--save_strategy", "steps", "--save_steps", "2",
          "--per_device_train_batch_size", "2", "--resume_from_checkpoint", "auto"]  # fmt: skip
    whole = _run(sft_like, micro_base, pairs, tmp_path / "whole", *om)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-2", resumed_dir / "checkpoint-2")
    resumed = _run(sft_like, micro_base, pairs, resumed_dir, *om)
    assert whole["steps"] == resumed["steps"] == 4
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(resumed_dir / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)

    def losses(path):
        rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if "loss" in r}

    after = {step: loss for step, loss in losses(tmp_path / "whole").items() if step > 2}
    assert losses(resumed_dir) == after and sorted(after) == [3, 4]  # the resumed run trained steps 3-4 only
