"""`qwenpost sweep`: grid/random expansion, dotted keys, early errors, real runs, resume and failure reporting."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import yaml

from pipeline.cli import main
from pipeline.sweep import assignments, load_sweep, plan, run_name, run_sweep
from stagekit.config import ConfigError


def _sweep_file(tmp_path, **spec) -> str:
    base = {"name": "t", "stage": "dpo", "base_config": "configs/dpo/tiny.yaml", "output_root": str(tmp_path / "out")}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**base, **spec}, sort_keys=False))
    return str(path)


def test_grid_is_the_product_with_stable_names_and_commands(tmp_path):
    spec = load_sweep(_sweep_file(tmp_path, overrides={"max_steps": 16},
                                  parameters={"beta": [0.05, 0.5], "learning_rate": [1e-5, 1e-4]}))
    runs = plan(spec)
    assert [r.name for r in runs] == [
        "beta=0.05,learning_rate=1e-05", "beta=0.05,learning_rate=0.0001",
        "beta=0.5,learning_rate=1e-05", "beta=0.5,learning_rate=0.0001",
    ]  # fmt: skip
    cmd = runs[2].command
    assert cmd[1:4] == ["-m", "accelerate.commands.launch", "--config_file"] and "offline_rl" in cmd
    flag = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert flag["--beta"] == "0.5" and flag["--learning_rate"] == "1e-05" and flag["--max_steps"] == "16"
    assert flag["--experiment"] == "t" and flag["--run_name"] == runs[2].name  # wandb group and name
    assert flag["--output_dir"] == str(tmp_path / "out" / "t" / runs[2].name)
    assert flag["--resume_from_checkpoint"] == "auto"
    assert all(r.status == "pending" for r in runs)


def test_random_search_is_seeded_and_within_bounds(tmp_path):
    params = {"learning_rate": {"log_uniform": [1e-6, 1e-4]}, "beta": [0.1, 0.2, 0.3],
              "max_steps": {"int_uniform": [4, 8]}}
    spec = load_sweep(_sweep_file(tmp_path, method="random", samples=6, seed=3, parameters=params))
    first, again = assignments(spec), assignments(spec)
    assert first == again and len(first) == 6
    assert all(1e-6 <= a["learning_rate"] <= 1e-4 and a["beta"] in (0.1, 0.2, 0.3) for a in first)
    assert all(isinstance(a["max_steps"], int) and 4 <= a["max_steps"] <= 8 for a in first)
    spec.seed = 4
    assert assignments(spec) != first
    assert plan(load_sweep(_sweep_file(tmp_path, method="random", samples=2, seed=3, parameters=params)))[0].name \
        .startswith("r00_learning_rate=")


def test_run_names_are_filesystem_safe_and_shortened_to_distinct_suffixes():
    assert run_name({"stage_overrides.sft.learning_rate": 0.002, "stage_overrides.dpo.learning_rate": 1e-5}) == (
        "sft.learning_rate=0.002,dpo.learning_rate=1e-05"
    )
    assert run_name({"model_init_kwargs.attn_implementation": "qwen/flash attn"}) == (
        "attn_implementation=qwen_flash_attn"
    )
    assert run_name({"lr_scheduler_kwargs.min_lr_rate": 0.1}, index=3) == "r03_min_lr_rate=0.1"


def test_dotted_keys_build_the_nested_value_in_a_per_run_config(tmp_path):
    spec = load_sweep(_sweep_file(tmp_path, stage="pipeline", base_config="configs/pipeline/smoke.yaml",
                                  parameters={"stage_overrides.dpo.beta": [0.1, 0.3]}))
    runs = plan(spec)
    assert [r.name for r in runs] == ["beta=0.1", "beta=0.3"]
    config = runs[1].command[runs[1].command.index("--config") + 1]
    written = yaml.safe_load(open(config))
    # the smoke config's other dpo overrides and the other stages' are kept; only beta is added
    assert written["stage_overrides"]["dpo"] == {"max_steps": 2, "per_device_train_batch_size": 4,
                                                 "report_to": "none", "beta": 0.3}
    assert written["stage_overrides"]["sft"] == {"max_steps": 2, "report_to": "none"}
    assert runs[1].command[1:4] == ["-m", "pipeline", "pipeline"]
    assert "--run_dir" in runs[1].command


@pytest.mark.parametrize("spec, message", [
    ({"parameters": {"beta": [0.1]}, "epochs": 3}, "unknown key(s) ['epochs']"),
    ({"parameters": {"betta": [0.1]}}, "'betta' is not a key of DPOStageConfig"),
    ({"parameters": {"beta": [0.1]}, "overrides": {"max_step": 3}}, "'max_step' is not a key"),
    ({"parameters": {"beta.inner": [0.1]}}, "beta is 0.1, not a mapping"),
    ({"parameters": {"beta": [0.1]}, "base_config": "configs/dpo/nope.yaml"}, "configs/dpo/nope.yaml not found"),
    ({"parameters": {"beta": [0.1]}, "stage": "ppo"}, "stage 'ppo' is not one of"),
    ({"parameters": {"beta": 0.1}}, "parameters.beta must be a list"),
    ({"parameters": {"beta": {"gauss": [0, 1]}}, "method": "random", "samples": 2}, "parameters.beta must be"),
    ({"parameters": {"stage_overrides.dpo.betta": [0.1]}, "stage": "pipeline",
      "base_config": "configs/pipeline/smoke.yaml"}, "betta"),
])  # fmt: skip
def test_bad_sweep_files_stop_before_any_run_naming_the_key(tmp_path, spec, message):
    with pytest.raises(ConfigError) as e:
        plan(load_sweep(_sweep_file(tmp_path, **spec)))
    assert message in str(e.value)
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_the_commands_and_launches_nothing(tmp_path, capsys):
    path = _sweep_file(tmp_path, parameters={"beta": [0.05, 0.5]})
    assert main(["sweep", path, "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert out.count("-m offline_rl --config configs/dpo/tiny.yaml") == 2 and "--beta 0.5" in out
    assert not (tmp_path / "out").exists()
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "sweep file not found" in capsys.readouterr().err


@pytest.mark.e2e  # micro_sweep: two real DPO runs launched as processes
def test_real_sweep_finishes_both_runs_and_resumes_without_rerunning(micro_sweep, capsys):
    path, spec, runs = micro_sweep
    assert [(r.name, r.status, r.exit_code) for r in runs] == [
        ("beta=0.1", "finished", 0), ("beta=0.5", "finished", 0)]
    manifest = json.loads((spec.sweep_dir / "sweep.json").read_text())
    assert [r["status"] for r in manifest["runs"]] == ["finished", "finished"]
    for r in runs:
        summary = json.loads((spec.sweep_dir / r.name / "summary.json").read_text())
        assert summary["steps"] == 3 and math.isfinite(summary["train_loss"])
        config = json.loads((spec.sweep_dir / r.name / "run_config.json").read_text())
        assert config["experiment"] == "micro_beta" and config["args"]["beta"] == r.params["beta"]
        assert config["args"]["run_name"] == r.name
    # the same command again: everything is finished, nothing is launched
    again = run_sweep(load_sweep(path))
    assert [r.status for r in again] == ["skipped", "skipped"]
    out = capsys.readouterr().out
    assert "2 already finished" in out and "every run is finished" in out


@pytest.mark.e2e  # micro_sweep: two real DPO runs
def test_resume_launches_only_unfinished_runs_and_reports_a_failure(
    micro_sweep, sweep_writer, tmp_path, monkeypatch, capsys
):
    """A third beta joins the finished sweep: only it is launched; it fails, and the sweep says so and exits 1."""
    import pipeline.sweep as sweep_module
    path, spec, _ = micro_sweep
    overrides = spec.overrides
    extended = tmp_path / "extended.yaml"
    sweep_writer(extended, name=spec.name, output_root=spec.output_root,
                 base_checkpoint=overrides["model_name_or_path"], pairs=overrides["dataset_path"],
                 betas=(0.1, 0.5, 0.9))
    launched = []
    real_popen = subprocess.Popen

    def popen(cmd, **kwargs):  # the new run's process exits 3 at once instead of training
        launched.append(cmd)
        return real_popen([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], **kwargs)

    monkeypatch.setattr(sweep_module.subprocess, "Popen", popen)
    assert main(["sweep", str(extended)]) == 1
    assert len(launched) == 1 and "0.9" in launched[0]
    manifest = json.loads((spec.sweep_dir / "sweep.json").read_text())
    assert [(r["name"], r["status"], r["exit_code"]) for r in manifest["runs"]] == [
        ("beta=0.1", "skipped", 0), ("beta=0.5", "skipped", 0), ("beta=0.9", "failed", 3)]  # 0: carried over
    log = manifest["runs"][2]["log"]
    assert "boom" in open(log).read()
    out = capsys.readouterr().out
    assert "beta=0.9: FAILED with exit code 3" in out and f"failed: beta=0.9 (exit 3), log {log}" in out
    assert "[sweep] warning" not in out  # the finished runs' commands are unchanged


@pytest.mark.e2e  # micro_sweep: two real DPO runs
def test_a_finished_run_whose_command_changed_is_flagged(micro_sweep, sweep_writer, tmp_path, capsys):
    _, spec, _ = micro_sweep
    changed = tmp_path / "changed.yaml"
    sweep_writer(changed, name=spec.name, output_root=spec.output_root,
                 base_checkpoint=spec.overrides["model_name_or_path"], pairs=spec.overrides["dataset_path"],
                 learning_rate=1e-3)
    runs = run_sweep(load_sweep(changed), dry_run=True)
    assert [r.status for r in runs] == ["skipped", "skipped"]
    out = capsys.readouterr().out
    assert "warning: beta=0.1 finished with another command" in out and "--learning_rate 0.001" in out
