"""`qwenpost compare RUN_DIR... | SWEEP`: final and best metrics per run as a markdown table, and PNG curves.

Reads what every stage writes without wandb (stagekit/tracking.py): `<run_dir>/metrics.jsonl` (one JSON object per
trainer log: `step` plus numbers) and, when present, `summary.json`. A sweep (its name under `--sweep_root`, its
directory, or its sweep file) stands for its runs, with the varied keys as table columns. `--wandb` reads the same
history from wandb instead (`wandb.Api()`; needs an account and the network).

Best value of a metric, by its name (lower-cased), the first rule that matches:
- lower is better: contains `loss`, `perplexity`, `ppl`, `error` or `rejected` (DPO's rewards/rejected);
- higher is better: contains `accura`, `reward`, `margin`, `score`, `pass`, `match`, `f1` or `chosen`;
- otherwise (learning_rate, grad_norm, entropy, ...) no best is shown, only the final value.
The table cell is `final (best B @ step S)`; the plot has one panel per metric and one line per run.
Outputs under `--out`: compare.md (the table), compare.json (the numbers) and compare.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from stagekit.atomic import staged_file, write_atomic
from stagekit.config import ConfigError

LOWER_IS_BETTER = re.compile(r"loss|perplexity|ppl|error|rejected")
HIGHER_IS_BETTER = re.compile(r"accura|reward|margin|score|pass|match|f1|chosen")
NOT_METRICS = {"step", "epoch", "time", "total_flos", "_step", "_runtime", "_timestamp"}
# shown when --metrics is not given, those present in any run, in this order; else every metric with a direction
DEFAULT_METRICS = (
    "loss", "eval_loss", "rewards/accuracies", "eval_rewards/accuracies", "rewards/margins", "eval_rewards/margins",
    "reward", "eval_accuracy", "accuracy", "mean_token_accuracy",
)  # fmt: skip


@dataclass
class RunMetrics:
    name: str
    source: str  # run dir or wandb path
    series: dict[str, list[tuple[int, float]]]  # metric -> [(step, value)] in log order
    summary: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)  # the sweep's varied keys, when the run belongs to one

    @property
    def steps(self) -> int:
        return max((s for points in self.series.values() for s, _ in points), default=0)


def direction(metric: str) -> str | None:
    """"min", "max" or None (no best), by the rule in the module docstring."""
    key = metric.lower()
    if LOWER_IS_BETTER.search(key):
        return "min"
    if HIGHER_IS_BETTER.search(key):
        return "max"
    return None


def series_from_records(records: Sequence[dict], step_key: str = "step") -> dict[str, list[tuple[int, float]]]:
    """metric -> [(step, value)] by step from log records; non-numeric and non-finite values are left out.

    A run resumed from a checkpoint logs the steps after it again: the later record of a step wins.
    """
    by_step: dict[str, dict[int, float]] = {}
    for record in records:
        step = record.get(step_key)
        if not isinstance(step, int | float):
            continue
        for key, value in record.items():
            if key in NOT_METRICS or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if math.isfinite(value):
                by_step.setdefault(key, {})[int(step)] = float(value)
    return {key: sorted(points.items()) for key, points in by_step.items()}


def load_run(run_dir: str | os.PathLike, *, name: str | None = None, params: dict | None = None) -> RunMetrics:
    """A run's curves from `<run_dir>/metrics.jsonl`; ConfigError names the directory or file:line that is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory not found: {run_dir}")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        inner = sorted(p.parent.name for p in run_dir.glob("*/metrics.jsonl"))
        hint = f"; stage directories inside it that have one: {inner} (pass one, or --stage NAME)" if inner else ""
        raise ConfigError(f"{run_dir}: no metrics.jsonl{hint}")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{number}: not valid JSON ({e.msg})") from e
    series = series_from_records(records)
    if not series:
        raise ConfigError(f"{path}: no numeric metrics with a step")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return RunMetrics(name or run_dir.name, str(run_dir), series, summary, params or {})


