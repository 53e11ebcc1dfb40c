"""Supervised fine-tuning (Qwen2.5 report, section 4.1) with TRL's SFTTrainer.

What the recipe needs beyond plain TRL: the loss is on assistant tokens only (TRL swaps in the
generation-tagged Qwen2.5 training template); samples are packed best-fit-decreasing into rows without
cross-contamination (padding-free rows carry `cu_seq_lens`, which our registered attention turns into a
block-diagonal causal mask); the model runs our attention (`attn_implementation="qwen25"`); with
`fused_linear_ce: true` the loss comes from our fused linear cross-entropy (qwen25/ops) in place of TRL's own
chunked LM head; `use_peft: true` trains LoRA adapters through PEFT (TRL's `peft_config`), saves them to
`<output_dir>/adapter` (plain `PeftModel.from_pretrained` loads them) and the merged model to `<output_dir>`, so the
next stage reads a full checkpoint either way. Checkpoints are staged and renamed (stagekit/checkpointing.py), so
`resume_from_checkpoint: auto` after a kill resumes exactly (data order, RNG, optimizer) from the last complete one.
Report values (RECIPE.md) live in the configs for real sizes; configs/sft/tiny.yaml departs from them
on purpose (from-scratch tiny model: higher learning rate, short sequences) and says so.

One machine:   accelerate launch -m sft --config configs/sft/tiny.yaml
Several GPUs:  accelerate launch --config_file configs/accelerate/zero3.yaml -m sft --config configs/sft/<name>.yaml
Any key can be overridden: `... --learning_rate 1e-5 --output_dir runs/x/sft`.
"""

from __future__ import annotations

from qwen25.memory_plan import check_memory
from qwen25.model import load_model
from qwen25.ops.fused_lm_head import use_fused_linear_ce
from qwen25.tokenizer import load_tokenizer
from sft.config import SFTStageConfig
from stagekit.checkpointing import atomic_checkpoints
from stagekit.config import parse_config, require_path, run_cli
from stagekit.lora import save_lora_run
from stagekit.stage_io import load_train_eval, resume_checkpoint
from stagekit.tracking import setup_tracking, write_summary


def main(argv: list[str] | None = None) -> dict:
    # 1. config: YAML + overrides, validated before anything heavy
    cfg = parse_config(SFTStageConfig, argv)
    model_dir = require_path(cfg, "model_name_or_path", checkpoint=True)
    train, evaluation = load_train_eval(cfg, ["messages"])
    check_memory("sft", cfg, model_dir)  # stops here, before any weights load, when the step cannot fit the GPU

    # 2. model and tokenizer, with our attention
    from trl import SFTTrainer  # imported late: the config check above should not wait for it

    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)

    # 3. train
    trainer = SFTTrainer(
        model=model,
        args=cfg,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        callbacks=setup_tracking(cfg, experiment=cfg.experiment, stage="sft"),
        peft_config=cfg.lora_config(),
    )
    atomic_checkpoints(trainer)
    if cfg.fused_linear_ce:
        # replaces the LM head TRL installed in __init__; SFTTrainer's metrics read entropy and top-1 hits
        use_fused_linear_ce(trainer, stats=("entropy", "is_top1"))
    result = trainer.train(resume_from_checkpoint=resume_checkpoint(cfg.output_dir, cfg.resume_from_checkpoint))

    # 4. save an HF checkpoint the next stage reads, and what the stage achieved
    if cfg.use_peft:
        save_lora_run(trainer, tokenizer, cfg.output_dir)  # adapter (plain PEFT) + the merged model DPO reads
    else:
        trainer.save_model(cfg.output_dir)
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    summary = {
        "stage": "sft",
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "train_rows": len(train),
        "runtime_s": result.metrics.get("train_runtime"),
    }
    if trainer.is_world_process_zero():
        write_summary(cfg.output_dir, summary)
    return summary


if __name__ == "__main__":
    run_cli(main)
