"""Online RL: Group Relative Policy Optimization (Qwen2.5 report, section 4.3) with TRL's GRPOTrainer.

Each query gets `num_generations` (8, as the report) sampled responses; each response is scored by the reward
service over HTTP (reward model + rule-based verifier from the query's `reference`), and advantages are
rewards normalised within the group. Queries are consumed in descending order of their reward variance
(report), measured beforehand by the scoring pass `python -m online_rl score` (online_rl/ordering.py) with the
starting policy; training walks them in that order with TRL's own sampler, unshuffled. The service must be up
before training starts: this stage checks `/healthz` first and stops with a message naming the URL if it is
not; during the run the reward client retries with back-off, so a service restart is survived.
Every scored sample goes to `<output_dir>/provenance.jsonl` (online_rl/rewards.py), per-component reward
metrics go to the trainer logs (wandb + metrics.jsonl), and with `heldout_dataset_path` the run draws
`<output_dir>/reward_curve.png` from greedy held-out evaluations (online_rl/heldout.py). Checkpoints are
written atomically (stagekit/checkpointing.py) and resume exactly: TRL seeds generation, the Trainer restores
the RNG states and skips to the exact query. Generation and training run our attention. Not in the report,
so ours and documented in the configs: learning rate, KL coefficient (`beta`), clip range (`epsilon`). With
`fused_linear_ce: true` the per-token log-probs and entropies come from our fused linear cross-entropy
(qwen25/ops) in place of TRL's own chunked LM head. `use_peft: true` trains LoRA adapters (stagekit/lora.py): the KL
reference is the policy with its adapter switched off, the adapter goes to `<output_dir>/adapter` and the merged
policy to `<output_dir>`.

One machine:   python -m reward serve --config configs/reward/serve_tiny.yaml &
               python -m online_rl score --config configs/grpo/tiny.yaml       (variance ordering)
               accelerate launch -m online_rl --config configs/grpo/tiny.yaml
Several GPUs:  trl vllm-serve --model runs/<exp>/dpo &   (generation server; then `use_vllm: true,
               vllm_mode: server` in the config, see configs/grpo/qwen2.5-7b.yaml) and
               accelerate launch --config_file configs/accelerate/zero3.yaml -m online_rl \
                   --config configs/grpo/<name>.yaml
"""

from __future__ import annotations

import sys

from online_rl.config import GRPOStageConfig
from online_rl.heldout import HeldoutRewardCallback
from online_rl.ordering import load_query_rows, order_by_variance
from online_rl.ordering import main as score
from online_rl.rewards import ProvenanceCallback, ProvenanceLog, ServiceReward, connect, reward_urls
from online_rl.rollout import RolloutEngine
from online_rl.tools import Toolbox
from online_rl.trainer import QwenGRPOTrainer
from qwen25.memory_plan import check_memory
from qwen25.model import load_model
from qwen25.ops.fused_lm_head import use_fused_linear_ce
from qwen25.tokenizer import load_tokenizer
from stagekit.checkpointing import atomic_checkpoints
from stagekit.config import ConfigError, parse_config, require_path, run_cli
from stagekit.lora import lora_summary, save_lora_run
from stagekit.stage_io import load_records, resume_checkpoint
from stagekit.tracking import setup_tracking, write_summary


def load_queries(cfg: GRPOStageConfig):
    """The training queries: variance-ordered from the scoring pass's output, or dataset_path as is."""
    if cfg.query_order == "dataset":
        return load_query_rows(cfg.dataset_path, key="dataset_path", columns=["prompt", "reference"])
    try:
        rows = load_query_rows(cfg.scored_dataset_path, key="scored_dataset_path",
                               columns=["prompt", "reference", "reward_variance"])  # fmt: skip
    except ConfigError as e:
        raise ConfigError(
            f"{e}; query_order 'variance' trains on the scoring pass's output: run "
            "`python -m online_rl score --config <this config>` first (or set query_order: dataset)"
        ) from e
    rows = order_by_variance(rows)  # already sorted by the scoring pass; sorting again guards hand-made files
    if cfg.min_reward_variance is not None:
        kept = rows.filter(lambda v: v > cfg.min_reward_variance, input_columns="reward_variance")
        if len(kept) == 0:
            raise ConfigError(
                f"min_reward_variance: no query of {cfg.scored_dataset_path} has a reward variance above "
                f"{cfg.min_reward_variance} (of {len(rows)}); lower it or unset it"
            )
        print(f"[online_rl] {len(kept)} of {len(rows)} queries have reward variance > {cfg.min_reward_variance}")
        rows = kept
    return rows


def load_heldout(cfg: GRPOStageConfig) -> list[dict] | None:
    if not cfg.heldout_dataset_path:
        return None
    rows = load_records(cfg.heldout_dataset_path, key="heldout_dataset_path", columns=["prompt", "reference"])
    return list(rows)[: cfg.heldout_limit] if cfg.heldout_limit else list(rows)


