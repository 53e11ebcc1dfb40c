"""Offline RL: Direct Preference Optimization (Qwen2.5 report, section 4.2) with TRL's DPOTrainer.

Pairs come from the verified data builders: a response that passes the verifier (chosen) against one that
fails it (rejected). The frozen reference is the SFT checkpoint itself. With `precompute_ref_log_probs: true`
(every shipped config) TRL computes the reference log-probs once before training and no reference model is kept;
with `ref_logprob_cache: true` they are read from / written to a disk cache keyed by the content of the
reference checkpoint, the tokenized data, the tokenizer and the settings that change them
(offline_rl/ref_logprob_cache.py), so the runs of a sweep pay for the reference pass once.

`optimizer: online_merging` trains with the report's Online Merging Optimizer (Lu et al. 2024; OnDARE or OnTIES,
offline_rl/online_merging.py), which merges each AdamW step with the SFT task vector (SFT - base weights, the base
being `online_merging_base_model`); `optimizer: adamw` is the Trainer's own optimizer. Departures from the report
(RECIPE.md): configs/dpo/tiny.yaml uses AdamW and a higher learning rate than the report's 7e-7 because the tiny model
is trained from scratch in minutes. With `fused_linear_ce: true` the per-token log-probs of the policy come from our
fused linear cross-entropy (qwen25/ops, log-prob = -per-token CE) in place of TRL's own chunked LM head.
With `padding_free: true` the policy and reference log-prob passes run packed: the real tokens of a batch in one row,
position_ids restarting per sequence, our attention keeping the sequences apart (offline_rl/packed.py).
`use_peft: true` trains LoRA adapters (stagekit/lora.py): the reference is the same model with its adapter switched
off (no second copy in memory), the adapter is saved to `<output_dir>/adapter` and the merged model to `<output_dir>`.

One machine:   accelerate launch -m offline_rl --config configs/dpo/tiny.yaml
Several GPUs:  accelerate launch --config_file configs/accelerate/ddp.yaml -m offline_rl --config <config>
               with <config> = configs/dpo/qwen2.5-1.5b.yaml (0.5b, 3b likewise)
7B and up:     accelerate launch --config_file configs/accelerate/fsdp2.yaml -m offline_rl --config <config>
               (the online-merging update runs on each rank's FSDP2 shard; DeepSpeed is refused with it)
"""

from __future__ import annotations

from pathlib import Path

from offline_rl.config import DPOStageConfig
from offline_rl.online_merging import OnlineMergingAdamW, describe_sharding, reference_deltas
from offline_rl.packed import packed_dpo_trainer_class
from qwen25.memory_plan import check_memory
from qwen25.model import load_model
from qwen25.ops.fused_lm_head import use_fused_linear_ce
from qwen25.tokenizer import load_tokenizer
from stagekit.checkpointing import atomic_checkpoints
from stagekit.config import parse_config, require_path, run_cli
from stagekit.lora import lora_summary, save_lora_run
from stagekit.stage_io import load_train_eval, resume_checkpoint
from stagekit.tracking import setup_tracking, write_summary

PAIR_COLUMNS = ["prompt", "chosen", "rejected"]


def main(argv: list[str] | None = None) -> dict:
    # 1. config
    cfg = parse_config(DPOStageConfig, argv)
    model_dir = require_path(cfg, "model_name_or_path", checkpoint=True)
    train, evaluation = load_train_eval(cfg, PAIR_COLUMNS)
    check_memory("dpo", cfg, model_dir)  # stops here, before any weights load, when the step cannot fit the GPU
    base_dir = (
        require_path(cfg, "online_merging_base_model", checkpoint=True) if cfg.optimizer == "online_merging" else None
    )

    # 2. policy with our attention (the reference: precomputed log-probs, else a frozen copy TRL makes)
    from trl import DPOTrainer

    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)

    # 3. train (the reference log-probs are computed, or read from the cache, inside the trainer's __init__)
    trainer_kwargs = dict(
        model=model,
        args=cfg,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        callbacks=setup_tracking(cfg, experiment=cfg.experiment, stage="dpo"),
        peft_config=cfg.lora_config(),  # with LoRA the reference is the policy with its adapter switched off
    )
    trainer_cls = DPOTrainer
    if cfg.precompute_ref_log_probs and cfg.ref_logprob_cache:
        from offline_rl.ref_logprob_cache import CachedRefLogpsDPOTrainer

        cache_dir = cfg.ref_logprob_cache_dir or Path(cfg.output_dir).resolve().parent / "ref_logprobs"
        trainer_cls = CachedRefLogpsDPOTrainer
        trainer_kwargs.update(ref_checkpoint=model_dir, ref_logprob_cache_dir=cache_dir)
    if cfg.padding_free:  # packed policy and reference passes (TRL's own padding_free is disabled in 1.16)
        trainer_cls = packed_dpo_trainer_class(trainer_cls)
    trainer = trainer_cls(**trainer_kwargs)
    atomic_checkpoints(trainer)
    if base_dir is not None:
        # DPOTrainer's __init__ does not forward `optimizer_cls_and_kwargs`: set what Trainer.create_optimizer reads
        trainer.optimizer_cls_and_kwargs = (
            OnlineMergingAdamW,
            {
                "ref_deltas": reference_deltas(model, base_dir),
                "lr": cfg.learning_rate,
                "betas": (cfg.adam_beta1, cfg.adam_beta2),
                "eps": cfg.adam_epsilon,
                "variant": cfg.online_merging_variant,
                "reserve_p": cfg.online_merging_reserve_p,
                "alpha": cfg.online_merging_alpha,
                "rescale": cfg.online_merging_rescale,
                "clip_val": cfg.online_merging_clip_val,
                "seed": cfg.seed,
            },
        )
    if cfg.fused_linear_ce:
        # replaces the LM head TRL installed in __init__ (policy and reference); these feed DPOTrainer's metrics
        stats = ("entropy", "mean_logits", "is_top1") + (("log_sum_sq_probs",) if trainer.use_weighting else ())
        use_fused_linear_ce(trainer, stats=stats)
    result = trainer.train(resume_from_checkpoint=resume_checkpoint(cfg.output_dir, cfg.resume_from_checkpoint))
    eval_metrics = trainer.evaluate() if evaluation is not None else {}

    # 4. save
    if cfg.use_peft:
        save_lora_run(trainer, tokenizer, cfg.output_dir)  # adapter (plain PEFT) + the merged model GRPO reads
    else:
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
        "optimizer": cfg.optimizer,
        "parameters": describe_sharding(trainer.model),
        "ref_logprob_cache": dict(getattr(trainer, "ref_logprob_cache_events", [])) or None,
        "lora": lora_summary(cfg, trainer),
    }
    if trainer.is_world_process_zero():
        write_summary(cfg.output_dir, summary)
    return summary


if __name__ == "__main__":
    run_cli(main)
