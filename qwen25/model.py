"""Qwen2.5 models: transformers' `Qwen2ForCausalLM` built from a preset or loaded from a local directory.

We never fork the modelling file: every checkpoint is a plain transformers directory that loads back in
transformers, PEFT and vLLM. What this module adds is the preset table (configs/model/*.yaml, validated
against the keys we allow) and loading with this project's attention (`attn_implementation="qwen25"`).

Long context (RECIPE.md: "YaRN (factor 4 over 32,768) + Dual Chunk Attention reach 131,072 tokens"): YaRN is
transformers' own `rope_scaling` {type: yarn, factor, original_max_position_embeddings}, static (the same
frequencies at every length); DCA is `dual_chunk_attention_config` {chunk_size, local_size,
original_max_position_embeddings}, Qwen2.5-1M's key, run by our attention (qwen25/attention/dca.py). The
`*-long` presets set both on top of a size's preset (`base:`). `build_model` and `load_model` turn DCA on when the
config carries the key; `load_model(path, dca={...})` or `enable_dca(model, {...})` turn it on for any checkpoint
(generation and evaluation past the trained length, GRPO sampling).
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

from qwen25.attention.dca import CONFIG_KEY as DCA_CONFIG_KEY
from qwen25.attention.dca import DualChunkConfig
from qwen25.attention.registration import ATTN_IMPLEMENTATION, disable_dca, enable_dca, register
from stagekit.device import pick_device, pick_dtype

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
    "dual_chunk_attention_config",
    "base",  # another preset this one extends: its keys, then these
}
TASKS = {"causal-lm": AutoModelForCausalLM, "sequence-classification": AutoModelForSequenceClassification}


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str | os.PathLike) -> dict:
    """Read a model preset by name (`tiny`, `qwen2.5-7b`) or YAML path; refuses unknown keys, naming them."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):  # a name; "qwen2.5-7b" has a dot but is no file name
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"model preset {name_or_path!r} not found (known: {', '.join(preset_names())})")
    preset = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(preset) - PRESET_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(PRESET_KEYS)}")
    if "base" in preset:
        base_name = preset.pop("base")
        if Path(str(base_name)).stem == path.stem:
            raise ValueError(f"{path}: base {base_name!r} is the preset itself")
        preset = {**load_preset(base_name), **preset}
    _check_long_context(preset, path)
    heads, kv_heads = preset["num_attention_heads"], preset["num_key_value_heads"]
    if heads % kv_heads:
        raise ValueError(f"{path}: num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}")
    return preset


def _check_long_context(preset: dict, path: Path) -> None:
    """rope_scaling and dual_chunk_attention_config, checked before any model is built."""
    scaling = preset.get("rope_scaling")
    if scaling is not None:
        if not isinstance(scaling, dict) or (scaling.get("type") or scaling.get("rope_type")) is None:
            raise ValueError(f"{path}: rope_scaling must be a mapping with a type (e.g. yarn), got {scaling!r}")
        if (scaling.get("type") or scaling.get("rope_type")) == "yarn":
            for key in ("factor", "original_max_position_embeddings"):
                if key not in scaling:
                    raise ValueError(f"{path}: rope_scaling of type yarn needs {key}")
    if preset.get(DCA_CONFIG_KEY) is not None:
        DualChunkConfig.from_dict(preset[DCA_CONFIG_KEY], where=f"{path}: {DCA_CONFIG_KEY}")


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
    model = Qwen2ForCausalLM(config)
    if getattr(config, DCA_CONFIG_KEY, None):
        enable_dca(model, getattr(config, DCA_CONFIG_KEY))
    return model


def load_model(
    path: str | os.PathLike,
    *,
    task: str = "causal-lm",
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = ATTN_IMPLEMENTATION,
    dca: dict | DualChunkConfig | bool | None = None,
    **kwargs,
) -> PreTrainedModel:
    """Load a local HF checkpoint directory (ours or a real Qwen2.5) with our attention.

    task "sequence-classification" gives a one-logit reward-model head (`num_labels=1`) whose pad id comes
    from the checkpoint's config, so the score is read at the last non-pad token.
    dca: Dual Chunk Attention. None follows the checkpoint (on when its config.json has
    `dual_chunk_attention_config`), a mapping {chunk_size, local_size[, original_max_position_embeddings]}
    turns it on with those values, False turns it off. Only with our attention.
    """
    if dca not in (None, False):
        DualChunkConfig.from_dict(dca, where="dca")  # refuse a bad block before loading weights
    register()
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no HF checkpoint at {path} (config.json missing)")
    if task not in TASKS:
        raise ValueError(f"task={task!r}; expected one of {sorted(TASKS)}")
    if task == "sequence-classification":
        kwargs.setdefault("num_labels", 1)
    model = TASKS[task].from_pretrained(path, dtype=dtype, attn_implementation=attn_implementation, **kwargs)
    if dca is False:
        disable_dca(model)
    elif dca is not None:
        enable_dca(model, dca)
    elif getattr(model.config, DCA_CONFIG_KEY, None) and attn_implementation == ATTN_IMPLEMENTATION:
        enable_dca(model, getattr(model.config, DCA_CONFIG_KEY))
    return model


def load_for_inference(
    path: str | os.PathLike, *, device: str = "auto", dtype: str = "auto", **kwargs
) -> PreTrainedModel:
    """`load_model` for generation and scoring outside a trainer: on `device`, in `dtype`, in eval mode.

    device/dtype: strings as configs hold them, decided by `stagekit.device` ("auto": accelerate's device; fp32 on
    CPU, on GPU the checkpoint's 16-bit dtype or bf16). Refuses a device that is not here before reading weights.
    Other keywords (task, dca, attn_implementation) go to `load_model`.
    """
    where = pick_device(device)
    model = load_model(path, dtype=pick_dtype(dtype, where, path), **kwargs)
    return model.to(where).eval()
