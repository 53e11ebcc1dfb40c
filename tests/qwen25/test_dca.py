"""Dual Chunk Attention against a direct, slow implementation of the paper's definitions written here.

The slow version takes q/k *before* RoPE, materialises for every (query, key) pair the remapped query position
(intra: i mod L; successive chunk: min(i mod L + L, s); further back: s) and key position (j mod L), rotates each
pair on its own and runs one masked softmax. Our path receives q/k rotated at position mod L (what
`DualChunkRotaryEmbedding` gives transformers) and goes through the one dispatch point, `qwen25_attention`.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from qwen25.attention import registration
from qwen25.attention.dca import DualChunkConfig, DualChunkState
from qwen25.attention.reference import attention_reference, build_attention_mask
from qwen25.attention.registration import qwen25_attention

HEAD_DIM = 16
THETA = 10_000.0


def inv_freq() -> torch.Tensor:
    return 1.0 / THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float64) / HEAD_DIM)


def rope(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """x (..., D) rotated at pos (broadcast over the leading dims), in float64."""
    angles = pos[..., None].double() * inv_freq()  # (..., D/2)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., : HEAD_DIM // 2].double(), x[..., HEAD_DIM // 2 :].double()
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def slow_dca(q, k, v, q_pos, k_pos, allowed, chunk_size, local_size):
    """The paper's DCA, pair by pair. q (B, H, Lq, D), k/v (B, Hkv, Lk, D) pre-RoPE; q_pos (B, Lq), k_pos (B, Lk)
    absolute positions; allowed (B, Lq, Lk) bool. Returns (B, Lq, H, D) float64."""
    batch, n_heads, q_len, _ = q.shape
    groups = n_heads // k.shape[1]
    chunk_len = chunk_size - local_size
    out = torch.zeros(batch, q_len, n_heads, HEAD_DIM, dtype=torch.float64)
    for b in range(batch):
        qc = q_pos[b][:, None] // chunk_len  # (Lq, 1)
        kc = k_pos[b][None, :] // chunk_len  # (1, Lk)
        intra = (q_pos[b] % chunk_len)[:, None].expand(-1, k.shape[2])
        succ = torch.minimum(intra + chunk_len, torch.tensor(chunk_size))
        inter = torch.full_like(intra, chunk_size)
        pq = torch.where(qc == kc, intra, torch.where(qc - kc == 1, succ, inter))  # (Lq, Lk) remapped q position
        pk = (k_pos[b] % chunk_len)[None, :].expand(q_len, -1)  # (Lq, Lk)
        for h in range(n_heads):
            qi = rope(q[b, h][:, None, :].expand(-1, k.shape[2], -1), pq)  # (Lq, Lk, D): each pair rotated
            kj = rope(k[b, h // groups][None].expand(q_len, -1, -1), pk)  # (Lq, Lk, D)
            s = (qi * kj).sum(-1) * HEAD_DIM**-0.5
            s = s.masked_fill(~allowed[b], float("-inf"))
            p = torch.softmax(s, -1).nan_to_num(0.0)
            out[b, :, h] = p @ v[b, h // groups].double()
    return out


def _module(chunk_size, local_size) -> SimpleNamespace:
    state = DualChunkState(DualChunkConfig(chunk_size, local_size), SimpleNamespace(inv_freq=inv_freq().float()))
    return SimpleNamespace(training=False, dual_chunk=state)


def _inputs(batch, n_heads, n_kv, q_len, k_len, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, n_heads, q_len, HEAD_DIM, generator=g)
    k = torch.randn(batch, n_kv, k_len, HEAD_DIM, generator=g)
    v = torch.randn(batch, n_kv, k_len, HEAD_DIM, generator=g)
    return q, k, v


def _ours(q, k, v, q_pos, k_pos, chunk_size, local_size, mask=None, **kwargs):
    chunk_len = chunk_size - local_size
    q_rot = rope(q, (q_pos % chunk_len)[:, None]).float()  # what the wrapped rotary embedding gives
    k_rot = rope(k, (k_pos % chunk_len)[:, None]).float()
    return qwen25_attention(_module(chunk_size, local_size), q_rot, k_rot, v, mask, **kwargs)[0]


def _causal(batch, q_len, k_len):
    return build_attention_mask(batch, q_len, k_len, torch.device("cpu"))[:, 0]  # (B, Lq, Lk)


@pytest.fixture(autouse=True)
def reference_backend(monkeypatch):
    monkeypatch.setattr(registration, "BACKEND", "reference")


@pytest.mark.parametrize(("length", "chunk_size", "local_size"), [(37, 8, 2), (53, 12, 3), (29, 7, 0), (64, 16, 5)])
def test_single_sequence_matches_paper(length, chunk_size, local_size):
    q, k, v = _inputs(1, 4, 2, length, length)
    pos = torch.arange(length)[None]
    ours = _ours(q, k, v, pos, pos, chunk_size, local_size, position_ids=pos)
    slow = slow_dca(q, k, v, pos, pos, _causal(1, length, length), chunk_size, local_size)
    torch.testing.assert_close(ours.double(), slow, atol=2e-5, rtol=1e-5)


def test_blocked_queries_match_one_block():
    from qwen25.attention.dca import dual_chunk_attention_reference

    q, k, v = _inputs(2, 4, 2, 41, 41)
    pos = torch.arange(41).expand(2, -1)
    args = dict(chunk_len=6, k_pos=pos)
    whole = dual_chunk_attention_reference(q, q.flip(-1), -q, k, v, block_q=64, **args)
    blocked = dual_chunk_attention_reference(q, q.flip(-1), -q, k, v, block_q=5, **args)
    torch.testing.assert_close(blocked, whole, atol=1e-6, rtol=1e-6)


def test_packed_rows_match_paper_per_segment():
    lengths = [19, 1, 26]
    total = sum(lengths)
    q, k, v = _inputs(1, 4, 2, total, total, seed=1)
    pos = torch.cat([torch.arange(n) for n in lengths])[None]  # (1, total) restarting per segment
    seg = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    allowed = _causal(1, total, total) & (seg[:, None] == seg[None, :])[None]
    slow = slow_dca(q, k, v, pos, pos, allowed, 9, 2)
    by_position_ids = _ours(q, k, v, pos, pos, 9, 2, position_ids=pos)
    cu = torch.tensor([0, 19, 20, 46], dtype=torch.int32)
    by_cu_seqlens = _ours(q, k, v, pos, pos, 9, 2, cu_seq_lens_q=cu, cu_seq_lens_k=cu)
    torch.testing.assert_close(by_position_ids.double(), slow, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(by_cu_seqlens.double(), slow, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("mask_kind", ["4d", "2d"])
def test_left_padded_batch_prefill_and_decode(mask_kind):
    """Prefill of a left-padded batch, then decoding 3 tokens against the cache (q_len < k_len)."""
    real = torch.tensor([31, 23])
    width = 31
    valid = torch.arange(width)[None] >= (width - real)[:, None]  # (2, 31) left padding
    pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
    q, k, v = _inputs(2, 4, 2, width, width, seed=2)
    allowed = _causal(2, width, width) & valid[:, None, :]
    mask = allowed[:, None] if mask_kind == "4d" else valid.long()
    ours = _ours(q, k, v, pos, pos, 10, 3, mask=mask, position_ids=pos)
    slow = slow_dca(q, k, v, pos, pos, allowed, 10, 3)
    rows = valid  # padded query rows are never read
    torch.testing.assert_close(ours.double()[rows], slow[rows], atol=2e-5, rtol=1e-5)

    # decoding: the last 3 positions as queries over all keys, positions derived from the padding mask
    q_dec = q[:, :, -3:]
    mask_dec = allowed[:, None, -3:] if mask_kind == "4d" else valid.long()
    ours_dec = _ours(q_dec, k, v, pos[:, -3:], pos, 10, 3, mask=mask_dec, position_ids=pos[:, -3:])
    torch.testing.assert_close(ours_dec.double(), slow[:, -3:], atol=2e-5, rtol=1e-5)


def test_decode_without_mask_matches_paper():
    q, k, v = _inputs(1, 4, 2, 45, 45, seed=3)
    pos = torch.arange(45)[None]
    slow = slow_dca(q, k, v, pos, pos, _causal(1, 45, 45), 11, 4)
    ours = _ours(q[:, :, -1:], k, v, pos[:, -1:], pos, 11, 4, position_ids=pos[:, -1:])
    torch.testing.assert_close(ours.double(), slow[:, -1:], atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [9, 13, 16])
def test_equals_plain_attention_up_to_chunk_size(length):
    """seq <= chunk_size: every remapped distance is the true one, so DCA is plain attention (fp32)."""
    chunk_size, local_size = 16, 5  # chunk_len 11: 9 takes the plain path, 13 and 16 the DCA path
    q, k, v = _inputs(1, 4, 2, length, length, seed=4)
    pos = torch.arange(length)[None]
    ours = _ours(q, k, v, pos, pos, chunk_size, local_size, position_ids=pos)
    plain = attention_reference(
        rope(q, pos[:, None]).float(), rope(k, pos[:, None]).float(), v, _causal(1, length, length)[:, None]
    )
    if length <= chunk_size - local_size:
        assert torch.equal(ours, plain)
    else:
        torch.testing.assert_close(ours, plain, atol=1e-6, rtol=1e-5)


def test_gradients_flow_through_reference():
    q, k, v = _inputs(1, 4, 2, 30, 30, seed=5)
    q.requires_grad_(True)
    pos = torch.arange(30)[None]
    out = _ours(q, k, v, pos, pos, 8, 2, position_ids=pos)
    out.square().sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"chunk_size": 8}, "local_size is required"),
        ({"chunk_size": 8, "local_size": 4}, "must be < chunk_size / 2"),
        ({"chunk_size": 8, "local_size": 1, "window": 2}, "unknown key"),
        ({"chunk_size": "8", "local_size": 1}, "non-negative integer"),
        ({"chunk_size": 64, "local_size": 1, "original_max_position_embeddings": 32}, "exceeds"),
    ],
)
def test_config_errors_name_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        DualChunkConfig.from_dict(values)


@pytest.mark.slow
@pytest.mark.parametrize(("n_heads", "n_kv"), [(14, 2), (12, 2), (28, 4)])
@pytest.mark.parametrize(("length", "chunk_size", "local_size"), [(113, 24, 5), (201, 40, 13), (150, 64, 31)])
def test_bigger_grid_matches_paper(n_heads, n_kv, length, chunk_size, local_size):
    q, k, v = _inputs(1, n_heads, n_kv, length, length, seed=length)
    pos = torch.arange(length)[None]
    ours = _ours(q, k, v, pos, pos, chunk_size, local_size, position_ids=pos)
    slow = slow_dca(q, k, v, pos, pos, _causal(1, length, length), chunk_size, local_size)
    torch.testing.assert_close(ours.double(), slow, atol=2e-5, rtol=1e-5)


def test_packed_segments_within_a_chunk_take_the_plain_path(monkeypatch):
    """A packed row longer than a chunk whose segments are all shorter: identical to plain attention."""
    lengths = [11, 9, 12]
    q, k, v = _inputs(1, 4, 2, 32, 32, seed=6)
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    cu = torch.tensor([0, 11, 20, 32], dtype=torch.int32)
    kwargs = dict(position_ids=pos, cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=12, max_length_k=12)
    ours = _ours(q, k, v, pos, pos, 16, 2, **kwargs)
    q_rot, k_rot = rope(q, pos[:, None]).float(), rope(k, pos[:, None]).float()
    plain = qwen25_attention(SimpleNamespace(training=False), q_rot, k_rot, v, None, **kwargs)[0]
    assert torch.equal(ours, plain)
