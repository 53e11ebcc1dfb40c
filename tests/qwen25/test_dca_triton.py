"""The Triton DCA forward (`dca_triton.py`) against the PyTorch reference, through `qwen25_attention`.

Runs under TRITON_INTERPRET=1 on CPU (tests/conftest.py) at small shapes: single rows, packed rows, a left-padded
batch (2D mask, as the kernel path receives it), decoding against a cache, several chunk/window sizes.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from qwen25.attention import registration
from qwen25.attention.dca import DualChunkConfig, DualChunkState
from qwen25.attention.registration import qwen25_attention

pytestmark = pytest.mark.kernel  # the DCA kernel under the CPU Triton interpreter
HEAD_DIM = 16


def _module(chunk_size: int, local_size: int) -> SimpleNamespace:
    freqs = 1.0 / 10_000.0 ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM)
    state = DualChunkState(DualChunkConfig(chunk_size, local_size), SimpleNamespace(inv_freq=freqs))
    return SimpleNamespace(training=False, dual_chunk=state)


def _both(monkeypatch, module, q, k, v, mask=None, **kwargs):
    outs = {}
    for backend in ("reference", "triton"):
        monkeypatch.setattr(registration, "BACKEND", backend)
        with torch.no_grad():
            outs[backend] = qwen25_attention(module, q, k, v, mask, **kwargs)[0]
    return outs["triton"], outs["reference"]


def _qkv(batch, q_len, k_len, dtype=torch.float32, seed=0, n_heads=4, n_kv=2):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, n_heads, q_len, HEAD_DIM, generator=g).to(dtype),
        torch.randn(batch, n_kv, k_len, HEAD_DIM, generator=g).to(dtype),
        torch.randn(batch, n_kv, k_len, HEAD_DIM, generator=g).to(dtype),
    )


@pytest.mark.parametrize(("length", "chunk_size", "local_size"), [(45, 12, 3), (37, 20, 7), (50, 9, 0)])
def test_single_row_matches_reference(monkeypatch, length, chunk_size, local_size):
    q, k, v = _qkv(1, length, length)
    pos = torch.arange(length)[None]
    tri, ref = _both(monkeypatch, _module(chunk_size, local_size), q, k, v, position_ids=pos)
    torch.testing.assert_close(tri, ref, atol=2e-5, rtol=1e-5)


def test_packed_rows_match_reference(monkeypatch):
    lengths = [23, 3, 30]
    q, k, v = _qkv(1, sum(lengths), sum(lengths), seed=1, n_heads=6, n_kv=2)
    pos = torch.cat([torch.arange(n) for n in lengths])[None]
    tri, ref = _both(monkeypatch, _module(10, 2), q, k, v, position_ids=pos)
    torch.testing.assert_close(tri, ref, atol=2e-5, rtol=1e-5)


def test_left_padded_prefill_and_decode_match_reference(monkeypatch):
    real = torch.tensor([40, 27])
    width = 40
    valid = (torch.arange(width)[None] >= (width - real)[:, None]).long()  # (2, 40) 2D padding mask
    pos = (valid.cumsum(-1) - 1).clamp(min=0)
    q, k, v = _qkv(2, width, width, seed=2)
    module = _module(14, 4)
    tri, ref = _both(monkeypatch, module, q, k, v, valid, position_ids=pos)
    rows = valid.bool()  # padded query rows: the kernel writes 0, the reference attends real keys; never read
    torch.testing.assert_close(tri[rows], ref[rows], atol=2e-5, rtol=1e-5)
    tri, ref = _both(monkeypatch, module, q[:, :, -2:], k, v, valid, position_ids=pos[:, -2:])  # decoding
    torch.testing.assert_close(tri, ref, atol=2e-5, rtol=1e-5)


def test_half_precision_error_within_torch_error(monkeypatch):
    """fp16 kernel vs fp32 reference: at most 2x the error of the fp16 reference (STYLE.md's tolerance rule)."""
    q, k, v = _qkv(1, 48, 48, seed=3)
    pos = torch.arange(48)[None]
    module = _module(16, 4)
    monkeypatch.setattr(registration, "BACKEND", "reference")
    with torch.no_grad():
        exact = qwen25_attention(module, q, k, v, None, position_ids=pos)[0]
        torch_half = qwen25_attention(module, q.half(), k.half(), v.half(), None, position_ids=pos)[0]
    tri, _ = _both(monkeypatch, module, q.half(), k.half(), v.half(), position_ids=pos)
    kernel_err = (tri.float() - exact).abs().max().item()
    torch_err = (torch_half.float() - exact).abs().max().item()
    assert kernel_err <= 2 * torch_err + 1e-4, (kernel_err, torch_err)


def test_forced_kernel_refuses_gradients(monkeypatch):
    q, k, v = _qkv(1, 30, 30)
    q.requires_grad_(True)
    monkeypatch.setattr(registration, "BACKEND", "triton")
    with pytest.raises(NotImplementedError, match="forward-only"):
        qwen25_attention(_module(8, 2), q, k, v, None, position_ids=torch.arange(30)[None])


@pytest.mark.slow
@pytest.mark.parametrize(("length", "chunk_size", "local_size", "n_heads", "n_kv"),
                         [(257, 40, 9, 14, 2), (190, 96, 30, 28, 4), (129, 17, 0, 12, 2)])  # fmt: skip
def test_bigger_shapes_match_reference(monkeypatch, length, chunk_size, local_size, n_heads, n_kv):
    q, k, v = _qkv(1, length, length, seed=length, n_heads=n_heads, n_kv=n_kv)
    pos = torch.arange(length)[None]
    tri, ref = _both(monkeypatch, _module(chunk_size, local_size), q, k, v, position_ids=pos)
    torch.testing.assert_close(tri, ref, atol=2e-5, rtol=1e-5)