def main(argv: list[str] | None = None) -> dict:
    # 1. config, data and the reward service, all checked before the model loads
    cfg = parse_config(GRPOStageConfig, argv)
    model_dir = require_path(cfg, "model_name_or_path", checkpoint=True)
    queries = load_queries(cfg)
    heldout = load_heldout(cfg)
    toolbox = Toolbox.load(cfg.tools_file, timeout_s=cfg.tool_timeout_s,
                           max_result_chars=cfg.tool_result_max_chars) if cfg.tools_file else None  # fmt: skip
    check_memory("grpo", cfg, model_dir)  # stops here, before any weights load, when the step cannot fit the GPU
    client = connect(cfg)  # ConfigError naming the URL if /healthz does not answer in reward_ready_timeout_s

    # 2. policy with our attention
    from accelerate import PartialState

    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "left"  # generation pads on the left
    model = load_model(model_dir, dca=cfg.dca)  # DCA before any PEFT wrapping: sampling past the trained length

    # 3. train
    process_index = PartialState().process_index
    if PartialState().num_processes > 1 and (cfg.rollout_engine == "worker" or cfg.dynamic_sampling):
        raise ConfigError("rollout_engine: worker and dynamic_sampling run on one training process for now (groups "
                          "span processes in TRL's sampler); for several GPUs use rollout_engine trl with use_vllm")
    provenance_path = cfg.provenance_file or f"{cfg.output_dir}/provenance.jsonl"
    provenance = ProvenanceLog(provenance_path if process_index == 0 else f"{provenance_path}.rank{process_index}")
    reward = ServiceReward(
        reward_urls(cfg), timeout=cfg.reward_timeout_s, retries=cfg.reward_retries, backoff_s=cfg.reward_backoff_s,
        retry_budget_s=cfg.reward_retry_budget_s,
        api_token=cfg.reward_api_token, num_generations=cfg.num_generations, provenance=provenance,
        process_index=process_index,
    )  # fmt: skip
    callbacks = setup_tracking(cfg, experiment=cfg.experiment, stage="grpo")
    callbacks.append(ProvenanceCallback(provenance, table_rows=cfg.provenance_table_rows, seed=cfg.seed))
    if heldout:
        callbacks.append(
            HeldoutRewardCallback(
                heldout, client, every=cfg.heldout_eval_steps, max_new_tokens=cfg.heldout_max_new_tokens,
                samples=cfg.heldout_samples, temperature=cfg.temperature, seed=cfg.seed,
            )  # fmt: skip
        )
    engine = None if cfg.rollout_engine == "trl" else RolloutEngine(cfg, engine=cfg.rollout_engine,
                                                                      max_staleness=cfg.max_staleness,
                                                                      toolbox=toolbox)  # fmt: skip
    trainer = QwenGRPOTrainer(
        model=model,
        rollout_engine=engine,
        reward_funcs=[reward],
        args=cfg,
        train_dataset=queries,
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=cfg.lora_config(),  # with LoRA and beta > 0 the reference is the policy with its adapter off
    )
    atomic_checkpoints(trainer)
    if cfg.fused_linear_ce:
        # replaces the LM head TRL installed in __init__; GRPO scores at its sampling temperature and reads entropy
        use_fused_linear_ce(trainer, stats=("entropy",), temperature=trainer.temperature)
    try:
        result = trainer.train(resume_from_checkpoint=resume_checkpoint(cfg.output_dir, cfg.resume_from_checkpoint))
    finally:
        if engine is not None:
            engine.stop()  # the worker process never outlives the trainer

    # 4. save
    if cfg.use_peft:
        save_lora_run(trainer, tokenizer, cfg.output_dir)  # adapter (plain PEFT) + the merged policy
    else:
        trainer.save_model(cfg.output_dir)
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log]
    curve = heldout and trainer.is_world_process_zero() and callbacks[-1].points
    summary = {
        "stage": "grpo",
        "steps": trainer.state.global_step,
        "first_reward": rewards[0] if rewards else None,
        "last_reward": rewards[-1] if rewards else None,
        "mean_reward": sum(rewards) / len(rewards) if rewards else None,
        "runtime_s": result.metrics.get("train_runtime"),
        "lora": lora_summary(cfg, trainer),
        "rollout_engine": cfg.rollout_engine,
        **({"max_staleness": cfg.max_staleness, "rollout_worker_restarts": engine.restarts} if engine else {}),
        **(
            {"heldout_verifier_first": curve[0]["verifier_mean"], "heldout_verifier_last": curve[-1]["verifier_mean"],
             "heldout_accuracy_first": curve[0]["accuracy"], "heldout_accuracy_last": curve[-1]["accuracy"],
             **({"heldout_sampled_verifier_first": curve[0]["sampled_verifier_mean"],
                 "heldout_sampled_verifier_last": curve[-1]["sampled_verifier_mean"]}
                if "sampled_verifier_mean" in curve[-1] else {})}
            if curve else {}
        ),  # fmt: skip
    }
    if trainer.is_world_process_zero():
        write_summary(cfg.output_dir, summary)
    client.close()
    return summary


def cli(argv: list[str] | None = None) -> None:
    """`python -m online_rl [score] --config FILE [--key value ...]`: train, or the variance-scoring pass."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "score":
        run_cli(score, argv[1:])
    else:
        run_cli(main, argv)


if __name__ == "__main__":
    cli()
