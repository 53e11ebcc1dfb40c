"""Registers this project's attention with transformers under one name, `ATTN_IMPLEMENTATION`.

`Qwen2ForCausalLM.from_pretrained(path, attn_implementation=ATTN_IMPLEMENTATION)` then runs every layer's
attention through `qwen25_attention`, the one dispatch point: on CPU (and wherever no kernel applies) it
runs the PyTorch reference in `reference.py`; the Triton kernels plug in here.

Both interfaces are registered (NOTES.md): without an entry in `AttentionMaskInterface`, transformers
passes `attention_mask=None` and left-padded batches would silently attend to padding. We reuse the sdpa
mask builder, which gives a boolean (batch, 1, q, k) mask (True = attend) or None for a plain causal one.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from qwen25.attention.reference import attention_reference, build_attention_mask

ATTN_IMPLEMENTATION = "qwen25"


def qwen25_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: q (B, H, Lq, D), k/v (B, Hkv, Lk, D) -> ((B, Lq, H, D), None).

    Handles padded batches (the boolean mask), packed rows (`cu_seq_lens_q/k` from TRL's padding-free
    collator, or `position_ids` resets) and KV-cache decoding (Lq < Lk, causal aligned bottom-right).
    """
    if kwargs.get("sliding_window") is not None:
        raise NotImplementedError(
            "qwen25 attention has no sliding window (Qwen2.5 configs set use_sliding_window: false)"
        )
    if kwargs.get("is_causal") is False:
        raise NotImplementedError("qwen25 attention is causal only")
    batch, _, q_len, _ = query.shape
    k_len = key.shape[2]
    mask = build_attention_mask(
        batch,
        q_len,
        k_len,
        query.device,
        attention_mask=attention_mask,
        cu_seq_lens_q=kwargs.get("cu_seq_lens_q"),
        cu_seq_lens_k=kwargs.get("cu_seq_lens_k"),
        position_ids=kwargs.get("position_ids"),
    )
    out = attention_reference(query, key, value, mask, scaling=scaling, dropout=dropout, training=module.training)
    return out, None


def register() -> None:
    """Idempotent: make `attn_implementation="qwen25"` available to every transformers model."""
    AttentionInterface.register(ATTN_IMPLEMENTATION, qwen25_attention)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
