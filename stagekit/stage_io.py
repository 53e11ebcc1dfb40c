"""What every stage reads and writes besides its model: record datasets on disk and checkpoint discovery."""

from __future__ import annotations

import json
import re
import shutil
import struct
import zipfile
from pathlib import Path

from datasets import Dataset, load_from_disk

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


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format (a zip archive) since torch 1.6


def checkpoint_problem(path: str | Path) -> str | None:
    """Why the checkpoint directory `path` cannot be resumed from, or None. Cheap: headers and sizes, no tensors.

    Checks: trainer_state.json is there and parses; every torch archive (`*.pt`, `*.pth`, also in DeepSpeed's
    `global_step*/`) that starts as a zip has its central directory (a truncated copy or a disk-full write has
    not); every `*.safetensors` file is as long as its header says.
    """
    path = Path(path)
    state = path / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text())
    except (ValueError, UnicodeDecodeError):
        return "trainer_state.json is not valid JSON"
    for file in sorted([*path.rglob("*.pt"), *path.rglob("*.pth")]):
        with open(file, "rb") as handle:
            is_zip_start = handle.read(4) == _ZIP_MAGIC
        if is_zip_start and not zipfile.is_zipfile(file):  # legacy (pickle) torch files are not checked
            return f"{file.relative_to(path)} is truncated ({file.stat().st_size} bytes, no zip central directory)"
    for file in sorted(path.rglob("*.safetensors")):
        problem = _safetensors_problem(file)
        if problem:
            return f"{file.relative_to(path)} {problem}"
    return None


def _safetensors_problem(file: Path) -> str | None:
    size = file.stat().st_size
    try:
        with open(file, "rb") as handle:
            header_len = struct.unpack("<Q", handle.read(8))[0]
            if header_len > size - 8:
                return f"is truncated ({size} bytes, header says {header_len} bytes of header alone)"
            header = json.loads(handle.read(header_len))
    except (struct.error, ValueError, UnicodeDecodeError):
        return "has no readable safetensors header"
    end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
    if size != 8 + header_len + end:
        return f"is truncated or padded ({size} bytes, its header says {8 + header_len + end})"
    return None


def resume_checkpoint(output_dir: str | Path, resume: str | None) -> str | None:
    """`resume_from_checkpoint`: a path, None, or "auto"/"last"/"true" for output_dir's last complete checkpoint.

    "Complete" = `checkpoint_problem` finds nothing: trainer_state.json (the last file the Trainer writes) present
    and readable, no truncated torch archive or safetensors file (checkpoints from stagekit/checkpointing.py are
    complete when written; a truncated optimizer.pt comes from a copy or a full disk). "auto" skips incomplete
    checkpoints, newest first, saying which and why, and resumes from the newest complete one; ConfigError when
    there are checkpoints but none is complete, or when an explicit path is not a complete checkpoint. Staging
    directories a killed run left behind (`.tmp-checkpoint-*`, and a replaced checkpoint moved aside,
    `.checkpoint-*.old-*`) are removed.
    """
    if resume is None:
        return None
    if resume.lower() not in ("auto", "last", "true"):
        if not Path(resume).is_dir():
            raise ConfigError(f"`resume_from_checkpoint`: no checkpoint directory at {resume}")
        problem = checkpoint_problem(resume)
        if problem:
            raise ConfigError(f"`resume_from_checkpoint`: {resume} cannot be resumed from: {problem}")
        return resume
    out = Path(output_dir)
    if not out.is_dir():
        return None
    for stale in [*out.glob(".tmp-*checkpoint-*"), *out.glob(".checkpoint-*.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)  # other ranks may be removing it too
    steps = {}
    for path in out.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            steps[int(match.group(1))] = path
    skipped = []
    for step in sorted(steps, reverse=True):
        problem = checkpoint_problem(steps[step])
        if problem is None:
            for path, why in skipped:
                print(f"resume: skipping {path}: {why}; resuming from {steps[step]}")
            return str(steps[step])
        skipped.append((steps[step], problem))
    if skipped:
        listing = "; ".join(f"{path.name}: {why}" for path, why in skipped)
        raise ConfigError(f"`resume_from_checkpoint: auto`: no complete checkpoint in {out} ({listing}); remove "
                          "them to start afresh, or point resume_from_checkpoint at a good copy")  # fmt: skip
    return None
