"""This project's attention: a PyTorch reference (`reference.py`) registered with transformers."""

from qwen25.attention.reference import attention_reference, build_attention_mask
from qwen25.attention.registration import ATTN_IMPLEMENTATION, qwen25_attention, register

__all__ = ["ATTN_IMPLEMENTATION", "attention_reference", "build_attention_mask", "qwen25_attention", "register"]
