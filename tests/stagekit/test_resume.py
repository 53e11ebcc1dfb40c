"""Exact resume after SIGKILL: the SFT, reward-model and DPO stages killed mid-epoch, inside a checkpoint save, and
resumed with `resume_from_checkpoint: auto` log the same losses, step for step, as an uninterrupted run.

The killed and the resumed runs are fresh `python -m <stage>` processes (the real entry point, with its own RNG
and data loader); the uninterrupted reference runs the same `main` in the test process. The killed run dies by
SIGKILL in the middle of writing checkpoint-<kill_at> (after the weights and optimizer, before the RNG states and
trainer_state.json): with atomic checkpoints that directory never appears, so the resume starts from the previous,
complete checkpoint and replays the steps after it, which makes the test also cover replaying part of an epoch
(data order skipped to the right batch) and the restored RNG. Losses are compared as exact floats: same code, same
CPU ops in the same order, so no tolerance is needed.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from stagekit.config import ConfigError
from stagekit.stage_io import checkpoint_problem, resume_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1"]

# Runs `python -m <module> <args>` but SIGKILLs itself inside the checkpoint save of step $KILL_AT_SAVE.
KILLER = """
import os, runpy, signal, sys
from transformers import Trainer

kill_at = int(os.environ.get("KILL_AT_SAVE", "0"))
save_optimizer = Trainer._save_optimizer_and_scheduler

def save_then_die(self, output_dir):
    save_optimizer(self, output_dir)
    if self.state.global_step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

