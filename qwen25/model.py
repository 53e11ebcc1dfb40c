"""Qwen2.5 models: transformers' `Qwen2ForCausalLM` built from a preset or loaded from a local directory.

We never fork the modelling file: every checkpoint is a plain transformers directory that loads back in
transformers, PEFT and vLLM. What this module adds is the preset table (configs/model/*.yaml, validated
against the keys we allow) and loading with this project's attention (`attn_implementation="qwen25"`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import yaml
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from qwen25.attention import ATTN_IMPLEMENTATION, register

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "model"
# The architecture keys a preset may set; anything else is a typo and is refused.
PRESET_KEYS = {
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "tie_word_embeddings",
    "rope_theta",
    "rms_norm_eps",
    "max_position_embeddings",
    "vocab_size",
    "rope_scaling",
}
TASKS = {"causal-lm": AutoModelForCausalLM, "sequence-classification": AutoModelForSequenceClassification}


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str | os.PathLike) -> dict:
    """Read a model preset by name (`tiny`, `qwen2.5-7b`) or YAML path; refuses unknown keys, naming them."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"model preset {name_or_path!r} not found (known: {', '.join(preset_names())})")
    preset = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(preset) - PRESET_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(PRESET_KEYS)}")
    heads, kv_heads = preset["num_attention_heads"], preset["num_key_value_heads"]
    if heads % kv_heads:
        raise ValueError(f"{path}: num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
    return preset


def make_config(preset: dict, vocab_size: int | None = None, **overrides) -> Qwen2Config:
    """A `Qwen2Config` from a preset; `vocab_size` fills a preset whose vocab_size is null."""
    values = {**preset, **overrides}
    if values.get("vocab_size") is None:
        if vocab_size is None:
            raise ValueError("preset has vocab_size: null; pass the tokenizer's size")
        values["vocab_size"] = -(-vocab_size // 64) * 64  # round up to a multiple of 64, as Qwen2.5 pads
    return Qwen2Config(
        **values,
        hidden_act="silu",
        use_sliding_window=False,
        attention_dropout=0.0,
        bos_token_id=None,
    )


def build_model(config: Qwen2Config, seed: int = 0) -> Qwen2ForCausalLM:
    """Randomly initialised `Qwen2ForCausalLM` (fp32) with our attention; the same seed gives the same weights."""
    register()
    torch.manual_seed(seed)
    config._attn_implementation = ATTN_IMPLEMENTATION
    return Qwen2ForCausalLM(config)


def load_model(
    path: str | os.PathLike,
    *,
    task: str = "causal-lm",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = ATTN_IMPLEMENTATION,
    **kwargs,
) -> PreTrainedModel:
    """Load a local HF checkpoint directory (ours or a real Qwen2.5) with our attention.

    task "sequence-classification" gives a one-logit reward-model head (`num_labels=1`) whose pad id comes
    from the checkpoint's config, so the score is read at the last non-pad token.
    """
    register()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no HF checkpoint at {path} (config.json missing)")
    if task not in TASKS:
        raise ValueError(f"task={task!r}; expected one of {sorted(TASKS)}")
    if task == "sequence-classification":
        kwargs.setdefault("num_labels", 1)
    return TASKS[task].from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation, **kwargs)
