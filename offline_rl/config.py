"""Offline RL (DPO) stage config: TRL's `DPOConfig` plus where the policy and the pairs come from, the reference
log-prob cache, the optimizer switch (AdamW or the report's Online Merging Optimizer), LoRA (stagekit.lora) and
packed log-prob passes (`padding_free`, TRL's field with our meaning: offline_rl/packed.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from accelerate.utils import parse_flag_from_env
from trl import DPOConfig

from offline_rl.online_merging import OM_DEFAULTS, VARIANTS
from qwen25.memory_plan import MemoryCheckArguments
from qwen25.ops.fused_lm_head import FusedLinearCEArguments
from stagekit.config import ConfigError
from stagekit.lora import LoraArguments
from stagekit.tracking import ExperimentArguments

OPTIMIZERS = ("adamw", "online_merging")


@dataclass
class DPOStageConfig(DPOConfig, LoraArguments, FusedLinearCEArguments, MemoryCheckArguments, ExperimentArguments):
    model_name_or_path: str = field(
        default="runs/tiny/sft", metadata={"help": "SFT checkpoint: the policy and the frozen reference"}
    )
    dataset_path: str = field(
        default="runs/tiny/data/preference", metadata={"help": "preference rows: prompt, chosen, rejected"}
    )
    eval_dataset_path: str | None = field(
        default=None, metadata={"help": "held-out preference rows for reward accuracy"}
    )
    ref_logprob_cache: bool = field(
        default=True,
        metadata={"help": "with precompute_ref_log_probs: keep the reference log-probs on disk, keyed by content"},
    )
    ref_logprob_cache_dir: str | None = field(
        default=None,
        metadata={"help": "where cached reference log-probs live; default <output_dir>/../ref_logprobs (a sweep's "
                  "runs share it)"},
    )
    padding_free: bool = field(
        default=False,
        metadata={"help": "run the policy and reference log-prob passes packed (real tokens only, position_ids "
                  "restarting per sequence: offline_rl/packed.py) instead of on the padded batch. Replaces TRL's own "
                  "padding_free, which TRL 1.16 disables"},
    )
    optimizer: str = field(
        default="adamw",
        metadata={"help": f"one of {OPTIMIZERS}: 'adamw' is the Trainer's `optim`; 'online_merging' is the report's "
                  "Online Merging Optimizer (offline_rl/online_merging.py)"},
    )
    online_merging_base_model: str | None = field(
        default=None,
        metadata={"help": "online_merging: the checkpoint SFT started from (task vector = SFT - base)"},
    )
    online_merging_variant: str = field(
        default=OM_DEFAULTS["variant"], metadata={"help": f"online_merging: one of {VARIANTS}"}
    )
    online_merging_reserve_p: float = field(
        default=OM_DEFAULTS["reserve_p"],
        metadata={"help": "online_merging: fraction of each update (and of the task vector) kept"},
    )
    online_merging_alpha: float = field(
        default=OM_DEFAULTS["alpha"], metadata={"help": "online_merging: weight of the task vector in each step"}
    )
    online_merging_rescale: bool = field(
        default=OM_DEFAULTS["rescale"],
        metadata={"help": "online_merging: rescale a sparsified update to its L1 norm before sparsification"},
    )
    online_merging_clip_val: float = field(
        default=OM_DEFAULTS["clip_val"], metadata={"help": "online_merging (ondare): clip the task vector to +-this"}
    )

    def __post_init__(self):
        super().__post_init__()
        self.check_lora()
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer: {self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.optimizer == "online_merging":
            if self.use_peft:
                raise ConfigError(
                    "optimizer: online_merging merges each full-weight update with the SFT task vector; with "
                    "use_peft the trained weights are LoRA adapters, which have no task vector. Use optimizer: adamw "
                    "with use_peft, or train all weights"
                )
            if not self.online_merging_base_model:
                raise ConfigError("online_merging_base_model is required with optimizer: online_merging")
            if self.online_merging_variant not in VARIANTS:
                raise ConfigError(f"online_merging_variant: {self.online_merging_variant!r} is not one of {VARIANTS}")
            if not 0.0 < self.online_merging_reserve_p <= 1.0:
                raise ConfigError(f"online_merging_reserve_p: {self.online_merging_reserve_p} is not in (0, 1]")
            if not 0.0 <= self.online_merging_alpha <= 1.0:
                raise ConfigError(f"online_merging_alpha: {self.online_merging_alpha} is not in [0, 1]")
            deepspeed = bool(self.deepspeed) or parse_flag_from_env("ACCELERATE_USE_DEEPSPEED")
            fsdp_version = str((self.fsdp_config or {}).get("version", 2)) if self.fsdp else None
            if parse_flag_from_env("ACCELERATE_USE_FSDP"):
                fsdp_version = os.environ.get("FSDP_VERSION", "1")
            if deepspeed or fsdp_version not in (None, "2"):
                which = "DeepSpeed" if deepspeed else f"FSDP version {fsdp_version}"
                raise ConfigError(
                    f"optimizer: online_merging runs on unsharded parameters (one process, DDP) or FSDP2's sharded "
                    f"DTensors; {which} flattens parameters, which breaks the parameter -> task-vector pairing. "
                    "Launch with --config_file configs/accelerate/fsdp2.yaml"
                )
