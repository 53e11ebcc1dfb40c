"""LoRA (PEFT) in every training stage: one set of config keys and one way to save what a LoRA run made.

The keys keep the names of TRL's `ModelConfig` (`use_peft`, `lora_r`, `lora_alpha`, `lora_dropout`,
`lora_target_modules`), so a TRL user's YAML works unchanged in SFT, DPO, the reward model and GRPO. The adapters
themselves are PEFT's and the trainers wrap the model themselves (TRL's `peft_config`); what TRL does not do is
leave a full checkpoint for the next stage, which is what `save_lora_run` adds:

- `<output_dir>/adapter`: the adapter as plain PEFT writes it (`PeftModel.from_pretrained(base, adapter)` loads it;
  for the reward model it includes the fresh score head, a `modules_to_save` module);
- `<output_dir>`: the merged model (W + alpha/r * B A), a plain transformers checkpoint, so DPO reads SFT's output,
  GRPO reads DPO's and the reward service reads the RM's exactly as after a full-weight run.

The merged files are written under a temporary directory and moved in with `config.json` last: a directory with a
`config.json` always holds a complete checkpoint. References with LoRA: DPO's and GRPO's reference model is the
policy with its adapter switched off (TRL's behaviour when the model is a `PeftModel`), so no second copy of the
weights is kept. The merge runs on the unsharded model (one process or DDP); under ZeRO-3/FSDP the adapter is
saved (the Trainer gathers it) and the merge is refused with a message, because rank 0 holds only a shard.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from stagekit.config import ConfigError

TASK_TYPES = ("CAUSAL_LM", "SEQ_CLS")


@dataclass
class LoraArguments:
    """The LoRA switch and its shape; `lora_config(task_type)` turns them into PEFT's `LoraConfig`."""

    use_peft: bool = field(
        default=False,
        metadata={"help": "train LoRA adapters (PEFT) instead of all weights; adapter saved to <output_dir>/adapter, "
                  "the merged model to <output_dir>"},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (ours; the report trains all weights)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator: updates scaled by alpha / r"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA branch's input"})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "module names to adapt; default: every linear layer except the LM head"}
    )

    def check_lora(self) -> None:
        """ConfigError naming the key when `use_peft` is on and a LoRA value cannot work."""
        if not self.use_peft:
            return
        if isinstance(self.lora_r, bool) or not isinstance(self.lora_r, int) or self.lora_r < 1:
            raise ConfigError(f"lora_r: must be a positive rank, got {self.lora_r}")
        if not self.lora_alpha > 0:
            raise ConfigError(f"lora_alpha: must be positive, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ConfigError(f"lora_dropout: must be in [0, 1), got {self.lora_dropout}")
        if self.lora_target_modules is not None and not self.lora_target_modules:
            raise ConfigError("lora_target_modules: an empty list adapts nothing; unset it for every linear layer")

    def lora_config(self, task_type: str = "CAUSAL_LM"):
        """PEFT's `LoraConfig` for these fields (None when `use_peft` is off). For "SEQ_CLS" (the reward model) PEFT
        adds the score head to `modules_to_save`: the fresh head trains in full and is saved with the adapter."""
        if not self.use_peft:
            return None
        if task_type not in TASK_TYPES:
            raise ValueError(f"task_type must be one of {TASK_TYPES}, got {task_type!r}")
        from peft import LoraConfig

        return LoraConfig(
            task_type=task_type,
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=self.lora_target_modules or "all-linear",
            modules_to_save=["score"] if task_type == "SEQ_CLS" else None,
        )


def save_lora_run(trainer, tokenizer, output_dir: str | os.PathLike) -> None:
    """After a LoRA run: the adapter to `<output_dir>/adapter` (plain PEFT) and the merged model + tokenizer to
    `<output_dir>`, moved into place with config.json last. Every rank calls it; rank 0 writes the merge."""
    output_dir = Path(output_dir)
    trainer.save_model(str(output_dir / "adapter"))  # adapter_config.json + adapter weights, nothing of the base
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if trainer.is_fsdp_enabled or (trainer.is_deepspeed_enabled and plugin is not None and plugin.zero_stage == 3):
        raise ConfigError(
            f"use_peft: the adapter is saved to {output_dir / 'adapter'}, but merging needs the whole model on one "
            "process and this run is sharded (ZeRO-3/FSDP); merge it with `PeftModel.from_pretrained(base, adapter)"
            ".merge_and_unload()` on one machine, or train LoRA with DDP (configs/accelerate/ddp.yaml)"
        )
    if trainer.is_world_process_zero():
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        tmp = output_dir / ".merged.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for file in sorted(tmp.iterdir(), key=lambda f: f.name == "config.json"):
            os.replace(file, output_dir / file.name)
        shutil.rmtree(tmp)
    trainer.accelerator.wait_for_everyone()


def lora_summary(cfg: LoraArguments, trainer) -> dict | None:
    """The run summary's `lora` entry (None without LoRA): rank, alpha and, for the stages with a reference (DPO,
    GRPO), whether a reference copy of the weights was kept (False: the reference is the adapter switched off)."""
    if not cfg.use_peft:
        return None
    summary = {"r": cfg.lora_r, "alpha": cfg.lora_alpha}
    if hasattr(trainer, "ref_model"):
        summary["reference_model_kept"] = trainer.ref_model is not None
    return summary
