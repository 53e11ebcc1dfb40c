"""Online RL (GRPO) stage config: TRL's `GRPOConfig` plus the policy, the queries and the reward service."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig


@dataclass
class GRPOStageConfig(GRPOConfig):
    model_name_or_path: str = field(default="runs/tiny/dpo", metadata={"help": "policy to start from (DPO ckpt)"})
    dataset_path: str = field(
        default="runs/tiny/data/rl_queries", metadata={"help": "RL query rows: prompt, reference"}
    )
    reward_url: str = field(
        default="http://127.0.0.1:8765",
        metadata={"help": "base URL of `python -m reward serve`; several replicas: comma-separated"},
    )
    reward_timeout_s: float = field(default=120.0, metadata={"help": "per request to the reward service"})
    reward_retries: int = field(default=3, metadata={"help": "retries on connection errors and 5xx"})
    reward_ready_timeout_s: float = field(
        default=60.0, metadata={"help": "how long to wait at start for the service's /healthz"}
    )
    reward_api_token: str | None = field(default=None, metadata={"help": "bearer token, if the service needs one"})
    experiment: str = field(default="tiny", metadata={"help": "experiment name = wandb group"})
    fused_linear_ce: bool = field(
        default=False,
        metadata={"help": "per-token log-probs/entropy from qwen25.ops' fused linear CE, not TRL's head"},
    )
