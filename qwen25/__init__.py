"""The model: transformers' Qwen2 modelling with this project's attention registered as "qwen25".

Importing the package registers the attention, so `attn_implementation="qwen25"` works everywhere.
"""

from qwen25.attention import ATTN_IMPLEMENTATION, register

register()

__all__ = ["ATTN_IMPLEMENTATION", "register"]
