"""What every stage reads and writes besides its model: record datasets on disk and checkpoint discovery."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from datasets import Dataset, load_from_disk
from transformers.trainer_utils import get_last_checkpoint

from stagekit.config import ConfigError


def load_records(path: str | Path, *, key: str, columns: list[str]) -> Dataset:
    """A `save_to_disk` dataset reduced to `columns`; errors name the config key and the missing columns."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{key}: dataset directory {path} does not exist")
    try:
        ds = load_from_disk(str(path))
    except FileNotFoundError as e:
        raise ConfigError(f"{key}: {path} is not a dataset saved with save_to_disk ({e})") from e
    if not isinstance(ds, Dataset):
        raise ConfigError(f"{key}: {path} holds a {type(ds).__name__}; expected a single split (Dataset)")
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise ConfigError(f"{key}: {path} lacks column(s) {missing}; it has {ds.column_names}")
    if len(ds) == 0:
        raise ConfigError(f"{key}: {path} has no rows")
    return ds.select_columns(columns)


def load_train_eval(cfg, columns: list[str]) -> tuple[Dataset, Dataset | None]:
    """A stage config's `dataset_path` and optional `eval_dataset_path`, each through `load_records`."""
    train = load_records(cfg.dataset_path, key="dataset_path", columns=columns)
    if not cfg.eval_dataset_path:
        return train, None
    return train, load_records(cfg.eval_dataset_path, key="eval_dataset_path", columns=columns)


def resume_checkpoint(output_dir: str | Path, resume: str | None) -> str | None:
    """`resume_from_checkpoint`: a path, None, or "auto"/"last"/"true" for output_dir's last complete checkpoint.

    "Complete" = has trainer_state.json, the last file the Trainer writes (checkpoints from stagekit/checkpointing.py
    are complete by construction; this also guards against ones written without it). Staging directories a killed
    run left behind (`.tmp-checkpoint-*`, and a replaced checkpoint moved aside, `.checkpoint-*.old-*`) are removed.
    """
    if resume is None or resume.lower() not in ("auto", "last", "true"):
        return resume
    out = Path(output_dir)
    if not out.is_dir():
        return None
    for stale in [*out.glob(".tmp-*checkpoint-*"), *out.glob(".checkpoint-*.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # other ranks may be removing it too
    steps = {}
    for path in out.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / "trainer_state.json").is_file():
            steps[int(match.group(1))] = path
    if not steps:
        return None
    last = str(steps[max(steps)])
    newest = get_last_checkpoint(str(out))
    if newest is not None and newest != last:
        print(f"resume: skipping incomplete {newest} (no trainer_state.json); resuming from {last}")
    return last
