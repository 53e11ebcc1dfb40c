"""Offline RL (DPO) stage config: TRL's `DPOConfig` plus where the policy and the pairs come from."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig


@dataclass
class DPOStageConfig(DPOConfig):
    model_name_or_path: str = field(
        default="runs/tiny/sft", metadata={"help": "SFT checkpoint: the policy and the frozen reference"}
    )
    dataset_path: str = field(
        default="runs/tiny/data/preference", metadata={"help": "preference rows: prompt, chosen, rejected"}
    )
    eval_dataset_path: str | None = field(
        default=None, metadata={"help": "held-out preference rows for reward accuracy"}
    )
    experiment: str = field(default="tiny", metadata={"help": "experiment name = wandb group"})
    fused_linear_ce: bool = field(
        default=False,
        metadata={"help": "per-token log-probs from qwen25.ops' fused linear CE instead of TRL's LM head"},
    )
