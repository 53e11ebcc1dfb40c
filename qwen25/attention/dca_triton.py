"""Triton Dual Chunk Attention forward: causal GQA varlen attention whose scores come from three query rotations.

Layered as `triton_flash.py` (kernel → host launcher → `dual_chunk_attn_varlen`), same varlen layout: q_intra,
q_succ, q_inter (total_q, n_heads, head_dim), k/v (total_k, n_kv_heads, head_dim), `cu_seqlens_q/k`. Keys are
rotated at (position mod chunk_len) and each query at its intra/successive/inter position (`dca.py` explains the
remapping). A token's position is its index in its sequence, queries aligned bottom-right (KV-cache decoding).

The kernel is the FA2 forward loop with one change: for each key block it computes only the dot products the
block needs (block-level chunk ranges decide: far blocks need only q_inter · k, the diagonal region q_intra and
q_succ) and selects per element by chunk distance (0, 1, >= 2) before the one online softmax. That is DCA's
three-way split merged by log-sum-exp, in one pass over the keys.

Limits: forward only (no autograd: DCA is used for generation and evaluation; training past the trained length
runs the PyTorch reference, which is differentiable); head_dim in SUPPORTED_HEAD_DIMS; every block is masked
(no unmasked fast path as in `triton_flash.py`). On CPU it runs only under TRITON_INTERPRET=1, with small fixed
blocks; on CUDA the block sizes are autotuned per head_dim and group size.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

from qwen25.attention.triton_flash import (
    LOG2E,
    SUPPORTED_HEAD_DIMS,
    _dot_precision,
    _interpreting,
    prune_to_shared_memory,
)

_INTERPRET_BLOCKS = {"BLOCK_M": 16, "BLOCK_N": 16}


@triton.jit
def _dca_fwd_kernel(
    QI, QS, QR, K, V, O,
    cu_seqlens_q, cu_seqlens_k,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    qk_scale, chunk_len,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program: BLOCK_M queries of one head of one sequence. Grid (cdiv(max_seqlen_q, BLOCK_M), H, n_seq)."""
    start_m = (tl.num_programs(0) - 1 - tl.program_id(0)) * BLOCK_M  # heaviest blocks first
    head = tl.program_id(1)
    seq = tl.program_id(2)
    q_start = tl.load(cu_seqlens_q + seq)
    seq_len_q = tl.load(cu_seqlens_q + seq + 1) - q_start
    if start_m >= seq_len_q:
        return
    k_start = tl.load(cu_seqlens_k + seq)
    seq_len_k = tl.load(cu_seqlens_k + seq + 1) - k_start
    diag_offset = seq_len_k - seq_len_q  # query i is the key at position i + diag_offset
    kv_head = head // GROUP

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    in_q = offs_m < seq_len_q
    q_off = q_start.to(tl.int64) * stride_qt + head * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :]
    q_intra = tl.load(QI + q_off, mask=in_q[:, None], other=0.0)  # (BLOCK_M, HEAD_DIM)
    q_succ = tl.load(QS + q_off, mask=in_q[:, None], other=0.0)
    q_inter = tl.load(QR + q_off, mask=in_q[:, None], other=0.0)
    k_base = K + k_start.to(tl.int64) * stride_kt + kv_head * stride_kh
    v_base = V + k_start.to(tl.int64) * stride_vt + kv_head * stride_vh

    q_abs = offs_m + diag_offset  # (BLOCK_M,) position of each query (negative: sees no key)
    q_chunk = tl.maximum(q_abs, 0) // chunk_len
    # block-level chunk range of the queries (clamped first: negative integer division differs by backend)
    first_q = tl.maximum(start_m + diag_offset, 0)
    last_q = tl.maximum(tl.minimum(start_m + BLOCK_M, seq_len_q) - 1 + diag_offset, 0)
    q_chunk_lo = first_q // chunk_len
    q_chunk_hi = last_q // chunk_len

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    end = tl.minimum(tl.maximum(start_m + BLOCK_M + diag_offset, 0), seq_len_k)
    for start_n in range(0, end, BLOCK_N):
        cols = start_n + offs_n  # (BLOCK_N,) key position
        in_k = cols < seq_len_k
        kt = tl.load(k_base + cols[None, :] * stride_kt + offs_d[:, None], mask=in_k[None, :], other=0.0)
        v = tl.load(v_base + cols[:, None] * stride_vt + offs_d[None, :], mask=in_k[:, None], other=0.0)
        k_chunk_lo = start_n // chunk_len
        k_chunk_hi = (tl.minimum(start_n + BLOCK_N, seq_len_k) - 1) // chunk_len
        rel = q_chunk[:, None] - (cols // chunk_len)[None, :]  # (BLOCK_M, BLOCK_N) chunk distance
        qk = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        if q_chunk_hi - k_chunk_lo >= 2:  # some pair two or more chunks apart
            qk = tl.dot(q_inter, kt, input_precision=DOT_PRECISION)
        if q_chunk_hi - k_chunk_lo >= 1:
            if q_chunk_lo - k_chunk_hi <= 1:  # some pair in successive chunks
                qk = tl.where(rel == 1, tl.dot(q_succ, kt, input_precision=DOT_PRECISION), qk)
        if q_chunk_lo <= k_chunk_hi:  # some pair in the same chunk
            qk = tl.where(rel == 0, tl.dot(q_intra, kt, input_precision=DOT_PRECISION), qk)
        qk = qk * qk_scale  # log2 units
        visible = (cols[None, :] <= q_abs[:, None]) & in_k[None, :]
        qk = tl.where(visible, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        m_new_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # nothing visible yet: exp2 gives 0, not NaN
        p = tl.math.exp2(qk - m_new_safe[:, None])
        alpha = tl.math.exp2(m_i - m_new_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new

    l_safe = tl.where(l_i == 0.0, 1.0, l_i)  # rows with no visible key output 0
    out = acc / l_safe[:, None]
    o_ptrs = O + q_start.to(tl.int64) * stride_ot + head * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=in_q[:, None])


@functools.cache
def _tuned():
    configs = [
        triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s)
        for m, n, w, s in [(128, 64, 8, 2), (64, 64, 4, 2), (64, 32, 4, 3), (32, 64, 4, 2)]
    ]
    prune = {"early_config_prune": prune_to_shared_memory("dca_fwd")}
    return triton.autotune(configs, key=["HEAD_DIM", "GROUP"], prune_configs_by=prune)(_dca_fwd_kernel)


def dual_chunk_attn_varlen(
    q_intra: torch.Tensor,
    q_succ: torch.Tensor,
    q_inter: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    chunk_len: int,
    scale: float | None = None,
) -> torch.Tensor:
    """DCA forward over packed sequences: q_* (total_q, H, D), k/v (total_k, Hkv, D) -> (total_q, H, D).

    Not differentiable (raises if asked for gradients). Tokens outside [0, cu_seqlens[-1]) are left unwritten.
    """
    if torch.is_grad_enabled() and any(x.requires_grad for x in (q_intra, q_succ, q_inter, k, v)):
        raise NotImplementedError("the Triton DCA kernel is forward-only; use the PyTorch reference for gradients")
    if not (q_intra.shape == q_succ.shape == q_inter.shape) or q_intra.dim() != 3 or k.dim() != 3:
        raise ValueError(
            f"expected three q (total_q, H, D) of one shape and k/v (total_k, Hkv, D); got "
            f"{tuple(q_intra.shape)}, {tuple(q_succ.shape)}, {tuple(q_inter.shape)}, {tuple(k.shape)}"
        )
    if k.shape != v.shape or k.shape[2] != q_intra.shape[2] or q_intra.shape[1] % k.shape[1]:
        raise ValueError(f"k {tuple(k.shape)} / v {tuple(v.shape)} do not fit q {tuple(q_intra.shape)}")
    if q_intra.shape[2] not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim {q_intra.shape[2]} is not supported (expected one of {SUPPORTED_HEAD_DIMS})")
    if chunk_len < 1:
        raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
    if not q_intra.is_cuda and not _interpreting():
        raise RuntimeError("the Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 set before importing triton")
    q_intra, q_succ, q_inter = (x.contiguous() for x in (q_intra, q_succ, q_inter))  # one set of strides for all
    k = k if k.stride(-1) == 1 else k.contiguous()
    v = v if v.stride(-1) == 1 else v.contiguous()
    cu_seqlens_q = cu_seqlens_q.to(device=q_intra.device, dtype=torch.int32).contiguous()
    cu_seqlens_k = cu_seqlens_k.to(device=q_intra.device, dtype=torch.int32).contiguous()
    total_q, n_heads, head_dim = q_intra.shape
    n_seq = cu_seqlens_q.numel() - 1
    scale = head_dim**-0.5 if scale is None else float(scale)
    out = torch.zeros_like(q_intra)
    if total_q == 0 or n_seq == 0 or max_seqlen_q == 0:
        return out

    def grid(meta):
        return (triton.cdiv(int(max_seqlen_q), meta["BLOCK_M"]), n_heads, n_seq)

    args = (
        q_intra, q_succ, q_inter, k, v, out, cu_seqlens_q, cu_seqlens_k,
        q_intra.stride(0), q_intra.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1),
        out.stride(0), out.stride(1), scale * LOG2E, int(chunk_len),
    )  # fmt: skip
    meta = {"GROUP": n_heads // k.shape[1], "HEAD_DIM": head_dim, "DOT_PRECISION": _dot_precision(q_intra.dtype)}
    if _interpreting():
        _dca_fwd_kernel[grid(_INTERPRET_BLOCKS)](*args, **meta, **_INTERPRET_BLOCKS)
    else:
        _tuned()[grid](*args, **meta)
    return out


__all__ = ["dual_chunk_attn_varlen"]
