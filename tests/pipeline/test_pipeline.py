"""The whole pipeline on the smoke config: every stage as a real process, the service over HTTP, one table."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main

pytestmark = pytest.mark.e2e


def test_pipeline_smoke_runs_every_stage(tmp_path, capsys):
    run_dir = tmp_path / "smoke"
    assert main(["pipeline", "--config", "configs/pipeline/smoke.yaml", "--run_dir", str(run_dir)]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["evaluations"]) == {"base", "sft", "dpo", "grpo"}
    for e in results["evaluations"].values():
        assert e["n"] == 8 and 0.0 <= e["accuracy"] <= 1.0 and 0.0 <= e["format_rate"] <= 1.0
        assert e["mean_reward"] is not None  # scored by the live reward service
    for stage in ("sft", "reward", "dpo", "grpo"):
        assert (run_dir / stage / "config.json").is_file(), stage  # an HF checkpoint the next stage read
        assert results["stage_summaries"][stage]["stage"] == stage
    for stage in ("sft", "dpo", "grpo"):
        assert results["stage_summaries"][stage]["steps"] == 2, stage
    assert 0.0 <= results["stage_summaries"]["reward"]["eval_accuracy"] <= 1.0
    assert "| grpo |" in (run_dir / "results.md").read_text()
    assert "reward service stopped" in capsys.readouterr().out


def test_wrong_stage_key_stops_before_any_work(tmp_path, capsys):
    run_dir = tmp_path / "bad"
    code = main(
        [
            "pipeline", "--config", "configs/pipeline/smoke.yaml", "--run_dir", str(run_dir),
            "--stage_overrides", '{"sft": {"learning_rat": 0.1}}',
        ]
    )  # fmt: skip
    assert code == 2
    assert "learning_rat" in capsys.readouterr().err
    assert not (run_dir / "data").exists()
