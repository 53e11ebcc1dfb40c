"""SFT stage config: TRL's `SFTConfig` plus where the model and data come from, and the LoRA switch (the
`fused_linear_ce` and `experiment` fields are the shared ones of qwen25.ops and stagekit.tracking).

The LoRA fields are stagekit.lora's, shared by every training stage (TRL's `ModelConfig` names).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from qwen25.memory_plan import MemoryCheckArguments
from qwen25.ops.fused_lm_head import FusedLinearCEArguments
from stagekit.lora import LoraArguments
from stagekit.tracking import ExperimentArguments


@dataclass
class SFTStageConfig(SFTConfig, LoraArguments, FusedLinearCEArguments, MemoryCheckArguments, ExperimentArguments):
    model_name_or_path: str = field(
        default="runs/tiny/base", metadata={"help": "base checkpoint dir (ours or a real Qwen2.5 checkpoint)"}
    )
    dataset_path: str = field(
        default="runs/tiny/data/sft", metadata={"help": "SFT rows (save_to_disk) with a `messages` column"}
    )
    eval_dataset_path: str | None = field(default=None, metadata={"help": "optional held-out SFT rows"})

    def __post_init__(self):
        super().__post_init__()
        self.check_lora()
