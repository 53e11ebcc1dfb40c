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

import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

from stagekit.atomic import fsync_tree, replace_dir, staged_file

STAGING_PREFIX = ".tmp-"  # staging dir = <output_dir>/.tmp-checkpoint-<step>; hidden from checkpoint globs
_WRAPPED_FLAG = "_qwenpost_atomic_checkpoints"


def atomic_checkpoints(trainer) -> None:
    """Make `trainer` (any transformers/TRL Trainer) write each checkpoint to a staging dir and rename it.

    Idempotent; harmless when the trainer never saves (save_strategy "no").
    """
    if getattr(trainer, _WRAPPED_FLAG, False):
        return

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
                with staged_file(staged / "trainer_state.json") as tmp:
                    trainer.state.save_to_json(str(tmp))
        trainer.accelerator.wait_for_everyone()
        if saver:
            fsync_tree(staged)
            replace_dir(staged, final, durable=True)  # the same step saved twice: the older one is replaced
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
