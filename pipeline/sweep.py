"""`qwenpost sweep FILE`: a base config plus a grid or random search over any of its keys, one process per run.

A sweep file (configs/sweeps/*.yaml) names the stage that runs (`sft`, `dpo`, `reward`, `grpo`, or `pipeline` for
the whole recipe), its base config, fixed `overrides`, and the `parameters` to vary:

    name: dpo_beta
    stage: dpo
    base_config: configs/dpo/tiny.yaml
    overrides: {model_name_or_path: runs/tiny/sft, max_steps: 16}
    method: grid                       # or random, with `samples: N` and `seed`
    parameters: {beta: [0.05, 0.5]}    # random: {learning_rate: {log_uniform: [1e-6, 1e-4]}}, {uniform: [a, b]},
                                       #         {int_uniform: [a, b]}, {choice: [...]} or a plain list (a choice)
    max_parallel: 1
    output_root: runs/sweeps

Keys may be dotted (`stage_overrides.dpo.beta`, `model_init_kwargs.attn_implementation`): the first part must be a
field of the stage's config, and the nested value is built from the base config's value of that field (or its
default) and written into a per-run copy of the base config (`<sweep_dir>/configs/<run>.yaml`). Every run's
command line is parsed with the stage's own config class before anything starts, so a wrong key or value stops
the sweep with a message naming it.

Each run is launched as a user would (`accelerate launch --config_file <accelerate_config> -m <module> --config
<base_config> --key value ...`; the pipeline stage runs `qwenpost pipeline`, which launches its stages itself) into
`<output_root>/<name>/<run_name>`, where the run name is made of the varied keys (`beta=0.05`). A run is finished
when its `summary.json` (pipeline: `results.json`) exists; finished runs are skipped, so re-running the command
resumes the sweep, and an unfinished training run resumes from its last checkpoint (`--resume_from_checkpoint
auto`). At most `max_parallel` runs go at once. wandb: group = sweep name (passed as `--experiment`, which the
stages' tracking turns into WANDB_RUN_GROUP), name = run name. `<output_root>/<name>/sweep.json` records every
run's parameters, command, status, exit code and log path, rewritten atomically after each change. A failing run is
reported with its exit code and log and the sweep goes on; the command then exits 1.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import math
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from pipeline.run import Pipeline, PipelineConfig
from pipeline.stages import STAGES, Stage
from stagekit.atomic import write_atomic, write_json
from stagekit.config import ConfigError, cli_flags, parse_config, read_yaml_mapping

# what a sweep can run: the training stages of the registry, or the whole pipeline (`qwenpost pipeline`)
SWEEPABLE: dict[str, Stage] = {name: STAGES[name] for name in ("sft", "dpo", "reward", "grpo")} | {
    "pipeline": Stage("pipeline", "pipeline", ("pipeline",), PipelineConfig, done="results.json", accelerate=False),
}
SWEEP_KEYS = (
    "name", "stage", "base_config", "overrides", "method", "parameters", "samples", "seed", "max_parallel",
    "output_root", "accelerate_config",
)  # fmt: skip
DISTRIBUTIONS = ("uniform", "log_uniform", "int_uniform", "choice")


@dataclass
class SweepSpec:
    name: str  # sweep name: wandb group, directory under output_root
    stage: str  # one of SWEEPABLE
    base_config: str  # the stage's YAML config every run starts from
    parameters: dict[str, Any]  # key -> grid values (list) or, for random, a list or {distribution: args}
    overrides: dict[str, Any] = field(default_factory=dict)  # fixed keys for every run
    method: str = "grid"  # grid | random
    samples: int = 0  # random: how many runs
    seed: int = 0  # random: the draw's seed, so a re-run of the command draws the same runs
    max_parallel: int = 1  # runs at once
    output_root: str = "runs/sweeps"
    accelerate_config: str = "configs/accelerate/cpu.yaml"
    source: str = ""  # the sweep file, for messages

    @property
    def sweep_dir(self) -> Path:
        return Path(self.output_root) / self.name


@dataclass
class SweepRun:
    name: str  # from the varied keys, filesystem-safe
    params: dict[str, Any]  # the varied keys of this run (dotted as written)
    run_dir: str
    command: list[str]
    status: str = "pending"  # pending | running | finished | failed | skipped
    exit_code: int | None = None
    log: str = ""
    duration_s: float | None = None


def load_sweep(path: str | os.PathLike) -> SweepSpec:
    """Read and check a sweep file; ConfigError names the file and the key that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    raw = read_yaml_mapping(path, "a sweep file: a YAML mapping")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; a sweep file has {list(SWEEP_KEYS)}")
    missing = [k for k in ("name", "stage", "base_config", "parameters") if k not in raw]
    if missing:
        raise ConfigError(f"{path}: missing key(s) {missing}")
    spec = SweepSpec(**raw, source=str(path))
    if not re.fullmatch(r"[A-Za-z0-9._-]+", str(spec.name)):
        raise ConfigError(f"{path}: name {spec.name!r} must be letters, digits, '.', '_' or '-' (a directory name)")
    if spec.stage not in SWEEPABLE:
        raise ConfigError(f"{path}: stage {spec.stage!r} is not one of {list(SWEEPABLE)}")
    for key in ("base_config", "accelerate_config"):
        if not Path(getattr(spec, key)).is_file():
            raise ConfigError(f"{path}: {key} {getattr(spec, key)} not found")
    if spec.method not in ("grid", "random"):
        raise ConfigError(f"{path}: method must be 'grid' or 'random', got {spec.method!r}")
    if not isinstance(spec.parameters, dict) or not spec.parameters:
        raise ConfigError(f"{path}: parameters must be a non-empty mapping of key -> values")
    if not isinstance(spec.overrides, dict):
        raise ConfigError(f"{path}: overrides must be a mapping of key -> value")
    if spec.max_parallel < 1:
        raise ConfigError(f"{path}: max_parallel must be >= 1, got {spec.max_parallel}")
    if spec.method == "random" and spec.samples < 1:
        raise ConfigError(f"{path}: method random needs samples >= 1")
    for key, values in spec.parameters.items():
        _check_values(path, spec.method, key, values)
    return spec


