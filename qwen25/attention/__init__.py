"""This project's attention: a PyTorch reference (`reference.py`) registered with transformers, and Dual Chunk
Attention (`dca.py`) for contexts past the trained length."""

from qwen25.attention.dca import DualChunkConfig, parse_dca
from qwen25.attention.reference import attention_reference, build_attention_mask
from qwen25.attention.registration import ATTN_IMPLEMENTATION, disable_dca, enable_dca, qwen25_attention, register

__all__ = [
    "ATTN_IMPLEMENTATION",
    "DualChunkConfig",
    "attention_reference",
    "build_attention_mask",
    "disable_dca",
    "enable_dca",
    "parse_dca",
    "qwen25_attention",
    "register",
]
