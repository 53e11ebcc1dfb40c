"""CPU padded/decoding batches run PyTorch SDPA on the reference's mask: same result as the reference.

`registration._masked_sdpa` replaces `attention_reference` on CPU where no dropout runs (issue 17: GRPO sampled at
0.86-0.91x plain TRL's tokens/s on the reference). Compared here on left/right padding, KV-cache decoding (fewer
queries than keys), packed segments in a padded batch, GQA, and query rows with no visible key (the reference
outputs zeros there), in fp32 (1e-5) and bf16 (at most 2x the reference's own bf16 error against fp32).
"""

from __future__ import annotations

import pytest
import torch

from qwen25.attention import registration
from qwen25.attention.reference import attention_reference, build_attention_mask


def _case(batch, n_heads, n_kv, q_len, k_len, head_dim, pad, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, n_heads, q_len, head_dim, generator=g)
    k = torch.randn(batch, n_kv, k_len, head_dim, generator=g)
    v = torch.randn(batch, n_kv, k_len, head_dim, generator=g)
    padding = torch.ones(batch, k_len, dtype=torch.bool)
    for row, n in enumerate(pad):
        if n > 0:
            padding[row, :n] = False  # left padding
        elif n < 0:
            padding[row, n:] = False  # right padding
    mask = build_attention_mask(batch, q_len, k_len, torch.device("cpu"), attention_mask=padding[:, None, None, :])
    return q, k, v, mask


CASES = {
    "left-padded prefill": (3, 4, 2, 9, 9, 16, [0, 3, 8]),
    "right-padded prefill": (2, 14, 2, 7, 7, 64, [0, -4]),
    "decode one token": (3, 28, 4, 1, 12, 32, [0, 5, 11]),
    "decode a few tokens": (2, 6, 2, 3, 10, 16, [2, 0]),
    "no padding, GQA 12/2": (2, 12, 2, 5, 5, 16, [0, 0]),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_masked_sdpa_matches_reference_fp32(case):
    q, k, v, mask = _case(*CASES[case])
    want = attention_reference(q, k, v, mask)
    got = registration._masked_sdpa(q, k, v, mask, None)
    assert got.shape == want.shape and got.is_contiguous()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_rows_with_no_visible_key_are_zero_as_in_the_reference():
    q, k, v, mask = _case(2, 4, 2, 6, 6, 16, [4, 0])  # row 0's first 4 queries are padding with no key before them
    empty = ~mask.any(dim=-1)  # (B, 1, Lq)
    assert empty.sum() == 4  # the case has such rows
    got = registration._masked_sdpa(q, k, v, mask, 0.3)
    torch.testing.assert_close(got, attention_reference(q, k, v, mask, scaling=0.3), rtol=1e-5, atol=1e-5)
    assert torch.isfinite(got).all() and (got[0, :4] == 0).all()


@pytest.mark.parametrize("case", ["left-padded prefill", "decode one token"])
def test_masked_sdpa_bf16_within_twice_the_reference_error(case):
    q, k, v, mask = _case(*CASES[case])
    truth = attention_reference(q, k, v, mask)
    low = [t.bfloat16() for t in (q, k, v)]
    err_ref = (attention_reference(*low, mask).float() - truth).abs().max()
    err_sdpa = (registration._masked_sdpa(*low, mask, None).float() - truth).abs().max()
    assert err_sdpa <= 2 * err_ref + 1e-6, (err_sdpa, err_ref)


def test_the_cpu_dispatch_uses_sdpa_only_without_dropout(monkeypatch):
    calls = []
    real = registration._masked_sdpa
    monkeypatch.setattr(registration, "_masked_sdpa", lambda *a: calls.append(1) or real(*a))
    q, k, v, mask = _case(*CASES["left-padded prefill"])
    padding = mask[:, :, -1, :]  # (B, 1, k): the last query sees every real key, i.e. the 2D padding
    module = torch.nn.Module().eval()
    registration.qwen25_attention(module, q, k, v, padding[:, 0].long())
    assert calls == [1]
    module.train()
    registration.qwen25_attention(module, q, k, v, padding[:, 0].long(), dropout=0.1)  # dropout: the reference
    assert calls == [1]
    monkeypatch.setattr(registration, "BACKEND", "reference")
    registration.qwen25_attention(module.eval(), q, k, v, padding[:, 0].long())
    assert calls == [1]