def _check_values(path: Path, method: str, key: str, values: Any) -> None:
    if isinstance(values, list):
        if not values:
            raise ConfigError(f"{path}: parameters.{key} has no values")
        if any(v is None for v in values):
            raise ConfigError(f"{path}: parameters.{key}: null cannot be passed on a command line")
        return
    if method == "grid":
        raise ConfigError(f"{path}: parameters.{key} must be a list of values for a grid sweep, got {values!r}")
    if not isinstance(values, dict) or len(values) != 1 or next(iter(values)) not in DISTRIBUTIONS:
        raise ConfigError(f"{path}: parameters.{key} must be a list or one of {{{'|'.join(DISTRIBUTIONS)}: ...}}")
    (dist, args), = values.items()
    if dist == "choice":
        _check_values(path, method, key, args)
    elif not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, int | float) for a in args)):
        raise ConfigError(f"{path}: parameters.{key}.{dist} needs [low, high], got {args!r}")
    elif not args[0] <= args[1] or (dist == "log_uniform" and args[0] <= 0):
        raise ConfigError(f"{path}: parameters.{key}.{dist}: need 0 < low <= high for log_uniform, low <= high else")


def draw(values: Any, rng: random.Random) -> Any:
    """One value of a random-search parameter: a list is a uniform choice, else a named distribution."""
    if isinstance(values, list):
        return rng.choice(values)
    (dist, args), = values.items()
    if dist == "choice":
        return rng.choice(args)
    low, high = args
    if dist == "uniform":
        return rng.uniform(low, high)
    if dist == "log_uniform":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.randint(int(low), int(high))


def assignments(spec: SweepSpec) -> list[dict[str, Any]]:
    """The varied keys of each run, in a stable order: the grid's product, or `samples` seeded draws."""
    keys = list(spec.parameters)
    if spec.method == "grid":
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*spec.parameters.values())]
    rng = random.Random(spec.seed)
    return [{k: draw(spec.parameters[k], rng) for k in keys} for _ in range(spec.samples)]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "-".join(_short(v) for v in value)
    return str(value)


def _unique_tail(key: str, keys: list[str]) -> str:
    """The shortest dotted suffix of `key` that no other key ends with: `dpo.learning_rate` next to `sft.learn...`."""
    parts = key.split(".")
    for n in range(1, len(parts) + 1):
        tail = ".".join(parts[-n:])
        if not any(k != key and (k == tail or k.endswith("." + tail)) for k in keys):
            return tail
    return key


def run_name(params: dict[str, Any], index: int | None = None) -> str:
    """`beta=0.05,dpo.learning_rate=1e-05`: each key shortened to the last dotted parts that tell it apart.

    Characters other than letters, digits and `._=,+-` become `_`, so the name is a safe directory name.
    `index` (random search) prefixes `r<index>_` so that two equal draws stay two runs.
    """
    names = [_unique_tail(k, list(params)) for k in params]
    text = ",".join(f"{n}={_short(v)}" for n, v in zip(names, params.values(), strict=True))
    text = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
    return text if index is None else f"r{index:02d}_{text}"



