"""Atomic trainer checkpoints: a `checkpoint-<step>` directory appears only once it is complete.

Why by hand: transformers 5.23's `Trainer._save_checkpoint` writes model, optimizer, scheduler, RNG states and
`trainer_state.json` straight into `<output_dir>/checkpoint-<step>`, file after file. A run killed (SIGKILL,
preemption, OOM killer) in the middle leaves a directory with that name and only some of its files, and
`get_last_checkpoint` -- hence `resume_from_checkpoint: auto` -- picks it and the resume fails or, worse,
resumes from a model without its optimizer state. Neither transformers nor TRL nor accelerate stage a
checkpoint elsewhere and rename it.

`atomic_checkpoints(trainer)` wraps that one method of one trainer instance: the checkpoint is written to
`<output_dir>/.tmp-checkpoint-<step>/checkpoint-<step>` (a name that neither `get_last_checkpoint` nor the
rotation glob match), its files are fsynced, and it is renamed into place with `os.replace` -- atomic on
one filesystem. Rotation of old checkpoints runs after the rename, on the real directory. With several
processes every rank writes its share into the same staging directory (shared filesystem, as the Trainer
already assumes), then all wait, the saving process renames, and all wait again.

Call it right after constructing any HF/TRL trainer; calling it twice changes nothing, and with
`save_strategy: "no"` the wrapped method is simply never called. The checkpoints it writes are the
Trainer's own, so plain transformers (`from_pretrained`, `resume_from_checkpoint`) loads them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

STAGING_PREFIX = ".tmp-"  # staging dir = <output_dir>/.tmp-checkpoint-<step>; hidden from checkpoint globs
_WRAPPED_FLAG = "_qwenpost_atomic_checkpoints"


def _fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then every directory (so the entries themselves are durable)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for dirpath, _, _ in os.walk(root):
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(staged: Path, final: Path) -> None:
    """Rename a complete `staged` checkpoint to `final`; an older `final` (same step saved twice) is replaced."""
    if final.exists():
        # os.replace cannot overwrite a non-empty directory: move the old one aside first, then drop it
        old = final.with_name(f"{STAGING_PREFIX}old-{final.name}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, final)
    _fsync_dir(final.parent)


def atomic_checkpoints(trainer) -> None:
    """Make `trainer` (any transformers/TRL Trainer) write each checkpoint to a staging dir and rename it.

    Idempotent; harmless when the trainer never saves (save_strategy "no").
    """
    if getattr(trainer, _WRAPPED_FLAG, False):
        return
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

    original_save = trainer._save_checkpoint  # bound method of this instance (or of an outer wrapper)
    original_output_dir = trainer._get_output_dir

    def save_checkpoint(model, trial) -> None:
        args = trainer.args
        run_dir = Path(original_output_dir(trial=trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{trainer.state.global_step}"
        staging_root = run_dir / f"{STAGING_PREFIX}{name}"
        saver = args.should_save  # the process(es) that write model weights and trainer_state.json

        if saver and staging_root.exists():  # left behind by a run killed while saving this step
            shutil.rmtree(staging_root)
        trainer.accelerator.wait_for_everyone()

        # The Trainer writes into <staging_root>/checkpoint-<step>; it also rotates inside staging_root,
        # where there is only this checkpoint, so nothing is deleted there.
        shadowed = trainer.__dict__.get("_get_output_dir")
        trainer._get_output_dir = lambda trial=None: str(staging_root)
        limit, args.save_total_limit = args.save_total_limit, None
        try:
            original_save(model, trial)
        finally:
            args.save_total_limit = limit
            if shadowed is None:
                del trainer._get_output_dir  # back to the class method
            else:
                trainer._get_output_dir = shadowed

        staged, final = staging_root / name, run_dir / name
        if saver:
            # trainer_state.json recorded paths under the staging dir: point them at the final location
            best = trainer.state.best_model_checkpoint
            if best is not None and Path(best).parent == staging_root:
                trainer.state.best_model_checkpoint = str(run_dir / Path(best).name)
                tmp = staged / "trainer_state.json.tmp"
                trainer.state.save_to_json(str(tmp))
                os.replace(tmp, staged / "trainer_state.json")
        trainer.accelerator.wait_for_everyone()
        if saver:
            _fsync_tree(staged)
            _publish(staged, final)
            shutil.rmtree(staging_root, ignore_errors=True)
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=args.save_total_limit,
                best_model_checkpoint=trainer.state.best_model_checkpoint,
                use_mtime=True,
            )
        trainer.accelerator.wait_for_everyone()

    trainer._save_checkpoint = save_checkpoint
    setattr(trainer, _WRAPPED_FLAG, True)
