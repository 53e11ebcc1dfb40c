"""Offline RL: Direct Preference Optimization (Qwen2.5 report, section 4.2) with TRL's DPOTrainer.

Pairs come from the verified data builders: a response that passes the verifier (chosen) against one that
fails it (rejected). The frozen reference is the SFT checkpoint itself; TRL makes the copy. Departures from
the report (RECIPE.md): the report trains with the Online Merging Optimizer; this stage uses AdamW for now,
and configs/dpo/tiny.yaml uses a higher learning rate than the report's 7e-7 because the tiny model is
trained from scratch in minutes. With `fused_linear_ce: true` the per-token log-probs come from our fused linear
cross-entropy (qwen25/ops, log-prob = -per-token CE) in place of TRL's own chunked LM head.

One machine:   accelerate launch -m offline_rl --config configs/dpo/tiny.yaml
Several GPUs:  accelerate launch --config_file configs/accelerate/zero3.yaml -m offline_rl --config configs/dpo/<name>.yaml
"""

from __future__ import annotations

from pipeline.configs import parse_config, require_path, run_cli
from pipeline.stage_io import load_records, resume_checkpoint
from pipeline.tracking import setup_tracking, write_summary
from qwen25.model import load_model
from qwen25.ops.fused_lm_head import use_fused_linear_ce
from qwen25.tokenizer import load_tokenizer
from offline_rl.config import DPOStageConfig

PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


def main(argv: list[str] | None = None) -> dict:
    # 1. config
    cfg = parse_config(DPOStageConfig, argv)
    model_dir = require_path(cfg, "model_name_or_path", checkpoint=True)
    train = load_records(cfg.dataset_path, key="dataset_path", columns=PAIR_COLUMNS)
    evaluation = (
        load_records(cfg.eval_dataset_path, key="eval_dataset_path", columns=PAIR_COLUMNS)
        if cfg.eval_dataset_path
        else None
    )

    # 2. policy (the reference is a frozen copy TRL makes) with our attention
    from trl import DPOTrainer

    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)

    # 3. train
    trainer = DPOTrainer(
        model=model,
        args=cfg,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        callbacks=setup_tracking(cfg, experiment=cfg.experiment, stage="dpo"),
    )
    if cfg.fused_linear_ce:
        # replaces the LM head TRL installed in __init__ (policy and reference); these feed DPOTrainer's metrics
        stats = ("entropy", "mean_logits", "is_top1") + (("log_sum_sq_probs",) if trainer.use_weighting else ())
        use_fused_linear_ce(trainer, stats=stats)
    result = trainer.train(resume_from_checkpoint=resume_checkpoint(cfg.output_dir, cfg.resume_from_checkpoint))
    eval_metrics = trainer.evaluate() if evaluation is not None else {}

    # 4. save
    trainer.save_model(cfg.output_dir)
    logs = [log for log in trainer.state.log_history if "loss" in log]
    summary = {
        "stage": "dpo",
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "first_reward_accuracy": logs[0].get("rewards/accuracies") if logs else None,
        "last_reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
        "eval_reward_accuracy": eval_metrics.get("eval_rewards/accuracies"),
        "eval_loss": eval_metrics.get("eval_loss"),
        "train_pairs": len(train),
        "runtime_s": result.metrics.get("train_runtime"),
    }
    if trainer.is_world_process_zero():
        write_summary(cfg.output_dir, summary)
    return summary


if __name__ == "__main__":
    run_cli(main)