def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return copy.deepcopy(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def resolve_values(cls: type, base: dict[str, Any], values: dict[str, Any], *, where: str) -> dict[str, Any]:
    """Top-level key -> value for the command line: plain keys as given, dotted keys built into nested dicts.

    The nested value starts from `base` (the base config's YAML), else the field's default, so a dotted key
    changes one entry and keeps the others. ConfigError names the key when its first part is no field of `cls` or
    a part of it is not a mapping.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        top, *rest = key.split(".")
        if top not in fields:
            raise ConfigError(f"{where}: {key!r}: {top!r} is not a key of {cls.__name__}")
        if not rest:
            out[top] = value
            continue
        current = out.get(top, copy.deepcopy(base[top]) if top in base else _default(fields[top]))
        if isinstance(current, str):
            try:
                current = json.loads(current)
            except json.JSONDecodeError:
                pass
        current = {} if current is None else current
        if not isinstance(current, dict):
            raise ConfigError(f"{where}: {key!r}: {top} is {current!r}, not a mapping a dotted key can go into")
        node = current
        for part in rest[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: {key!r}: {part!r} is {node!r}, not a mapping")
        node[rest[-1]] = value
        out[top] = current
    return out




def plan(spec: SweepSpec) -> list[SweepRun]:
    """Every run with its command, checked by the stage's config parser; finished runs are marked skipped.

    A run whose values include a mapping gets its own config, `<sweep_dir>/configs/<run>.yaml` (the base config
    with the mappings replaced), written here, also for a dry run, so the printed command works as printed.
    """
    stage = SWEEPABLE[spec.stage]
    cls = stage.config
    base = read_yaml_mapping(spec.base_config)
    fixed = resolve_values(cls, base, spec.overrides, where=f"{spec.source}: overrides")
    runs: list[SweepRun] = []
    configs: dict[Path, str] = {}  # per-run configs, written once every run has been checked
    combos = assignments(spec)
    for i, params in enumerate(combos):
        name = run_name(params, i if spec.method == "random" else None)
        run_dir = spec.sweep_dir / name
        varied = resolve_values(cls, {**base, **fixed}, params, where=f"{spec.source}: parameters")
        values = {**fixed, **varied, "experiment": spec.name}
        if spec.stage == "pipeline":
            values["run_dir"] = str(run_dir)
            values.setdefault("accelerate_config", spec.accelerate_config)
        else:
            values.update(output_dir=str(run_dir), run_name=name, resume_from_checkpoint="auto")
        # argparse cannot read a mapping from the command line: mappings go into a per-run copy of the base config
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        flags = cli_flags({k: v for k, v in values.items() if k not in nested})
        config = spec.base_config
        if nested:
            config = str(spec.sweep_dir / "configs" / f"{name}.yaml")
            configs[Path(config)] = yaml.safe_dump({**base, **nested}, sort_keys=False)
            with tempfile.TemporaryDirectory() as tmp:  # checked before anything is written under the sweep dir
                (Path(tmp) / "config.yaml").write_text(configs[Path(config)])
                _validate(spec, cls, ["--config", str(Path(tmp) / "config.yaml"), *flags], name)
        else:
            _validate(spec, cls, ["--config", config, *flags], name)
        command = stage.command(["--config", config, *flags], accelerate_config=spec.accelerate_config)
        run = SweepRun(name, params, str(run_dir), command, log=str(spec.sweep_dir / "logs" / f"{name}.log"))
        if (run_dir / stage.done).is_file():
            run.status = "skipped"
        runs.append(run)
    if len({r.name for r in runs}) != len(runs):
        raise ConfigError(f"{spec.source}: two runs share a name; the parameter values must differ")
    for path, text in configs.items():
        write_atomic(path, text)
    return runs


def _validate(spec: SweepSpec, cls: type, args: list[str], name: str) -> None:
    try:
        cfg = parse_config(cls, args)
        if spec.stage == "pipeline":
            Pipeline(cfg).validate()
    except ConfigError as e:
        raise ConfigError(f"{spec.source}: run {name}: {e}") from e


def write_manifest(spec: SweepSpec, runs: list[SweepRun]) -> Path:
    """`<sweep_dir>/sweep.json`: the spec and every run's parameters, command and status (write, then rename)."""
    spec.sweep_dir.mkdir(parents=True, exist_ok=True)
    path = spec.sweep_dir / "sweep.json"
    record = {
        "name": spec.name,
        "stage": spec.stage,
        "source": spec.source,
        "spec": {k: getattr(spec, k) for k in SWEEP_KEYS},
        "runs": [dataclasses.asdict(r) | {"command": shlex.join(r.command)} for r in runs],
    }
    return write_json(path, record)


def _child_env(spec: SweepSpec, run: SweepRun) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["WANDB_RUN_GROUP"] = spec.name
    env["WANDB_NAME"] = run.name
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _carry_over(spec: SweepSpec, runs: list[SweepRun]) -> None:
    """Skipped runs keep the exit code and duration the last sweep.json recorded; a warning when their command then
    differs from the one this file gives now (a finished run is skipped by name, whatever changed)."""
    manifest = spec.sweep_dir / "sweep.json"
    if not manifest.is_file():
        return
    before = {r["name"]: r for r in json.loads(manifest.read_text()).get("runs", [])}
    for run in runs:
        if run.status != "skipped" or run.name not in before:
            continue
        old = before[run.name]
        run.exit_code, run.duration_s = old.get("exit_code"), old.get("duration_s")
        # the interpreter's path is left out: `python -m pipeline` and the `qwenpost` script may name it differently
        if shlex.split(old["command"])[1:] != run.command[1:]:
            print(f"[sweep] warning: {run.name} finished with another command than this file gives now (see "
                  f"{manifest}); it is skipped: delete {run.run_dir} to run it again", flush=True)


def run_sweep(spec: SweepSpec, *, dry_run: bool = False, max_parallel: int | None = None) -> list[SweepRun]:
    """Plan, then launch the unfinished runs, at most `max_parallel` at once; returns every run with its status."""
    runs = plan(spec)
    _carry_over(spec, runs)
    todo = [r for r in runs if r.status == "pending"]
    print(f"[sweep] {spec.name}: {len(runs)} run(s) ({spec.method}), {len(runs) - len(todo)} already finished",
          flush=True)
    if dry_run:
        for r in runs:
            state = "finished, skipped" if r.status == "skipped" else "to run"
            print(f"# {r.name} ({state})\n{shlex.join(r.command)}", flush=True)
        return runs
    parallel = max_parallel or spec.max_parallel
    write_manifest(spec, runs)
    if not todo:
        print(f"[sweep] {spec.name}: every run is finished; manifest {spec.sweep_dir / 'sweep.json'}", flush=True)
        return runs
    running: dict[str, tuple[SweepRun, subprocess.Popen, float, Any]] = {}
    queue = list(todo)
    with tqdm(total=len(todo), desc=f"sweep {spec.name}", unit="run") as bar:
        while queue or running:
            while queue and len(running) < parallel:
                run = queue.pop(0)
                Path(run.log).parent.mkdir(parents=True, exist_ok=True)
                log = open(run.log, "ab")  # noqa: SIM115 - closed when the run ends
                log.write(f"$ {shlex.join(run.command)}\n".encode())
                log.flush()
                proc = subprocess.Popen(run.command, stdout=log, stderr=subprocess.STDOUT, env=_child_env(spec, run))
                running[run.name] = (run, proc, time.monotonic(), log)
                run.status = "running"
                write_manifest(spec, runs)
                bar.write(f"[sweep] {run.name}: started (log {run.log})")
            time.sleep(0.5)
            for name, (run, proc, started, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                log.close()
                del running[name]
                run.exit_code, run.duration_s = proc.returncode, round(time.monotonic() - started, 1)
                run.status = "finished" if proc.returncode == 0 else "failed"
                write_manifest(spec, runs)
                bar.update(1)
                verdict = "finished" if run.status == "finished" else f"FAILED with exit code {run.exit_code}"
                bar.write(f"[sweep] {run.name}: {verdict} in {run.duration_s:.0f} s (log {run.log})")
    failed = [r for r in runs if r.status == "failed"]
    print(f"[sweep] {spec.name}: {sum(r.status == 'finished' for r in runs)} finished, "
          f"{sum(r.status == 'skipped' for r in runs)} skipped, {len(failed)} failed; manifest "
          f"{spec.sweep_dir / 'sweep.json'}", flush=True)
    for r in failed:
        print(f"[sweep]   failed: {r.name} (exit {r.exit_code}), log {r.log}", flush=True)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    """`qwenpost sweep FILE [--dry_run] [--max_parallel N]`: 0 if every run finished, 1 if one failed, 2 bad input."""
    parser = argparse.ArgumentParser(prog="qwenpost sweep", description=__doc__.split("\n")[0])
    parser.add_argument("file", help="sweep YAML, e.g. configs/sweeps/dpo_beta.yaml")
    parser.add_argument("--dry_run", action="store_true", help="print each run's command and exit")
    parser.add_argument("--max_parallel", type=int, default=None, help="overrides the file's max_parallel")
    args = parser.parse_args(argv)
    try:
        spec = load_sweep(args.file)
        if args.max_parallel is not None and args.max_parallel < 1:
            raise ConfigError(f"--max_parallel must be >= 1, got {args.max_parallel}")
        runs = run_sweep(spec, dry_run=args.dry_run, max_parallel=args.max_parallel)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    return 1 if any(r.status == "failed" for r in runs) else 0
