"""The reference attention's masks and math against hand-derived values and a naive per-head loop."""

from __future__ import annotations

import pytest
import torch

from qwen25.attention.reference import (
    attention_reference,
    build_attention_mask,
    segment_ids_from_cu_seqlens,
    segment_ids_from_position_ids,
)


def test_segment_ids_from_cu_seqlens_hand_values():
    cu = torch.tensor([0, 3, 5], dtype=torch.int32)
    assert segment_ids_from_cu_seqlens(cu, 6).tolist() == [0, 0, 0, 1, 1, 2]  # token 5: padding past the end


def test_segment_ids_from_position_ids_hand_values():
    pos = torch.tensor([[0, 1, 2, 0, 1, 0, 0, 1]])
    assert segment_ids_from_position_ids(pos).tolist() == [[0, 0, 0, 1, 1, 2, 3, 3]]


def test_mask_from_cu_seqlens_is_block_causal():
    cu = torch.tensor([0, 2, 5], dtype=torch.int32)
    mask = build_attention_mask(1, 5, 5, torch.device("cpu"), cu_seq_lens_q=cu, cu_seq_lens_k=cu)
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [0, 0, 1, 1, 0],
            [0, 0, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask[0, 0], expected)


def test_decode_mask_is_aligned_bottom_right():
    mask = build_attention_mask(1, 2, 5, torch.device("cpu"))
    expected = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(mask[0, 0], expected)


def test_padding_mask_is_combined():
    pad = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    pad[..., 0] = False  # key 0 is padding
    mask = build_attention_mask(1, 3, 3, torch.device("cpu"), attention_mask=pad)
    assert mask[0, 0].tolist() == [[False, False, False], [False, True, False], [False, True, True]]


def _naive(q, k, v, mask, scale):
    """Per-head loop with K/V repeated explicitly, in float64."""
    b, h, lq, d = q.shape
    groups = h // k.shape[1]
    out = torch.zeros(b, lq, h, d, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            s = q[bi, hi].double() @ k[bi, hi // groups].double().T * scale
            s = s.masked_fill(~mask[bi, 0], float("-inf"))
            p = torch.softmax(s, -1).nan_to_num(0.0)
            out[bi, :, hi] = p @ v[bi, hi // groups].double()
    return out


@pytest.mark.parametrize("heads,kv_heads", [(14, 2), (12, 2), (28, 4), (40, 8)])
@pytest.mark.parametrize("q_len,k_len", [(1, 1), (17, 17), (1, 23), (5, 113)])
def test_gqa_matches_naive_loop(heads, kv_heads, q_len, k_len):
    g = torch.Generator().manual_seed(heads * 1000 + q_len * 10 + k_len)
    q = torch.randn(2, heads, q_len, 16, generator=g)
    k = torch.randn(2, kv_heads, k_len, 16, generator=g)
    v = torch.randn(2, kv_heads, k_len, 16, generator=g)
    pad = torch.ones(2, 1, q_len, k_len, dtype=torch.bool)
    pad[1, ..., : k_len // 3] = False  # second row left-padded
    mask = build_attention_mask(2, q_len, k_len, torch.device("cpu"), attention_mask=pad)
    got = attention_reference(q, k, v, mask, scaling=0.25)
    ref = _naive(q, k, v, mask, 0.25)
    assert got.shape == (2, q_len, heads, 16)
    assert (got.double() - ref).abs().max().item() < 1e-5
