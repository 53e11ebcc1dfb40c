"""Tracking of a stage run: the wandb run (offline) has group = experiment, job_type = stage and the full resolved
config, and metrics.jsonl / run_config.json hold the same numbers locally."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e


def test_sft_run_logs_to_wandb_and_local_files(micro_base, stage_data, tmp_path, monkeypatch):
    import wandb

    from sft.__main__ import main

    monkeypatch.setenv("WANDB_MODE", "offline")
    for key in ("WANDB_RUN_GROUP", "WANDB_JOB_TYPE", "WANDB_DIR"):  # set by setup_tracking; undone after the test
        monkeypatch.delenv(key, raising=False)
    runs, init = [], wandb.init

    def capture(*args, **kwargs):
        runs.append(init(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(wandb, "init", capture)
    out = tmp_path / "sft"
    main(
        [
            "--config", "configs/sft/tiny.yaml", "--model_name_or_path", str(micro_base),
            "--dataset_path", str(stage_data["sft"]), "--output_dir", str(out), "--max_steps", "2",
            "--max_length", "256", "--logging_steps", "1", "--experiment", "exp_tracking", "--report_to", "wandb",
        ]
    )  # fmt: skip
    (run,) = runs
    assert run.group == "exp_tracking" and run.job_type == "sft"
    assert run.config["experiment"] == "exp_tracking" and run.config["learning_rate"] == 2e-3
    assert run.config["fused_linear_ce"] is True and run.config["packing"] is True  # our fields and TRL's
    assert list(out.glob("wandb/offline-run-*/run-*.wandb"))  # offline run files under the stage's output_dir

    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r for r in logs if "loss" in r]
    assert [r["step"] for r in losses] == [1, 2]
    assert run.summary["train/loss"] == pytest.approx(losses[-1]["loss"])  # the same number in both places
    assert run.summary["train/global_step"] == 2
    resolved = json.loads((out / "run_config.json").read_text())
    assert resolved["experiment"] == "exp_tracking" and resolved["stage"] == "sft"
    assert resolved["args"]["learning_rate"] == 2e-3 and resolved["args"]["max_steps"] == 2
