"""Reward model: a Bradley-Terry model trained on preference pairs with TRL's `RewardTrainer`.

    loss = -log sigmoid(r(x, y_chosen) - r(x, y_rejected))  [+ center_rewards_coefficient * (r_c + r_r)^2]

r is the SFT checkpoint with a fresh one-logit head (`AutoModelForSequenceClassification`, num_labels=1) read at
the last non-pad token, running on this project's attention. Trained on the preference pairs the data builders
write (`<data_dir>/preference`, rows prompt/chosen/rejected in TRL's conversational format); the final
pairwise accuracy (share of held-out pairs with r_chosen > r_rejected) goes to `<output_dir>/metrics.jsonl`
and `summary.json`. The result is the `model_path` of the reward service (`python -m reward serve`).

Departures from the report (RECIPE.md): its reward model learns from human and automatic labels over responses
of several checkpoints plus the DPO pairs; ours learns from the builders' verified pairs (passing vs failing
response) only. Learning rate, epochs and batch size are not stated in the report; the configs say which
values are ours.

    python -m reward train --config configs/reward/tiny.yaml [--learning_rate 5e-5 ...]
    accelerate launch --config_file configs/accelerate/ddp.yaml -m reward train --config configs/reward/tiny.yaml
    accelerate launch --config_file configs/accelerate/zero3.yaml --num_machines N --machine_rank R \\
        --main_process_ip HOST -m reward train --config configs/reward/<experiment>.yaml
"""

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import set_seed
from trl import RewardConfig, RewardTrainer

from pipeline.configs import ConfigError, parse_config, require_path
from pipeline.stage_io import load_records, resume_checkpoint
from pipeline.tracking import setup_tracking, write_summary
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer

PREFERENCE_COLUMNS = ["prompt", "chosen", "rejected"]  # what RewardTrainer reads; id/category/reason are dropped


@dataclass
class RewardTrainConfig(RewardConfig):
    """TRL's RewardConfig (every TrainingArguments key) plus where the model and data come from."""

    model_name_or_path: str | None = field(default=None)  # SFT checkpoint directory (HF format, tokenizer inside)
    dataset_path: str | None = field(default=None)  # preference pairs saved with datasets.save_to_disk
    eval_dataset_path: str | None = field(default=None)  # held-out pairs for the final pairwise accuracy; optional
    experiment: str = field(default="default")  # wandb group shared by every stage of one pipeline run


def load_preference_dataset(config: RewardTrainConfig, key: str) -> Dataset:
    """The dataset at `config.<key>`, reduced to prompt/chosen/rejected; ConfigError naming the key if unusable."""
    return load_records(require_path(config, key), key=key, columns=PREFERENCE_COLUMNS)


def save_final(trainer: RewardTrainer, output_dir: str) -> None:
    """Model + tokenizer into output_dir, written under a temporary name and renamed; config.json lands last,
    so a directory with config.json always holds a complete checkpoint."""
    tmp = Path(output_dir) / ".final.tmp"
    trainer.save_model(str(tmp))  # every rank calls it (ZeRO-3 gathers the weights); rank 0 writes
    if trainer.is_world_process_zero():
        files = sorted(tmp.iterdir(), key=lambda f: f.name == "config.json")
        for file in files:
            os.replace(file, Path(output_dir) / file.name)
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()


def main(argv: list[str] | None = None) -> dict:
    """Parse -> load model and data -> train -> save -> final pairwise accuracy. Returns the summary."""
    config = parse_config(RewardTrainConfig, argv)
    model_path = require_path(config, "model_name_or_path", checkpoint=True)
    train_dataset = load_preference_dataset(config, "dataset_path")
    eval_dataset = load_preference_dataset(config, "eval_dataset_path") if config.eval_dataset_path else None

    set_seed(config.seed)  # the reward head is freshly initialised: same seed, same head
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path, task="sequence-classification", dtype=torch.float32)

    callbacks = setup_tracking(
        config,
        experiment=config.experiment,
        stage="reward",
        config={"model_name_or_path": str(model_path), "train_pairs": len(train_dataset)},
    )
    trainer = RewardTrainer(
        model=model,
        args=config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    kept = len(trainer.train_dataset)
    if kept == 0:
        raise ConfigError(f"max_length={config.max_length}: every training pair is longer; raise max_length")
    resume = resume_checkpoint(config.output_dir, config.resume_from_checkpoint)
    train_output = trainer.train(resume_from_checkpoint=resume)
    save_final(trainer, config.output_dir)

    summary = {
        "stage": "reward",
        "experiment": config.experiment,
        "model": config.output_dir,
        "train_pairs": kept,
        "train_loss": train_output.training_loss,
    }
    if eval_dataset is not None:
        metrics = trainer.evaluate()  # logged through the callbacks: metrics.jsonl and wandb
        summary |= {
            "eval_pairs": len(trainer.eval_dataset),
            "eval_loss": metrics["eval_loss"],
            "eval_accuracy": metrics["eval_accuracy"],  # pairwise: share of pairs with r_chosen > r_rejected
        }
    if trainer.is_world_process_zero():
        write_summary(config.output_dir, summary)
        accuracy = ""
        if eval_dataset is not None:
            accuracy = f", pairwise accuracy {summary['eval_accuracy']:.3f} on {summary['eval_pairs']} held-out pairs"
        print(
            f"reward: trained on {kept} of {len(train_dataset)} pairs (max_length {config.max_length}), "
            f"train loss {summary['train_loss']:.4f}{accuracy}; model saved to {config.output_dir}"
        )
    return summary