def resolve_runs(
    targets: Sequence[str], *, sweep_root: str = "runs/sweeps", stage: str | None = None
) -> list[RunMetrics]:
    """Run dirs, sweep dirs, sweep files or sweep names -> the runs' metrics, in the order given."""
    runs: list[RunMetrics] = []
    for target in targets:
        sweep_json = _sweep_manifest(target, sweep_root)
        if sweep_json is None:
            path = Path(target) / stage if stage else Path(target)
            runs.append(load_run(path, name=Path(target).name))
            continue
        manifest = json.loads(sweep_json.read_text())
        done = [r for r in manifest["runs"] if r["status"] in ("finished", "skipped")]
        if not done:
            raise ConfigError(f"sweep {manifest['name']} ({sweep_json}) has no finished runs yet")
        for r in done:
            path = Path(r["run_dir"]) / stage if stage else Path(r["run_dir"])
            runs.append(load_run(path, name=r["name"], params=r["params"]))
    if len({r.name for r in runs}) != len(runs):
        for i, r in enumerate(runs):
            r.name = f"{r.name} [{i}]"
    return runs


def _sweep_manifest(target: str, sweep_root: str) -> Path | None:
    path = Path(target)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        spec = yaml.safe_load(path.read_text()) or {}
        if "name" not in spec:
            raise ConfigError(f"{path}: not a sweep file (no 'name')")
        manifest = Path(spec.get("output_root", sweep_root)) / spec["name"] / "sweep.json"
        if not manifest.is_file():
            raise ConfigError(f"{path}: the sweep has not run yet ({manifest} not found)")
        return manifest
    if path.is_dir():
        return path / "sweep.json" if (path / "sweep.json").is_file() else None
    named = Path(sweep_root) / target / "sweep.json"
    if named.is_file():
        return named
    raise ConfigError(f"{target}: neither a run directory nor a sweep (looked for {named})")


def pick_metrics(runs: Sequence[RunMetrics], requested: Sequence[str] | None) -> list[str]:
    """The metrics to show: `requested` (each must exist in some run), else DEFAULT_METRICS present, else all."""
    available = sorted({m for r in runs for m in r.series})
    if requested:
        missing = [m for m in requested if m not in available]
        if missing:
            raise ConfigError(f"--metrics: {missing} not logged by any run; available: {available}")
        return list(requested)
    chosen = [m for m in DEFAULT_METRICS if m in available]
    return chosen or [m for m in available if direction(m)] or available


def final_and_best(points: Sequence[tuple[int, float]], metric: str) -> dict:
    """{"final", "final_step", "best", "best_step"} of one curve; best is None for a metric without a direction."""
    step, value = points[-1]
    out = {"final": value, "final_step": step, "best": None, "best_step": None}
    how = direction(metric)
    if how:
        pick = min if how == "min" else max
        best_step, best = pick(points, key=lambda p: p[1])
        out.update(best=best, best_step=best_step)
    return out


