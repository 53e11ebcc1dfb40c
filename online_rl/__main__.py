"""Online RL: Group Relative Policy Optimization (Qwen2.5 report, section 4.3) with TRL's GRPOTrainer.

Each query gets `num_generations` (8, as the report) sampled responses; each response is scored by the reward
service over HTTP (reward model + rule-based verifier from the query's `reference`), and advantages are
rewards normalised within the group. The service must be up before training starts: this stage checks
`/healthz` first and stops with a message naming the URL if it is not. Generation and training run our
attention. Not in the report, so ours and documented in the configs: learning rate, KL coefficient
(`beta`), clip range (`epsilon`). With `fused_linear_ce: true` the per-token log-probs and entropies come from
our fused linear cross-entropy (qwen25/ops) in place of TRL's own chunked LM head.

One machine:   python -m reward serve --config configs/reward/serve_tiny.yaml &
               accelerate launch -m online_rl --config configs/grpo/tiny.yaml
Several GPUs:  trl vllm-serve --model runs/<exp>/dpo &   (generation server; then `use_vllm: true,
               vllm_mode: server` in the config) and
               accelerate launch --config_file configs/accelerate/zero3.yaml -m online_rl --config configs/grpo/<name>.yaml
"""

from __future__ import annotations

from pipeline.configs import ConfigError, parse_config, require_path, run_cli
from pipeline.stage_io import load_records, resume_checkpoint
from pipeline.tracking import setup_tracking, write_summary
from qwen25.model import load_model
from qwen25.ops.fused_lm_head import use_fused_linear_ce
from qwen25.tokenizer import load_tokenizer
from online_rl.config import GRPOStageConfig
from reward.client import RewardClient, RewardServiceError, make_reward_function


def main(argv: list[str] | None = None) -> dict:
    # 1. config, data and the reward service, all checked before the model loads
    cfg = parse_config(GRPOStageConfig, argv)
    model_dir = require_path(cfg, "model_name_or_path", checkpoint=True)
    queries = load_records(cfg.dataset_path, key="dataset_path", columns=["prompt", "reference"])
    urls = [url.strip() for url in cfg.reward_url.split(",") if url.strip()]  # replicas: round-robin, fail-over
    client = RewardClient(
        urls, timeout=cfg.reward_timeout_s, retries=cfg.reward_retries, api_token=cfg.reward_api_token
    )
    try:
        client.wait_until_ready(cfg.reward_ready_timeout_s)
    except RewardServiceError as e:
        raise ConfigError(f"reward_url: the reward service is not reachable ({e})") from e

    # 2. policy with our attention
    from trl import GRPOTrainer

    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "left"  # generation pads on the left
    model = load_model(model_dir)

    # 3. train
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[make_reward_function(client)],
        args=cfg,
        train_dataset=queries,
        processing_class=tokenizer,
        callbacks=setup_tracking(cfg, experiment=cfg.experiment, stage="grpo"),
    )
    if cfg.fused_linear_ce:
        # replaces the LM head TRL installed in __init__; GRPO scores at its sampling temperature and reads entropy
        use_fused_linear_ce(trainer, stats=("entropy",), temperature=trainer.temperature)
    result = trainer.train(resume_from_checkpoint=resume_checkpoint(cfg.output_dir, cfg.resume_from_checkpoint))

    # 4. save
    trainer.save_model(cfg.output_dir)
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log]
    summary = {
        "stage": "grpo",
        "steps": trainer.state.global_step,
        "first_reward": rewards[0] if rewards else None,
        "last_reward": rewards[-1] if rewards else None,
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "runtime_s": result.metrics.get("train_runtime"),
    }
    if trainer.is_world_process_zero():
        write_summary(cfg.output_dir, summary)
    client.close()
    return summary


if __name__ == "__main__":
    run_cli(main)
