"""Triton FlashAttention-2: causal, grouped-query, variable-length attention, forward and backward.

Layered as STYLE.md asks: `@triton.jit` kernels → host launchers (`_flash_fwd`, `_flash_bwd`) →
`FlashAttnVarlenFunc` (autograd) → `flash_attn_varlen`, the function `registration.py` dispatches to.

Layout is flash-attn's varlen one: q (total_q, n_heads, head_dim), k/v (total_k, n_kv_heads, head_dim), the
sequences of a batch concatenated along the token axis and delimited by `cu_seqlens_q/k` (int32, (n_seq + 1,),
starting at 0). Only the last axis needs stride 1, so the (tokens, heads, head_dim) views transformers' tensors
already are can be passed without a copy.

- Causal, aligned bottom-right per sequence as flash-attn >= 2.1 does: query i of a sequence with lq queries
  and lk keys attends keys j <= i + (lk - lq) (KV-cache decoding). Rows that may attend to nothing (lq > lk)
  output 0 and get zero gradients, never NaN: their logsumexp is stored as +inf so that the backward's
  recomputed probabilities exp2(s - lse) are exactly 0.
- GQA without repeating K/V: query head h reads KV head h // GROUP; the dK/dV kernel owns one KV head and loops
  over the GROUP query heads that read it, accumulating in fp32 registers (no atomics, deterministic).
- FA2 backward: P is recomputed from the saved logsumexp; delta = rowsum(dO * O) comes from a preprocessing
  kernel; dK/dV (one program per key block) and dQ (one program per query block) are separate kernels.
- Key blocks fully visible to every query of a block run without the causal mask (`MASK=False`); only the
  blocks on the diagonal and at the end of a sequence pay for it.
- Softmax runs in base 2 (`qk_scale = scale * log2(e)`, exp2 is a single instruction) and the logsumexp is
  stored in base 2, per (head, token), fp32.

On CUDA the block sizes are autotuned per head_dim; on CPU the kernels run only under `TRITON_INTERPRET=1`
(set before triton is imported; tests do it in `tests/conftest.py`) with small fixed blocks.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634  # exp(x) = exp2(x * log2 e)
SUPPORTED_HEAD_DIMS = (16, 32, 64, 128)  # powers of two: one tl.arange over head_dim, no masking on it


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# ---------------------------------------------------------------------------------------------------------------
# forward


@triton.jit
def _attn_fwd_inner(
    acc, l_i, m_i, q,
    k_base, v_base, stride_kt, stride_vt,
    offs_m, offs_n, offs_d,
    lo, hi, diag_offset, seq_len_k, qk_scale,
    MASK: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Online softmax over key blocks [lo, hi). MASK=False blocks are in bounds and visible to every row."""
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n  # (BLOCK_N,) key index within the sequence
        kt_ptrs = k_base + cols[None, :] * stride_kt + offs_d[:, None]  # (HEAD_DIM, BLOCK_N): K transposed
        v_ptrs = v_base + cols[:, None] * stride_vt + offs_d[None, :]  # (BLOCK_N, HEAD_DIM)
        if MASK:
            in_k = cols < seq_len_k
            kt = tl.load(kt_ptrs, mask=in_k[None, :], other=0.0)
            v = tl.load(v_ptrs, mask=in_k[:, None], other=0.0)
        else:
            kt = tl.load(kt_ptrs)
            v = tl.load(v_ptrs)
        qk = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N), log2 units
        if MASK:
            visible = (cols[None, :] <= offs_m[:, None] + diag_offset) & in_k[None, :]
            qk = tl.where(visible, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        if MASK:
            # a row with nothing visible yet keeps m = -inf; subtract 0 instead so exp2 gives 0, not NaN
            m_new_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        else:
            m_new_safe = m_new
        p = tl.math.exp2(qk - m_new_safe[:, None])
        alpha = tl.math.exp2(m_i - m_new_safe)  # rescales what was accumulated under the old maximum
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=DOT_PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _attn_fwd_kernel(
    Q, K, V, O, LSE,
    cu_seqlens_q, cu_seqlens_k,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_ot, stride_oh,
    total_q, qk_scale,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program: BLOCK_M queries of one head of one sequence. Grid (cdiv(max_seqlen_q, BLOCK_M), H, n_seq)."""
    # the heaviest (last, most keys under the causal mask) query blocks are scheduled first
    start_m = (tl.num_programs(0) - 1 - tl.program_id(0)) * BLOCK_M
    head = tl.program_id(1)
    seq = tl.program_id(2)
    q_start = tl.load(cu_seqlens_q + seq)
    seq_len_q = tl.load(cu_seqlens_q + seq + 1) - q_start
    if start_m >= seq_len_q:
        return
    k_start = tl.load(cu_seqlens_k + seq)
    seq_len_k = tl.load(cu_seqlens_k + seq + 1) - k_start
    diag_offset = seq_len_k - seq_len_q  # bottom-right causal alignment: query i sees keys j <= i + diag_offset
    kv_head = head // GROUP

    offs_m = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,) query index within the sequence
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    in_q = offs_m < seq_len_q
    q_ptrs = Q + q_start.to(tl.int64) * stride_qt + head * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :]
    q = tl.load(q_ptrs, mask=in_q[:, None], other=0.0)  # (BLOCK_M, HEAD_DIM)
    k_base = K + k_start.to(tl.int64) * stride_kt + kv_head * stride_kh
    v_base = V + k_start.to(tl.int64) * stride_vt + kv_head * stride_vh

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    # keys [0, full_end) are visible to every row of the block (j <= start_m + diag_offset) and in bounds;
    # keys [full_end, end) need the mask. Clamp before dividing: negative integer division differs by backend.
    end = tl.minimum(tl.maximum(start_m + BLOCK_M + diag_offset, 0), seq_len_k)
    full_end = tl.minimum(tl.maximum(start_m + diag_offset + 1, 0), seq_len_k)
    full_end = (full_end // BLOCK_N) * BLOCK_N
    acc, l_i, m_i = _attn_fwd_inner(
        acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, offs_m, offs_n, offs_d,
        0, full_end, diag_offset, seq_len_k, qk_scale,
        MASK=False, BLOCK_N=BLOCK_N, DOT_PRECISION=DOT_PRECISION,
    )  # fmt: skip
    acc, l_i, m_i = _attn_fwd_inner(
        acc, l_i, m_i, q, k_base, v_base, stride_kt, stride_vt, offs_m, offs_n, offs_d,
        full_end, end, diag_offset, seq_len_k, qk_scale,
        MASK=True, BLOCK_N=BLOCK_N, DOT_PRECISION=DOT_PRECISION,
    )  # fmt: skip

    empty = l_i == 0.0  # rows with no visible key (lq > lk): output 0, lse +inf so the backward's P is 0
    l_safe = tl.where(empty, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(empty, float("inf"), m_i + tl.math.log2(l_safe))  # base-2 logsumexp of the scaled scores
    o_ptrs = O + q_start.to(tl.int64) * stride_ot + head * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :]
    tl.store(o_ptrs, out.to(O.dtype.element_ty), mask=in_q[:, None])
    tl.store(LSE + head.to(tl.int64) * total_q + q_start + offs_m, lse, mask=in_q)


# ---------------------------------------------------------------------------------------------------------------
# backward


@triton.jit
def _attn_bwd_preprocess(
    O, DO, DELTA, stride_ot, stride_oh, stride_dot, stride_doh, total_q,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """delta[h, t] = sum_d dO[t, h, d] * O[t, h, d] in fp32 (FA2's D_i). Grid (cdiv(total_q, BLOCK_M), H)."""
    offs_t = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    head = tl.program_id(1)
    offs_d = tl.arange(0, HEAD_DIM)
    in_t = offs_t < total_q
    rows = offs_t.to(tl.int64)[:, None]
    o = tl.load(O + rows * stride_ot + head * stride_oh + offs_d[None, :], mask=in_t[:, None], other=0.0)
    do = tl.load(DO + rows * stride_dot + head * stride_doh + offs_d[None, :], mask=in_t[:, None], other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), axis=1)
    tl.store(DELTA + head.to(tl.int64) * total_q + offs_t, delta, mask=in_t)


@triton.jit
def _attn_bwd_dkdv_inner(
    dk, dv, k, v,
    q_base, do_base, lse_base, delta_base, stride_qt, stride_dot,
    offs_n, offs_d, lo, hi, diag_offset, seq_len_q, qk_scale,
    MASK: tl.constexpr, BLOCK_M: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Accumulate dK, dV of one key block over query blocks [lo, hi), working on transposed tiles (keys x queries).

    Rows past the sequence need no tile mask: q and dO load as 0 and lse as +inf, so their P^T column is 0.
    """
    for start_m in range(lo, hi, BLOCK_M):
        rows = start_m + tl.arange(0, BLOCK_M)  # (BLOCK_M,) query index within the sequence
        in_q = rows < seq_len_q
        qt = tl.load(q_base + rows[None, :] * stride_qt + offs_d[:, None], mask=in_q[None, :], other=0.0)
        do = tl.load(do_base + rows[:, None] * stride_dot + offs_d[None, :], mask=in_q[:, None], other=0.0)
        lse = tl.load(lse_base + rows, mask=in_q, other=float("inf"))
        delta = tl.load(delta_base + rows, mask=in_q, other=0.0)
        qkt = tl.dot(k, qt, input_precision=DOT_PRECISION) * qk_scale  # (BLOCK_N, BLOCK_M), log2 units
        pt = tl.math.exp2(qkt - lse[None, :])  # P^T recomputed from the saved logsumexp
        if MASK:
            pt = tl.where(offs_n[:, None] <= rows[None, :] + diag_offset, pt, 0.0)
        dv = tl.dot(pt.to(do.dtype), do, dv, input_precision=DOT_PRECISION)  # dV += P^T dO
        dpt = tl.dot(v, tl.trans(do), input_precision=DOT_PRECISION)  # (dO V^T)^T
        dst = pt * (dpt - delta[None, :])  # dS^T = P^T * (dP^T - delta)
        dk = tl.dot(dst.to(qt.dtype), tl.trans(qt), dk, input_precision=DOT_PRECISION)  # dK += dS^T Q (unscaled)
    return dk, dv


@triton.jit
def _attn_bwd_dkdv_kernel(
    Q, K, V, DO, DK, DV, LSE, DELTA,
    cu_seqlens_q, cu_seqlens_k,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    stride_dkt, stride_dkh, stride_dvt, stride_dvh,
    total_q, sm_scale, qk_scale,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program: BLOCK_N keys of one KV head of one sequence, summed over the GROUP query heads reading it.

    Grid (cdiv(max_seqlen_k, BLOCK_N), n_kv_heads, n_seq).
    """
    start_n = tl.program_id(0) * BLOCK_N
    kv_head = tl.program_id(1)
    seq = tl.program_id(2)
    k_start = tl.load(cu_seqlens_k + seq)
    seq_len_k = tl.load(cu_seqlens_k + seq + 1) - k_start
    if start_n >= seq_len_k:
        return
    q_start = tl.load(cu_seqlens_q + seq)
    seq_len_q = tl.load(cu_seqlens_q + seq + 1) - q_start
    diag_offset = seq_len_k - seq_len_q

    offs_n = start_n + tl.arange(0, BLOCK_N)  # (BLOCK_N,) key index within the sequence
    offs_d = tl.arange(0, HEAD_DIM)
    in_k = offs_n < seq_len_k
    k_rows = k_start.to(tl.int64) + offs_n
    k = tl.load(K + k_rows[:, None] * stride_kt + kv_head * stride_kh + offs_d[None, :], mask=in_k[:, None], other=0.0)
    v = tl.load(V + k_rows[:, None] * stride_vt + kv_head * stride_vh + offs_d[None, :], mask=in_k[:, None], other=0.0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

    # queries before `lo` see none of these keys (i + diag_offset < start_n); from `full_lo` on, every query
    # sees every key of the block (i + diag_offset >= start_n + BLOCK_N - 1); in between the mask applies.
    lo = tl.maximum(start_n - diag_offset, 0)
    lo = (lo // BLOCK_M) * BLOCK_M
    full_lo = tl.maximum(start_n + BLOCK_N - 1 - diag_offset, 0)
    full_lo = tl.maximum(((full_lo + BLOCK_M - 1) // BLOCK_M) * BLOCK_M, lo)
    diag_hi = tl.minimum(full_lo, seq_len_q)
    for g in range(GROUP):
        head = kv_head * GROUP + g
        q_base = Q + q_start.to(tl.int64) * stride_qt + head * stride_qh
        do_base = DO + q_start.to(tl.int64) * stride_dot + head * stride_doh
        lse_base = LSE + head.to(tl.int64) * total_q + q_start
        delta_base = DELTA + head.to(tl.int64) * total_q + q_start
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt, stride_dot,
            offs_n, offs_d, lo, diag_hi, diag_offset, seq_len_q, qk_scale,
            MASK=True, BLOCK_M=BLOCK_M, DOT_PRECISION=DOT_PRECISION,
        )  # fmt: skip
        dk, dv = _attn_bwd_dkdv_inner(
            dk, dv, k, v, q_base, do_base, lse_base, delta_base, stride_qt, stride_dot,
            offs_n, offs_d, full_lo, seq_len_q, diag_offset, seq_len_q, qk_scale,
            MASK=False, BLOCK_M=BLOCK_M, DOT_PRECISION=DOT_PRECISION,
        )  # fmt: skip

    dk = dk * sm_scale  # S = scale * Q K^T, so dK = scale * dS^T Q
    tl.store(DK + k_rows[:, None] * stride_dkt + kv_head * stride_dkh + offs_d[None, :], dk.to(DK.dtype.element_ty),
             mask=in_k[:, None])  # fmt: skip
    tl.store(DV + k_rows[:, None] * stride_dvt + kv_head * stride_dvh + offs_d[None, :], dv.to(DV.dtype.element_ty),
             mask=in_k[:, None])  # fmt: skip


@triton.jit
def _attn_bwd_dq_inner(
    dq, q, do, lse, delta,
    k_base, v_base, stride_kt, stride_vt,
    offs_m, offs_n, offs_d, lo, hi, diag_offset, seq_len_k, qk_scale,
    MASK: tl.constexpr, BLOCK_N: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Accumulate dQ of one query block over key blocks [lo, hi) (same ranges as the forward)."""
    for start_n in range(lo, hi, BLOCK_N):
        cols = start_n + offs_n
        kt_ptrs = k_base + cols[None, :] * stride_kt + offs_d[:, None]  # (HEAD_DIM, BLOCK_N)
        vt_ptrs = v_base + cols[None, :] * stride_vt + offs_d[:, None]  # (HEAD_DIM, BLOCK_N)
        if MASK:
            in_k = cols < seq_len_k
            kt = tl.load(kt_ptrs, mask=in_k[None, :], other=0.0)
            vt = tl.load(vt_ptrs, mask=in_k[None, :], other=0.0)
        else:
            kt = tl.load(kt_ptrs)
            vt = tl.load(vt_ptrs)
        qk = tl.dot(q, kt, input_precision=DOT_PRECISION) * qk_scale  # (BLOCK_M, BLOCK_N)
        p = tl.math.exp2(qk - lse[:, None])
        if MASK:
            # keys past the sequence load as 0 (score 0, not -inf), so they must be masked here as well
            p = tl.where((cols[None, :] <= offs_m[:, None] + diag_offset) & in_k[None, :], p, 0.0)
        dp = tl.dot(do, vt, input_precision=DOT_PRECISION)  # (BLOCK_M, BLOCK_N)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(kt.dtype), tl.trans(kt), dq, input_precision=DOT_PRECISION)  # dQ += dS K (unscaled)
    return dq


@triton.jit
def _attn_bwd_dq_kernel(
    Q, K, V, DO, DQ, LSE, DELTA,
    cu_seqlens_q, cu_seqlens_k,
    stride_qt, stride_qh, stride_kt, stride_kh, stride_vt, stride_vh, stride_dot, stride_doh,
    stride_dqt, stride_dqh,
    total_q, sm_scale, qk_scale,
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """One program: dQ of BLOCK_M queries of one head of one sequence. Grid as the forward's."""
    start_m = (tl.num_programs(0) - 1 - tl.program_id(0)) * BLOCK_M
    head = tl.program_id(1)
    seq = tl.program_id(2)
    q_start = tl.load(cu_seqlens_q + seq)
    seq_len_q = tl.load(cu_seqlens_q + seq + 1) - q_start
    if start_m >= seq_len_q:
        return
    k_start = tl.load(cu_seqlens_k + seq)
    seq_len_k = tl.load(cu_seqlens_k + seq + 1) - k_start
    diag_offset = seq_len_k - seq_len_q
    kv_head = head // GROUP

    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    in_q = offs_m < seq_len_q
    rows = q_start.to(tl.int64) + offs_m
    q = tl.load(Q + rows[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=in_q[:, None], other=0.0)
    do = tl.load(DO + rows[:, None] * stride_dot + head * stride_doh + offs_d[None, :], mask=in_q[:, None], other=0.0)
    lse = tl.load(LSE + head.to(tl.int64) * total_q + rows, mask=in_q, other=float("inf"))
    delta = tl.load(DELTA + head.to(tl.int64) * total_q + rows, mask=in_q, other=0.0)
    k_base = K + k_start.to(tl.int64) * stride_kt + kv_head * stride_kh
    v_base = V + k_start.to(tl.int64) * stride_vt + kv_head * stride_vh
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

    end = tl.minimum(tl.maximum(start_m + BLOCK_M + diag_offset, 0), seq_len_k)
    full_end = tl.minimum(tl.maximum(start_m + diag_offset + 1, 0), seq_len_k)
    full_end = (full_end // BLOCK_N) * BLOCK_N
    dq = _attn_bwd_dq_inner(
        dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_vt, offs_m, offs_n, offs_d,
        0, full_end, diag_offset, seq_len_k, qk_scale,
        MASK=False, BLOCK_N=BLOCK_N, DOT_PRECISION=DOT_PRECISION,
    )  # fmt: skip
    dq = _attn_bwd_dq_inner(
        dq, q, do, lse, delta, k_base, v_base, stride_kt, stride_vt, offs_m, offs_n, offs_d,
        full_end, end, diag_offset, seq_len_k, qk_scale,
        MASK=True, BLOCK_N=BLOCK_N, DOT_PRECISION=DOT_PRECISION,
    )  # fmt: skip
    dq = dq * sm_scale
    tl.store(DQ + rows[:, None] * stride_dqt + head * stride_dqh + offs_d[None, :], dq.to(DQ.dtype.element_ty),
             mask=in_q[:, None])  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# host launchers

# Interpreter blocks: the smallest tl.dot accepts (16), BLOCK_M != BLOCK_N so the block arithmetic is exercised.
_INTERPRET_FWD = {"BLOCK_M": 32, "BLOCK_N": 16}
_INTERPRET_DKDV = {"BLOCK_M": 16, "BLOCK_N": 32}
_INTERPRET_DQ = {"BLOCK_M": 32, "BLOCK_N": 16}


def _configs(blocks: list[tuple[int, int, int, int]]) -> list[triton.Config]:
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s) for m, n, w, s in blocks]


# Shared memory of every 16-bit build of the tuned kernels, per target, as ptxas reports it (written by
# `python -m qwen25.attention.gpu_targets --target sm_XX --write_table`; tests/qwen25/test_kernel_targets.py compiles
# again and checks it). Not a formula: the same tiles need up to 2.5x more on sm_80 than on sm_90 (the DCA forward).
SHARED_MEMORY_TABLE = Path(__file__).with_name("shared_memory.json")


@functools.cache
def _shared_memory_table() -> dict:
    return json.loads(SHARED_MEMORY_TABLE.read_text()) if SHARED_MEMORY_TABLE.exists() else {}


def _table_target(capability: int | tuple[int, int]) -> str | None:
    """The table a GPU's builds follow: sm_90 for Hopper, sm_80 for Ampere and Ada (8.x); None for others."""
    major = capability[0] if isinstance(capability, tuple) else capability // 10
    return {9: "sm_90", 8: "sm_80"}.get(major)


def shared_memory_key(kernel: str, head_dim: int, block_m: int, block_n: int | None, num_warps: int,
                      num_stages: int) -> str:
    """The table's key of one kernel build (the same for bf16 and fp16: both are 2 bytes)."""
    return f"{kernel}/d{head_dim}/M{block_m}N{block_n}w{num_warps}s{num_stages}"


def select_fitting(kernel: str, head_dim: int, configs: list, capability, limit: int, table: dict | None = None):
    """The configs of `kernel` whose recorded shared memory fits `limit` bytes on a GPU of `capability`.

    A config the table does not know (another target, fp32 inputs) is kept: the autotuner then skips it if it does
    not fit. Never empty: if none fits, the smallest is kept and its launch will say why.
    """
    entries = (table if table is not None else _shared_memory_table()).get(_table_target(capability), {})
    sized = [(c, entries.get(shared_memory_key(kernel, head_dim, c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"],
                                               c.num_warps, c.num_stages))) for c in configs]  # fmt: skip
    kept = [c for c, size in sized if size is None or size <= limit]
    return kept or [min(sized, key=lambda cs: cs[1])[0]]


def prune_to_shared_memory(kernel: str):
    """The autotuner's `early_config_prune` for `kernel`: drop configs that cannot fit this GPU's shared memory
    before any of them is compiled or launched (an A100 cannot hold the DCA forward's 128 x 64 blocks at
    head_dim 128: 237,568 B of 166,912)."""

    def prune(configs, named_args, **kwargs):
        q = named_args.get("Q", named_args.get("QI"))
        head_dim = kwargs.get("HEAD_DIM", named_args.get("HEAD_DIM"))
        if q is None or not q.is_cuda or q.element_size() != 2 or head_dim is None:
            return configs  # the table records 16-bit builds
        index = q.device.index if q.device.index is not None else torch.cuda.current_device()
        limit = triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"]
        return select_fitting(kernel, head_dim, configs, torch.cuda.get_device_capability(index), limit)

    return prune


@functools.cache
def _tuned(kernel: str):
    """Autotuned CUDA variants, built on first use; configs that cannot fit the GPU's shared memory are pruned first.

    Keyed on head_dim and group size only, so a new packed length never re-tunes; outputs are plain stores, so
    the tuner's repeated launches are harmless.
    """
    blocks = {
        "fwd": [(128, 64, 8, 3), (128, 64, 4, 3), (128, 128, 8, 3), (64, 64, 4, 3), (64, 32, 4, 4)],
        "dkdv": [(32, 128, 4, 3), (64, 128, 8, 2), (64, 128, 8, 3), (32, 64, 4, 3), (16, 64, 4, 2)],
        "dq": [(128, 32, 4, 3), (128, 64, 8, 3), (64, 64, 4, 3), (64, 32, 4, 2), (32, 32, 4, 2)],
    }
    kernels = {"fwd": _attn_fwd_kernel, "dkdv": _attn_bwd_dkdv_kernel, "dq": _attn_bwd_dq_kernel}
    if kernel not in kernels:
        raise ValueError(kernel)
    prune = {"early_config_prune": prune_to_shared_memory(kernel)}
    tuner = triton.autotune(_configs(blocks[kernel]), key=["HEAD_DIM", "GROUP"], prune_configs_by=prune)
    return tuner(kernels[kernel])


def _launch(kernel: str, jit_fn, grid_fn, *args, **kwargs) -> None:
    """Launch a kernel: fixed small blocks under the interpreter, the autotuned variant on CUDA."""
    if _interpreting():
        blocks = {"fwd": _INTERPRET_FWD, "dkdv": _INTERPRET_DKDV, "dq": _INTERPRET_DQ}[kernel]
        jit_fn[grid_fn(blocks)](*args, **kwargs, **blocks)
    else:
        _tuned(kernel)[grid_fn](*args, **kwargs)


def _dot_precision(dtype: torch.dtype) -> str:
    # fp32 inputs would silently run in tf32 on tensor cores; keep them exact (16-bit inputs ignore this)
    return "ieee" if dtype == torch.float32 else "tf32"


def _check_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k) -> None:
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError(f"expected q (total_q, H, D), k/v (total_k, Hkv, D); got {tuple(q.shape)}, {tuple(k.shape)}")
    if k.shape != v.shape or k.shape[2] != q.shape[2]:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must match and share q's head_dim {q.shape[2]}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"n_heads={q.shape[1]} is not a multiple of n_kv_heads={k.shape[1]}")
    if q.shape[2] not in SUPPORTED_HEAD_DIMS:
        raise ValueError(f"head_dim {q.shape[2]} is not supported (expected one of {SUPPORTED_HEAD_DIMS})")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        raise ValueError(f"q/k/v must share one of fp16, bf16, fp32; got {q.dtype}, {k.dtype}, {v.dtype}")
    if cu_seqlens_q.shape != cu_seqlens_k.shape or cu_seqlens_q.dim() != 1:
        raise ValueError(
            f"cu_seqlens_q {tuple(cu_seqlens_q.shape)} and cu_seqlens_k {tuple(cu_seqlens_k.shape)} "
            "must both be (n_seq + 1,)"
        )
    if cu_seqlens_q.numel() - 1 > 65535:  # sequences index the grid's third axis
        raise ValueError(f"{cu_seqlens_q.numel() - 1} sequences in one call; at most 65535")
    if not q.is_cuda and not _interpreting():
        raise RuntimeError("the Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 set before importing triton")


def _flash_fwd(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q (total_q, H, D), k/v (total_k, Hkv, D) -> out (total_q, H, D), lse (H, total_q) fp32, base 2."""
    total_q, n_heads, head_dim = q.shape
    n_seq = cu_seqlens_q.numel() - 1
    out = torch.empty_like(q)
    lse = torch.empty((n_heads, total_q), device=q.device, dtype=torch.float32)
    if total_q == 0 or n_seq == 0 or max_seqlen_q == 0:
        return out.zero_(), lse.fill_(float("inf"))

    def grid(meta):
        return (triton.cdiv(max_seqlen_q, meta["BLOCK_M"]), n_heads, n_seq)

    _launch(
        "fwd", _attn_fwd_kernel, grid,
        q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1),
        total_q, scale * LOG2E,
        GROUP=n_heads // k.shape[1], HEAD_DIM=head_dim, DOT_PRECISION=_dot_precision(q.dtype),
    )  # fmt: skip
    return out, lse


def _flash_bwd(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dO (total_q, H, D) -> dq (total_q, H, D), dk/dv (total_k, Hkv, D), in the inputs' dtype."""
    total_q, n_heads, head_dim = q.shape
    n_kv_heads = k.shape[1]
    n_seq = cu_seqlens_q.numel() - 1
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    if total_q == 0 or n_seq == 0 or max_seqlen_q == 0 or max_seqlen_k == 0:
        return dq.zero_(), dk.zero_(), dv.zero_()
    group = n_heads // n_kv_heads
    precision = _dot_precision(q.dtype)

    delta = torch.empty((n_heads, total_q), device=q.device, dtype=torch.float32)  # (H, total_q)
    pre_block = 16 if _interpreting() else 64
    _attn_bwd_preprocess[(triton.cdiv(total_q, pre_block), n_heads)](
        out, do, delta, out.stride(0), out.stride(1), do.stride(0), do.stride(1), total_q,
        HEAD_DIM=head_dim, BLOCK_M=pre_block,
    )  # fmt: skip

    def grid_kv(meta):
        return (triton.cdiv(max_seqlen_k, meta["BLOCK_N"]), n_kv_heads, n_seq)

    _launch(
        "dkdv", _attn_bwd_dkdv_kernel, grid_kv,
        q, k, v, do, dk, dv, lse, delta, cu_seqlens_q, cu_seqlens_k,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), do.stride(0), do.stride(1),
        dk.stride(0), dk.stride(1), dv.stride(0), dv.stride(1),
        total_q, scale, scale * LOG2E,
        GROUP=group, HEAD_DIM=head_dim, DOT_PRECISION=precision,
    )  # fmt: skip

    def grid_q(meta):
        return (triton.cdiv(max_seqlen_q, meta["BLOCK_M"]), n_heads, n_seq)

    _launch(
        "dq", _attn_bwd_dq_kernel, grid_q,
        q, k, v, do, dq, lse, delta, cu_seqlens_q, cu_seqlens_k,
        q.stride(0), q.stride(1), k.stride(0), k.stride(1), v.stride(0), v.stride(1), do.stride(0), do.stride(1),
        dq.stride(0), dq.stride(1),
        total_q, scale, scale * LOG2E,
        GROUP=group, HEAD_DIM=head_dim, DOT_PRECISION=precision,
    )  # fmt: skip
    return dq, dk, dv


# ---------------------------------------------------------------------------------------------------------------
# autograd and the public function


def _last_dim_contiguous(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


class FlashAttnVarlenFunc(torch.autograd.Function):
    """Autograd wrapper: saves q, k, v, out and the base-2 logsumexp; the backward recomputes P (FA2)."""

    @staticmethod
    def forward(ctx, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, scale):
        q, k, v = (_last_dim_contiguous(x) for x in (q, k, v))
        out, lse = _flash_fwd(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, scale)
        ctx.save_for_backward(q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k)
        ctx.max_seqlen_q, ctx.max_seqlen_k, ctx.scale = max_seqlen_q, max_seqlen_k, scale
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k = ctx.saved_tensors
        dq, dk, dv = _flash_bwd(
            _last_dim_contiguous(dout), q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k,
            ctx.max_seqlen_q, ctx.max_seqlen_k, ctx.scale,
        )  # fmt: skip
        return dq, dk, dv, None, None, None, None, None


def flash_attn_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    scale: float | None = None,
) -> torch.Tensor:
    """Causal GQA attention over packed sequences, flash-attn's varlen layout.

    q (total_q, n_heads, head_dim); k/v (total_k, n_kv_heads, head_dim); cu_seqlens_q/k (n_seq + 1,) cumulative
    lengths from 0 (any integer dtype, moved to int32 on q's device); max_seqlen_q/k the longest sequence (they
    size the grid: too small silently skips tokens). Causality is aligned bottom-right per sequence.
    Returns (total_q, n_heads, head_dim) in q's dtype; differentiable in q, k and v. As in flash-attn, tokens
    outside [0, cu_seqlens[-1]) belong to no sequence and their outputs and gradients are left unwritten.
    """
    cu_seqlens_q = cu_seqlens_q.to(device=q.device, dtype=torch.int32).contiguous()
    cu_seqlens_k = cu_seqlens_k.to(device=q.device, dtype=torch.int32).contiguous()
    _check_inputs(q, k, v, cu_seqlens_q, cu_seqlens_k)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    return FlashAttnVarlenFunc.apply(q, k, v, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q), int(max_seqlen_k), scale)


__all__ = ["SUPPORTED_HEAD_DIMS", "FlashAttnVarlenFunc", "flash_attn_varlen"]
