"""SFT stage config: TRL's `SFTConfig` plus where the model and data come from."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig


@dataclass
class SFTStageConfig(SFTConfig):
    model_name_or_path: str = field(
        default="runs/tiny/base", metadata={"help": "base checkpoint dir (ours or a real Qwen2.5 checkpoint)"}
    )
    dataset_path: str = field(
        default="runs/tiny/data/sft", metadata={"help": "SFT rows (save_to_disk) with a `messages` column"}
    )
    eval_dataset_path: str | None = field(default=None, metadata={"help": "optional held-out SFT rows"})
    experiment: str = field(default="tiny", metadata={"help": "experiment name = wandb group"})
    fused_linear_ce: bool = field(
        default=False,
        metadata={"help": "loss from qwen25.ops' fused linear cross-entropy instead of TRL's chunked LM head"},
    )
