"""Experiment tracking shared by every stage: wandb (offline unless configured) plus a local metrics file.

Each stage's trainer gets the callbacks from `setup_tracking`: wandb runs are grouped by experiment with
job_type = stage and carry the full resolved config (transformers' WandbCallback logs `args.to_dict()`,
which includes our stage fields); the same numbers go to `<output_dir>/metrics.jsonl`, so `qwenpost
compare` and the pipeline's table work without a wandb account.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from transformers import TrainerCallback, TrainingArguments

from stagekit.atomic import write_json


@dataclass
class ExperimentArguments:
    """The tracking field every stage config shares (mixed into each stage's dataclass)."""

    experiment: str = field(
        default="default", metadata={"help": "experiment name: the wandb group of every stage of one run"}
    )


def configure_wandb(*, experiment: str, stage: str, output_dir: str | os.PathLike) -> None:
    """wandb environment for one stage run: offline unless WANDB_MODE is set, grouped by experiment."""
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_PROJECT", "qwenpost")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DIR", str(Path(output_dir)))
    os.environ["WANDB_RUN_GROUP"] = experiment
    os.environ["WANDB_JOB_TYPE"] = stage
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is None and hasattr(wandb, "teardown"):
        # wandb reads WANDB_* into a process-wide settings singleton at its first setup; a process that used wandb
        # before (an eval, an earlier stage run in-process) would otherwise start this run without group/job_type
        wandb.teardown()
    Path(output_dir).mkdir(parents=True, exist_ok=True)


def append_metrics(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (flushed), the local twin of a wandb log call."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=float) + "\n")


class MetricsFileCallback(TrainerCallback):
    """Writes every trainer log to `<output_dir>/metrics.jsonl` and the resolved config to `run_config.json`."""

    def __init__(self, output_dir: str | os.PathLike, *, experiment: str, stage: str, extra: dict | None = None):
        self.dir = Path(output_dir)
        self.experiment, self.stage, self.extra = experiment, stage, extra or {}

    def on_train_begin(self, args: TrainingArguments, state, control, **kwargs):
        if state.is_world_process_zero:
            self.dir.mkdir(parents=True, exist_ok=True)
            resolved = {"experiment": self.experiment, "stage": self.stage, "args": args.to_dict(), **self.extra}
            write_json(self.dir / "run_config.json", resolved)

    def on_log(self, args: TrainingArguments, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
            append_metrics(self.dir / "metrics.jsonl", record)


def setup_tracking(
    args: TrainingArguments, *, experiment: str, stage: str, config: dict | None = None
) -> list[TrainerCallback]:
    """Configure wandb for this stage and return the callbacks that mirror its metrics to a local file.

    `config`: anything beyond the training arguments worth recording (written into run_config.json).
    """
    configure_wandb(experiment=experiment, stage=stage, output_dir=args.output_dir)
    return [MetricsFileCallback(args.output_dir, experiment=experiment, stage=stage, extra=config)]


def write_summary(output_dir: str | os.PathLike, summary: dict) -> Path:
    """`<output_dir>/summary.json`: what a stage achieved, read by the pipeline's table (write, then rename)."""
    return write_json(Path(output_dir) / "summary.json", summary, default=float)