def comparison(runs: Sequence[RunMetrics], metrics: Sequence[str]) -> dict:
    """run name -> {"params", "steps", "metrics": {metric: final_and_best or None}}."""
    return {
        r.name: {
            "source": r.source,
            "params": r.params,
            "steps": r.steps,
            "metrics": {m: final_and_best(r.series[m], m) if m in r.series else None for m in metrics},
        }
        for r in runs
    }


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def markdown_table(table: dict, metrics: Sequence[str]) -> str:
    """One row per run: its varied keys, steps, then `final (best B @ step S)` per metric."""
    params = list(dict.fromkeys(k for row in table.values() for k in row["params"]))
    header = ["run", *params, "steps", *[f"{m} ({direction(m) or 'final only'})" for m in metrics]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in table.items():
        cells = [name, *[str(row["params"].get(p, "")) for p in params], str(row["steps"])]
        for m in metrics:
            fb = row["metrics"][m]
            if fb is None:
                cells.append("-")
            elif fb["best"] is None:
                cells.append(_fmt(fb["final"]))
            else:
                cells.append(f"{_fmt(fb['final'])} (best {_fmt(fb['best'])} @ {fb['best_step']})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(runs: Sequence[RunMetrics], metrics: Sequence[str], path: Path) -> Path:
    """compare.png: one panel per metric, one line per run, x = step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for r in runs:
            if metric in r.series:
                steps, values = zip(*r.series[metric])
                ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=r.name)
        ax.set_title(f"{metric} ({direction(metric) or 'no best'})", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_visible(False)
    fig.tight_layout()
    with staged_file(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def wandb_runs(project: str, *, group: str | None, names: Sequence[str]) -> list[RunMetrics]:
    """The same curves from wandb (`entity/project`, filtered by group and/or run names); ConfigError when the
    wandb API cannot be used (not installed, no API key, no network)."""
    try:
        import wandb

        api = wandb.Api(timeout=20)
        filters: dict = {}
        if group:
            filters["group"] = group
        if names:
            filters["display_name"] = {"$in": list(names)}
        found = list(api.runs(project, filters=filters))
    except ImportError as e:
        raise ConfigError("--wandb needs the wandb package") from e
    except Exception as e:  # wandb raises its own UsageError/CommError types for keys and the network
        raise ConfigError(f"--wandb: cannot read runs of {project!r} from wandb ({type(e).__name__}: {e}); "
                          "compare the local run directories instead (without --wandb)") from e
    if not found:
        raise ConfigError(f"--wandb: no runs in {project!r} matching group={group!r} names={list(names)}")
    out = []
    for run in found:
        series = series_from_records(list(run.scan_history()), step_key="_step")
        out.append(RunMetrics(run.name, f"wandb:{'/'.join(run.path)}", series, dict(run.summary), {}))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qwenpost compare", description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", help="run directories, sweep names/dirs/files (with --wandb: names)")
    parser.add_argument("--metrics", nargs="+", default=None, help="metrics to show (default: the usual ones)")
    parser.add_argument("--out", default=None, help="where compare.md/.json/.png go (default: the sweep dir, or "
                        "runs/compare)")
    parser.add_argument("--stage", default=None, help="compare <run_dir>/<stage> (pipeline runs: sft, dpo, ...)")
    parser.add_argument("--sweep_root", default="runs/sweeps", help="where sweep names are looked up")
    parser.add_argument("--wandb", action="store_true", help="read the runs from wandb instead of local files")
    parser.add_argument("--wandb_project", default=os.environ.get("WANDB_PROJECT", "qwenpost"),
                        help="entity/project for --wandb")
    parser.add_argument("--group", default=None, help="--wandb: the wandb group (a sweep or experiment name)")
    args = parser.parse_args(argv)
    try:
        if args.wandb:
            runs = wandb_runs(args.wandb_project, group=args.group, names=args.targets)
        elif not args.targets:
            raise ConfigError("give run directories or a sweep name")
        else:
            runs = resolve_runs(args.targets, sweep_root=args.sweep_root, stage=args.stage)
        metrics = pick_metrics(runs, args.metrics)
    except ConfigError as e:
        print(f"compare: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else _default_out(args.targets, args.sweep_root)
    table = comparison(runs, metrics)
    text = markdown_table(table, metrics)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "compare.md", text + "\n")
    write_atomic(out / "compare.json", json.dumps({"metrics": list(metrics), "runs": table}, indent=2))
    png = plot(runs, metrics, out / "compare.png")
    print(text)
    print(f"\ntable: {out / 'compare.md'}\nplot:  {png}")
    return 0


def _default_out(targets: Sequence[str], sweep_root: str) -> Path:
    if len(targets) == 1:
        try:
            manifest = _sweep_manifest(targets[0], sweep_root)
        except ConfigError:
            manifest = None
        if manifest is not None:
            return manifest.parent / "compare"
    return Path("runs/compare")
