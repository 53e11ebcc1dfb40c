"""SFT stage config: TRL's `SFTConfig` plus where the model and data come from, and the LoRA switch (the
`fused_linear_ce` and `experiment` fields are the shared ones of qwen25.ops and stagekit.tracking).

The LoRA fields keep the names of TRL's `ModelConfig` (`use_peft`, `lora_r`, ...), so a TRL user's YAML keys work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from qwen25.memory_plan import MemoryCheckArguments
from qwen25.ops.fused_lm_head import FusedLinearCEArguments
from stagekit.config import ConfigError
from stagekit.tracking import ExperimentArguments


@dataclass
class SFTStageConfig(SFTConfig, FusedLinearCEArguments, MemoryCheckArguments, ExperimentArguments):
    model_name_or_path: str = field(
        default="runs/tiny/base", metadata={"help": "base checkpoint dir (ours or a real Qwen2.5 checkpoint)"}
    )
    dataset_path: str = field(
        default="runs/tiny/data/sft", metadata={"help": "SFT rows (save_to_disk) with a `messages` column"}
    )
    eval_dataset_path: str | None = field(default=None, metadata={"help": "optional held-out SFT rows"})
    use_peft: bool = field(
        default=False,
        metadata={"help": "train LoRA adapters (PEFT) instead of all weights; adapter saved to <output_dir>/adapter"},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (ours; the report trains all weights)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator: updates scaled by alpha / r"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch's input"})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "module names to adapt; default: every linear layer except the LM head"}
    )

    def __post_init__(self):
        super().__post_init__()
        if self.use_peft:
            if self.lora_r < 1:
                raise ConfigError(f"lora_r: must be a positive rank, got {self.lora_r}")
            if self.lora_alpha <= 0:
                raise ConfigError(f"lora_alpha: must be positive, got {self.lora_alpha}")
            if not 0.0 <= self.lora_dropout < 1.0:
                raise ConfigError(f"lora_dropout: must be in [0, 1), got {self.lora_dropout}")

    def lora_config(self):
        """The PEFT `LoraConfig` these fields describe (None when `use_peft` is off)."""
        if not self.use_peft:
            return None
        from peft import LoraConfig

        return LoraConfig(
            task_type="CAUSAL_LM",
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=self.lora_target_modules or "all-linear",
        )
