"""PyTorch reference attention: causal grouped-query attention over padded, packed and cached batches.

This is the path every non-CUDA run uses and the ground truth the Triton kernels are tested against
(STYLE.md: "the reference ships in the package"). It is written by hand rather than calling
`torch.nn.functional.scaled_dot_product_attention` because it must (1) derive packed-segment boundaries
from `cu_seq_lens_*` or `position_ids` resets itself, (2) align causality bottom-right when queries are
shorter than keys (KV-cache decoding, as flash-attention does since 2.1), (3) never repeat K/V in memory
for GQA (queries are grouped per KV head instead), and (4) return exact zeros, not NaN, for query rows
that may attend to nothing (left padding).

Shapes follow transformers' attention interface: q (batch, n_heads, q_len, head_dim),
k/v (batch, n_kv_heads, k_len, head_dim).
"""

from __future__ import annotations

import torch


def segment_ids_from_cu_seqlens(cu_seqlens: torch.Tensor, total: int) -> torch.Tensor:
    """Segment index of every token of a packed row.

    cu_seqlens: (n_segments + 1,) cumulative lengths starting at 0, e.g. [0, 3, 5].
    Returns (total,) int64, e.g. [0, 0, 0, 1, 1]. Tokens past cu_seqlens[-1] (padding to a multiple)
    get their own segment id n_segments.
    """
    positions = torch.arange(total, device=cu_seqlens.device)
    # counting the segment ends <= p gives the index of the segment that holds p
    return torch.searchsorted(cu_seqlens[1:].to(torch.int64).contiguous(), positions, right=True)


def segment_ids_from_position_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Segment index per token from position_ids that restart at each packed boundary.

    position_ids: (batch, q_len). A new segment starts wherever a position is not its predecessor + 1
    (the rule transformers' `find_packed_sequence_indices` uses). Returns (batch, q_len) int64.
    """
    first = position_ids[:, :1] - 1  # (batch, 1): makes the first diff exactly 1
    step = torch.diff(position_ids, prepend=first, dim=-1)
    return (step != 1).cumsum(-1)


def build_attention_mask(
    batch: int,
    q_len: int,
    k_len: int,
    device: torch.device,
    attention_mask: torch.Tensor | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Boolean (batch, 1, q_len, k_len) mask, True = may attend.

    Combines, by AND: causality aligned bottom-right (query i sits at key position k_len - q_len + i);
    the 4D boolean or additive mask transformers passes (padding, or its own packed mask); and packed
    segment boundaries, from cu_seq_lens (preferred) or from position_ids resets when q_len == k_len
    (a packed row in a plain forward, where transformers gives no other hint).
    """
    offset = k_len - q_len
    q_pos = torch.arange(q_len, device=device)[:, None] + offset  # (q_len, 1)
    k_pos = torch.arange(k_len, device=device)[None, :]  # (1, k_len)
    mask = (k_pos <= q_pos)[None, None].expand(batch, 1, q_len, k_len)  # (batch, 1, q_len, k_len)

    if attention_mask is not None:
        if attention_mask.dtype != torch.bool:
            # additive float mask (eager style): 0 = attend, large negative = masked
            attention_mask = attention_mask >= 0
        mask = mask & attention_mask[..., -k_len:]

    segments_q = segments_k = None
    if cu_seq_lens_q is not None:
        if batch != 1:
            raise ValueError(f"packed attention with cu_seq_lens expects batch size 1, got {batch}")
        cu_k = cu_seq_lens_k if cu_seq_lens_k is not None else cu_seq_lens_q
        segments_q = segment_ids_from_cu_seqlens(cu_seq_lens_q, q_len)[None]  # (1, q_len)
        segments_k = segment_ids_from_cu_seqlens(cu_k, k_len)[None]  # (1, k_len)
    elif position_ids is not None and q_len == k_len and q_len > 1:
        segments_q = segments_k = segment_ids_from_position_ids(position_ids.expand(batch, -1))  # (batch, q_len)
    if segments_q is not None:
        mask = mask & (segments_q[:, None, :, None] == segments_k[:, None, None, :])
    return mask


def attention_reference(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor,
    scaling: float | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Masked GQA attention.

    query (batch, n_heads, q_len, head_dim); key/value (batch, n_kv_heads, k_len, head_dim);
    mask boolean (batch, 1, q_len, k_len), True = attend.
    Returns (batch, q_len, n_heads, head_dim), the layout transformers' attention functions return.
    Softmax runs in fp32 as eager attention does; rows with no key to attend to give zeros.
    """
    batch, n_heads, q_len, head_dim = query.shape
    n_kv_heads = key.shape[1]
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv_heads}")
    groups = n_heads // n_kv_heads
    scaling = head_dim**-0.5 if scaling is None else scaling

    # Group query heads under their KV head instead of repeating K/V: head h uses KV head h // groups.
    q = query.view(batch, n_kv_heads, groups, q_len, head_dim)  # (batch, n_kv, groups, q_len, head_dim)
    k = key[:, :, None]  # (batch, n_kv, 1, k_len, head_dim)
    v = value[:, :, None]  # (batch, n_kv, 1, k_len, head_dim)

    scores = torch.matmul(q, k.transpose(-1, -2)).float() * scaling  # (batch, n_kv, groups, q_len, k_len)
    allowed = mask[:, :, None]  # (batch, 1, 1, q_len, k_len)
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    # a fully masked row softmaxes to NaN; such rows (left padding) output zeros
    probs = torch.where(allowed.any(dim=-1, keepdim=True), probs, torch.zeros((), dtype=probs.dtype))
    probs = probs.to(value.dtype)
    if dropout > 0.0 and training:
        probs = torch.nn.functional.dropout(probs, p=dropout)
    out = torch.matmul(probs, v)  # (batch, n_kv, groups, q_len, head_dim)
    out = out.reshape(batch, n_heads, q_len, head_dim)
    return out.transpose(1, 2).contiguous()  # (batch, q_len, n_heads, head_dim)
