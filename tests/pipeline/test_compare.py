"""`qwenpost compare` on two real micro DPO runs (the micro_sweep fixture): the table's numbers, the PNG, errors."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.compare import direction, final_and_best, resolve_runs
from stagekit.config import ConfigError


def _losses(run_dir) -> list[tuple[int, float]]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in records if "loss" in r]


def test_direction_rule():
    assert [direction(m) for m in ("loss", "eval_loss", "rewards/rejected", "logps/rejected")] == ["min"] * 4
    assert [direction(m) for m in ("rewards/accuracies", "eval_rewards/margins", "reward", "pass@1",
                                   "mean_token_accuracy", "rewards/chosen")] == ["max"] * 6
    assert [direction(m) for m in ("learning_rate", "grad_norm", "entropy")] == [None] * 3
    points = [(1, 0.7), (2, 0.5), (3, 0.6)]
    assert final_and_best(points, "loss") == {"final": 0.6, "final_step": 3, "best": 0.5, "best_step": 2}
    assert final_and_best(points, "rewards/accuracies")["best"] == 0.7
    assert final_and_best(points, "grad_norm")["best"] is None


@pytest.mark.e2e  # micro_sweep: two real DPO runs launched as processes
def test_compare_a_sweep_writes_the_table_json_and_png(micro_sweep, tmp_path, capsys):
    _, spec, runs = micro_sweep
    out = tmp_path / "cmp"
    code = main(["compare", spec.name, "--sweep_root", str(spec.output_root), "--out", str(out),
                 "--metrics", "loss", "rewards/accuracies", "eval_loss", "learning_rate"])
    assert code == 0
    printed = capsys.readouterr().out
    table = (out / "compare.md").read_text()
    assert table.strip() in printed
    header, _, row1, row2 = table.strip().splitlines()
    assert header == ("| run | beta | steps | loss (min) | rewards/accuracies (max) | eval_loss (min) | "
                      "learning_rate (final only) |")
    numbers = json.loads((out / "compare.json").read_text())["runs"]
    for row, run in zip((row1, row2), runs):
        assert row.startswith(f"| {run.name} | {run.params['beta']} | 3 | ")
        losses = _losses(spec.sweep_dir / run.name)
        assert [s for s, _ in losses] == [1, 2, 3]  # logging_steps 1, max_steps 3
        loss = numbers[run.name]["metrics"]["loss"]
        assert loss["final"] == losses[-1][1] and loss["best"] == min(v for _, v in losses)
        assert f"{loss['final']:.4g} (best {loss['best']:.4g} @ " in row
        assert numbers[run.name]["metrics"]["eval_loss"]["final_step"] == 3  # the final evaluate() after training
    png = (out / "compare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.e2e
def test_compare_run_dirs_directly_and_default_metrics(micro_sweep, tmp_path, capsys):
    _, spec, runs = micro_sweep
    dirs = [str(spec.sweep_dir / r.name) for r in runs]
    assert main(["compare", *dirs, "--out", str(tmp_path)]) == 0
    table = (tmp_path / "compare.md").read_text()
    assert "| loss (min) | eval_loss (min) | rewards/accuracies (max) |" in table
    assert "beta" not in table.splitlines()[0]  # plain run dirs have no sweep parameters
    assert [r.name for r in resolve_runs(dirs)] == ["beta=0.1", "beta=0.5"]


@pytest.mark.e2e
def test_bad_input_names_the_run_dir_or_metric(micro_sweep, tmp_path, capsys):
    _, spec, runs = micro_sweep
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    assert main(["compare", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert f"{empty}: no metrics.jsonl" in capsys.readouterr().err
    assert main(["compare", str(spec.sweep_dir / runs[0].name), "--metrics", "los"]) == 2
    assert "--metrics: ['los'] not logged by any run" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="neither a run directory nor a sweep"):
        resolve_runs(["no_such_sweep"], sweep_root=str(tmp_path))
    bad = tmp_path / "bad_run"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{not json\n')
    with pytest.raises(ConfigError, match=r"metrics.jsonl:2: not valid JSON"):
        resolve_runs([str(bad)])


def test_a_resumed_run_keeps_the_last_value_of_a_repeated_step(tmp_path):
    run = tmp_path / "resumed"
    run.mkdir()
    lines = [{"step": 1, "loss": 0.9}, {"step": 2, "loss": 0.8}, {"step": 2, "loss": 0.7}, {"step": 3, "loss": 0.6}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (loaded,) = resolve_runs([str(run)])
    assert loaded.series["loss"] == [(1, 0.9), (2, 0.7), (3, 0.6)]


@pytest.mark.e2e  # imports wandb's API
def test_wandb_without_an_account_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))
    assert main(["compare", "--wandb", "--group", "dpo_beta"]) == 2
    err = capsys.readouterr().err
    assert "--wandb: cannot read runs of 'qwenpost' from wandb" in err and "without --wandb" in err
