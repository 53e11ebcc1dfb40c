"""Kernels and fused ops for the Qwen2.5 model: fused linear cross-entropy (no full logits)."""

from qwen25.ops.fused_linear_ce import fused_linear_cross_entropy, fused_linear_token_stats

__all__ = ["fused_linear_cross_entropy", "fused_linear_token_stats"]
