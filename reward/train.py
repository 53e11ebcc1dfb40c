"""Reward model: a Bradley-Terry model trained on preference pairs with TRL's `RewardTrainer`.

    loss = -log sigmoid(r(x, y_chosen) - r(x, y_rejected))  [+ center_rewards_coefficient * (r_c + r_r)^2]

r is the SFT checkpoint with a fresh one-logit head (`AutoModelForSequenceClassification`, num_labels=1) read at
the last non-pad token, running on this project's attention. Trained on the preference pairs the data builders
write (`dataset_path`, rows prompt/chosen/rejected in TRL's conversational format) plus any local JSONL
preference files (`preference_files`, conversational or plain text; reward/preference_data.py). Rows may carry a
`criterion` (one of the report's six: truthfulness, helpfulness, conciseness, relevance, harmlessness,
debiasing); `criterion: helpfulness` trains a model on that criterion's rows only, the default on all of them,
and the service combines per-criterion models with configured weights (`criterion_models` in its config).
The final pairwise accuracy (share of held-out pairs with r_chosen > r_rejected) goes to `metrics.jsonl`, and
`summary.json` adds it per category and per criterion (`eval_by_category`, `eval_by_criterion`), computed by
reloading the saved checkpoint (reward/evaluate.py; `python -m reward eval` also gives the Reward Bench score).
The result is the `model_path` of the reward service (`python -m reward serve`). `use_peft: true` trains LoRA
adapters on the backbone and the fresh score head in full (PEFT's `modules_to_save`); the adapter (head included)
goes to `<output_dir>/adapter` for plain PEFT and the merged model to `<output_dir>`, which the service loads as is.

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
from pathlib import Path

import torch
from datasets import Dataset, load_from_disk
from transformers import set_seed
from trl import RewardTrainer

from qwen25.memory_plan import check_memory
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer
from reward.config import RewardTrainConfig
from reward.evaluate import pairwise_accuracy, score_pairs
from reward.model_scorer import RewardModelScorer, encode_pair
from reward.preference_data import (
    PREFERENCE_COLUMNS,
    read_preference_jsonl,
    rows_from_dataset,
    select_criterion,
    to_dataset,
    unify_format,
)
from stagekit.checkpointing import atomic_checkpoints
from stagekit.config import ConfigError, parse_config, require_path
from stagekit.lora import lora_summary, save_lora_run
from stagekit.stage_io import load_records, resume_checkpoint
from stagekit.tracking import setup_tracking, write_summary


def load_preference_dataset(config: RewardTrainConfig, key: str) -> Dataset:
    """The dataset at `config.<key>`, reduced to prompt/chosen/rejected; ConfigError naming the key if unusable."""
    return load_records(require_path(config, key), key=key, columns=PREFERENCE_COLUMNS)


def load_preference_rows(config: RewardTrainConfig, path_key: str, files_key: str, *, required: bool) -> list[dict]:
    """Rows of the dataset at `config.<path_key>` plus the JSONL files in `config.<files_key>`, filtered to
    `config.criterion`, in one format (reward/preference_data.py); [] when neither is configured. With
    `required`, no row of the criterion is an error; else (held-out rows) it means no evaluation."""
    rows = []
    if getattr(config, path_key):
        load_records(require_path(config, path_key), key=path_key, columns=PREFERENCE_COLUMNS)  # checks, names the key
        rows = rows_from_dataset(load_from_disk(getattr(config, path_key)), path_key)  # with id/category/criterion
    for path in getattr(config, files_key) or []:
        rows += read_preference_jsonl(path)
    if not required and config.criterion is not None:
        rows = [row for row in rows if row["criterion"] == config.criterion]
    if not rows:
        return rows
    return unify_format(select_criterion(rows, config.criterion, path_key.removesuffix("_path")))


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
    if not config.dataset_path and not config.preference_files:
        raise ConfigError("dataset_path or preference_files is required (the preference pairs to train on)")
    train_rows = load_preference_rows(config, "dataset_path", "preference_files", required=True)
    eval_rows = load_preference_rows(config, "eval_dataset_path", "eval_preference_files", required=False)
    train_dataset = to_dataset(train_rows)
    eval_dataset = to_dataset(eval_rows) if eval_rows else None
    check_memory("reward", config, model_path)  # stops here, before any weights load, when it cannot fit the GPU

    set_seed(config.seed)  # the reward head is freshly initialised: same seed, same head
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path, task="sequence-classification", dtype=torch.float32)

    callbacks = setup_tracking(
        config,
        experiment=config.experiment,
        stage="reward",
        config={
            "model_name_or_path": str(model_path),
            "train_pairs": len(train_dataset),
            "criterion": config.criterion,
        },
    )
    trainer = RewardTrainer(
        model=model,
        args=config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=config.lora_config("SEQ_CLS"),  # LoRA + the score head in full (modules_to_save)
    )
    atomic_checkpoints(trainer)
    kept = len(trainer.train_dataset)
    if kept == 0:
        raise ConfigError(f"max_length={config.max_length}: every training pair is longer; raise max_length")
    resume = resume_checkpoint(config.output_dir, config.resume_from_checkpoint)
    train_output = trainer.train(resume_from_checkpoint=resume)
    if config.use_peft:
        save_lora_run(trainer, tokenizer, config.output_dir)  # adapter + head (plain PEFT), merged model for serving
    else:
        save_final(trainer, config.output_dir)

    summary = {
        "stage": "reward",
        "experiment": config.experiment,
        "model": config.output_dir,
        "criterion": config.criterion,
        "lora": lora_summary(config, trainer),
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
        if eval_rows:
            summary |= grouped_accuracy(config, eval_rows)
        write_summary(config.output_dir, summary)
        accuracy = ""
        if eval_dataset is not None:
            accuracy = f", pairwise accuracy {summary['eval_accuracy']:.3f} on {summary['eval_pairs']} held-out pairs"
        print(
            f"reward: trained on {kept} of {len(train_dataset)} pairs (max_length {config.max_length}), "
            f"train loss {summary['train_loss']:.4f}{accuracy}; model saved to {config.output_dir}"
        )
    return summary


def grouped_accuracy(config: RewardTrainConfig, rows: list[dict]) -> dict:
    """Pairwise accuracy of the saved checkpoint per category and criterion, on the pairs that fit max_length (the
    ones the trainer evaluated). Reloads the checkpoint so it works the same under DDP and ZeRO-3."""
    device = "cpu" if config.use_cpu or not torch.cuda.is_available() else "cuda"
    limit = config.max_length or 1 << 30  # RewardTrainer filters nothing when max_length is None
    scorer = RewardModelScorer.from_pretrained(config.output_dir, device=device, max_length=limit)

    def fits(row: dict) -> bool:
        return all(len(encode_pair(scorer.tokenizer, row["prompt"], _text(row[side]))) <= limit
                   for side in ("chosen", "rejected"))  # fmt: skip

    kept = [row for row in rows if fits(row)]
    if not kept:
        return {}
    result = pairwise_accuracy(kept, score_pairs(scorer, kept, batch_size=config.per_device_eval_batch_size))
    return {
        "eval_pairwise_accuracy": result["accuracy"],
        "eval_by_category": result["by_category"],
        "eval_by_criterion": result["by_criterion"],
    }


def _text(response: str | list[dict]) -> str:
    return response if isinstance(response, str) else "".join(m["content"] for m in response)