Trainer._save_optimizer_and_scheduler = save_then_die
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _run(tmp_path: Path, module: str, args: list[str], kill_at: int = 0) -> subprocess.CompletedProcess:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "KILL_AT_SAVE": str(kill_at), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(script), module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _losses(out: Path) -> dict[int, float]:
    """step -> loss from metrics.jsonl; a replayed step keeps its last (resumed) value."""
    losses = {}
    for line in (out / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            losses[record["step"]] = record["loss"]
    return losses


def _check_exact_resume(
    tmp_path: Path, module: str, args: list[str], *, kill_at: int, save_steps: int, auto_class=AutoModelForCausalLM
) -> None:
    common = [*args, *CPU, "--save_strategy", "steps", "--save_steps", str(save_steps)]
    full = tmp_path / "full"  # the uninterrupted run, in this process (same code, same CPU ops: same floats)
    importlib.import_module(f"{module}.__main__").main([*common, "--output_dir", str(full)])

    killed = tmp_path / "killed"
    died = _run(tmp_path, module, [*common, "--output_dir", str(killed)], kill_at=kill_at)
    assert died.returncode == -9, died.stderr[-3000:]  # SIGKILL, inside the save of step kill_at
    assert not (killed / f"checkpoint-{kill_at}").exists()  # the half-written checkpoint never got its name
    assert (killed / f".tmp-checkpoint-{kill_at}").is_dir()  # it stayed in the staging dir
    last_complete = kill_at - save_steps
    assert (killed / f"checkpoint-{last_complete}" / "trainer_state.json").is_file()
    before = _losses(killed)
    assert max(before) == kill_at  # it trained up to the kill

    resumed = _run(tmp_path, module, [*common, "--output_dir", str(killed), "--resume_from_checkpoint", "auto"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want, got = _losses(full), _losses(killed)
    assert len(want) > kill_at + 1 and sorted(got) == sorted(want)
    # replayed steps (last_complete, kill_at] and everything after: identical floats (same ops, same order, CPU)
    assert [got[s] for s in sorted(got)] == [want[s] for s in sorted(want)]
    assert not (killed / f".tmp-checkpoint-{kill_at}").exists()  # resume_checkpoint discarded the staging dir
    # every checkpoint is plain transformers (the newest: save_total_limit may have rotated checkpoint-<kill_at> out)
    plain = auto_class.from_pretrained(resume_checkpoint(killed, "auto"), attn_implementation="sdpa")
    assert torch.isfinite(plain(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


@pytest.mark.e2e
@pytest.mark.slow  # three runs, two of them fresh processes: 50-140 s on 2 shared cores, over the default budget
def test_sft_sigkill_resume_reproduces_losses(micro_base, stage_data, tmp_path):
    # 36 short conversations packed into rows of <= 96 tokens, 2 per step: ~12 steps an epoch, 2 epochs capped at 16
    # steps; killed at step 6 (mid-epoch 1), resumed from checkpoint-4, crossing the epoch boundary afterwards
    args = [
        "--config", "configs/sft/tiny.yaml", "--model_name_or_path", str(micro_base),
        "--dataset_path", str(stage_data["sft"]), "--max_steps", "16", "--per_device_train_batch_size", "2",
        "--max_length", "96",
    ]  # fmt: skip
    _check_exact_resume(tmp_path, "sft", args, kill_at=6, save_steps=2)


@pytest.mark.e2e
@pytest.mark.slow
def test_reward_sigkill_resume_reproduces_losses(micro_base, stage_data, tmp_path):
    # 36 pairs, 4 per step: 9 steps an epoch, 2 epochs; killed at step 6 (mid-epoch 1), resumed from checkpoint-3
    args = [
        "train", "--config", "configs/reward/tiny.yaml", "--model_name_or_path", str(micro_base),
        "--dataset_path", str(stage_data["preference"]), "--eval_dataset_path", str(stage_data["preference"]),
        "--num_train_epochs", "2", "--max_steps", "-1",
        "--per_device_train_batch_size", "4", "--eval_strategy", "no",
    ]  # fmt: skip
    _check_exact_resume(tmp_path, "reward", args, kill_at=6, save_steps=3,
                        auto_class=AutoModelForSequenceClassification)


@pytest.mark.e2e
@pytest.mark.slow
def test_dpo_sigkill_resume_reproduces_losses(micro_base, stage_data, tmp_path):
    # 36 pairs, 4 per step: 9 steps an epoch, 2 epochs; killed at step 6 (mid-epoch 1), resumed from checkpoint-3
    args = [
        "--config", "configs/dpo/tiny.yaml", "--model_name_or_path", str(micro_base),
        "--dataset_path", str(stage_data["preference"]), "--eval_dataset_path", str(stage_data["preference"]),
        "--num_train_epochs", "2", "--per_device_train_batch_size", "4", "--eval_strategy", "no",
    ]  # fmt: skip
    _check_exact_resume(tmp_path, "offline_rl", args, kill_at=6, save_steps=3)


@pytest.mark.e2e  # trains the micro model to write checkpoints
def test_atomic_checkpoints_rename_rotate_and_stay_idempotent(micro_base, tmp_path):
    """Plain transformers Trainer: checkpoints appear complete under their final names, rotation still applies,
    nothing is left in staging, and a second call does not wrap twice; save_strategy "no" saves nothing."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from stagekit.checkpointing import atomic_checkpoints

    ids = [[5, 9, 13, 2, 7, 11]] * 8
    data = Dataset.from_dict({"input_ids": ids, "labels": ids})
    model = AutoModelForCausalLM.from_pretrained(micro_base)
    for strategy in ("steps", "no"):
        out = tmp_path / strategy
        args = TrainingArguments(
            output_dir=str(out), max_steps=3, per_device_train_batch_size=4, save_strategy=strategy, save_steps=1,
            save_total_limit=2, report_to="none", use_cpu=True, logging_steps=1,
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=data)
        atomic_checkpoints(trainer)
        wrapped = trainer._save_checkpoint
        atomic_checkpoints(trainer)
        assert trainer._save_checkpoint is wrapped
        trainer.train()
        if strategy == "no":
            assert not out.exists() or not list(out.glob("*checkpoint-*"))
            continue
        assert sorted(p.name for p in out.iterdir() if "checkpoint" in p.name) == ["checkpoint-2", "checkpoint-3"]
        for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"):
            assert (out / "checkpoint-3" / name).is_file(), name
        state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
        assert state["global_step"] == 3 and ".tmp-" not in json.dumps(state)
        assert resume_checkpoint(out, "auto") == str(out / "checkpoint-3")


def test_resume_checkpoint_picks_last_complete_and_drops_staging(tmp_path):
    assert resume_checkpoint(tmp_path / "missing", "auto") is None
    assert resume_checkpoint(tmp_path, None) is None
    with pytest.raises(ConfigError, match="no checkpoint directory at some/dir"):
        resume_checkpoint(tmp_path, "some/dir")
    for step, complete in ((2, True), (4, True), (6, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / ".tmp-checkpoint-8" / "checkpoint-8").mkdir(parents=True)
    assert resume_checkpoint(tmp_path, "auto") == str(tmp_path / "checkpoint-4")  # not the partial checkpoint-6
    assert not (tmp_path / ".tmp-checkpoint-8").exists()


def _real_checkpoint(path: Path, step: int) -> Path:
    """A checkpoint directory with the files a Trainer writes: real torch archives and a real safetensors file."""
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({"w": torch.arange(4096, dtype=torch.float32)}, path / "model.safetensors")
    torch.save({"state": {0: {"exp_avg": torch.ones(4096)}}}, path / "optimizer.pt")
    torch.save({"last_epoch": step}, path / "scheduler.pt")
    torch.save({"python": 1}, path / "rng_state.pth")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def _truncate(file: Path, keep: float = 0.5) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


def test_auto_resume_skips_a_truncated_optimizer_and_falls_back(tmp_path, capsys):
    """Issue 20: a truncated optimizer.pt in the newest checkpoint ended `resume_from_checkpoint: auto` in a raw
    torch traceback naming no path; now it is skipped, with the reason, for the previous complete checkpoint."""
    good = _real_checkpoint(tmp_path / "checkpoint-2", 2)
    bad = _real_checkpoint(tmp_path / "checkpoint-4", 4)
    assert checkpoint_problem(good) is None and checkpoint_problem(bad) is None
    _truncate(bad / "optimizer.pt")
    assert "optimizer.pt is truncated" in checkpoint_problem(bad)
    assert resume_checkpoint(tmp_path, "auto") == str(good)
    assert f"skipping {bad}: optimizer.pt is truncated" in capsys.readouterr().out
    torch.load(good / "optimizer.pt")  # what the Trainer will load does load

    _truncate(good / "model.safetensors", 0.9)
    assert "model.safetensors is truncated" in checkpoint_problem(good)
    with pytest.raises(ConfigError, match=r"no complete checkpoint in .*checkpoint-4: optimizer.pt is truncated"):
        resume_checkpoint(tmp_path, "auto")
    with pytest.raises(ConfigError, match=r"checkpoint-4 cannot be resumed from: optimizer.pt is truncated"):
        resume_checkpoint(tmp_path, str(bad))
    (bad / "trainer_state.json").write_text("{not json")
    assert checkpoint_problem(bad) == "trainer_state.json is not valid JSON"
