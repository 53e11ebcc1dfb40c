"""Registers this project's attention with transformers under one name, `ATTN_IMPLEMENTATION`.

`Qwen2ForCausalLM.from_pretrained(path, attn_implementation=ATTN_IMPLEMENTATION)` then runs every layer's
attention through `qwen25_attention`, the one dispatch point: the Triton kernel (`triton_flash.py`) for
fp16/bf16 CUDA tensors whose batch can be laid out as variable-length sequences; on CPU, packed rows as one SDPA
call per sample and padded or decoding batches as one SDPA call on the reference's mask (`_masked_sdpa`); the
PyTorch reference (`reference.py`) everywhere else (dropout, fp32 on CUDA, DCA's pieces). `BACKEND` overrides the
choice ("auto" | "reference" | "triton"); "triton"
forces the kernel even on CPU tensors (tests run it under `TRITON_INTERPRET=1`) and raises where it cannot apply.

Both interfaces are registered (NOTES.md): without an entry in `AttentionMaskInterface`, transformers
passes `attention_mask=None` and left-padded batches would silently attend to padding. `qwen25_mask` gives
the attention function what its path needs:
- reference path: the sdpa mask builder's boolean (batch, 1, q, k) mask (True = attend) or None for a plain
  causal one;
- kernel path (CUDA, or BACKEND="triton"): flash-attention's mask, None or the 2D (batch, k) padding mask, from
  which the batch is unpadded. This matters: for a packed 32K-token row the sdpa builder would materialise a
  (1, 1, 32K, 32K) boolean mask (1 GiB) that the kernel never reads; segments come from `cu_seq_lens_*` or
  `position_ids` resets instead. Should the attention function still fall back to the reference (dropout, an
  unsupported head_dim), the 2D mask is widened to (batch, 1, 1, k) and the reference adds causality itself.

How each input becomes varlen for the kernel (`_varlen_plan`):
- packed rows (`cu_seq_lens_q/k`, batch 1): used as they are; tokens past `cu_seq_lens[-1]` (padding to a
  multiple) form one more sequence, as the reference treats them;
- no mask: each batch row is a sequence, split further at `position_ids` resets when q_len == k_len > 1;
- a 2D padding mask: real tokens are gathered (each row's real tokens must be one contiguous run: left or right
  padding) and outputs scattered back; padded query rows output 0 (the reference lets right-padded query rows
  attend to the real keys before them; nothing downstream reads either).
Reading lengths costs a host-device sync; the plan is cached for the tensors it came from (weak references plus
their version counters), so the layers of one forward pay it once.

Dual Chunk Attention (`dca.py`): on a model where `enable_dca` marked the attention modules, inputs with more
keys than one chunk go to `_dual_chunk_attention`, on the same varlen plans (Triton forward `dca_triton.py` where
the kernel runs and no gradient is needed; the PyTorch reference otherwise).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask, sdpa_mask

from qwen25.attention.dca import (
    CONFIG_KEY,
    UNSUPPORTED_ROPE,
    DualChunkConfig,
    DualChunkRotaryEmbedding,
    DualChunkState,
    dca_queries,
    dual_chunk_attention_reference,
    key_positions,
    segments,
)
from qwen25.attention.reference import attention_reference, build_attention_mask, segment_ids_from_position_ids

ATTN_IMPLEMENTATION = "qwen25"
BACKENDS = ("auto", "reference", "triton")
BACKEND = "auto"  # tests set this: "reference" never uses the kernel, "triton" forces it (CPU: interpreter)
TRITON_DTYPES = (torch.float16, torch.bfloat16)  # "auto" runs the kernel in these; fp32 stays on the reference


def _backend() -> str:
    if BACKEND not in BACKENDS:
        raise ValueError(f"qwen25.attention.registration.BACKEND={BACKEND!r}; expected one of {BACKENDS}")
    return BACKEND


def _kernel_path_possible(device: torch.device | str) -> bool:
    """Whether the kernel may run for tensors on `device` (decides which mask transformers builds for us)."""
    backend = _backend()
    return backend == "triton" or (backend == "auto" and torch.device(device).type == "cuda")


def qwen25_mask(*args, **kwargs):
    """Mask interface: flash-attention's (None or 2D padding mask) where the kernel may run, else sdpa's."""
    if _kernel_path_possible(kwargs.get("device", "cpu")):
        return flash_attention_mask(*args, **kwargs)
    return sdpa_mask(*args, **kwargs)


def _use_kernel(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, dropout_active: bool) -> bool:
    backend = _backend()
    if backend == "reference":
        return False
    fits = query.is_cuda and query.dtype in TRITON_DTYPES and key.dtype == value.dtype == query.dtype
    if backend == "auto" and not (fits and not dropout_active):
        return False
    from qwen25.attention.triton_flash import SUPPORTED_HEAD_DIMS  # imports triton only where it may run

    if query.shape[-1] in SUPPORTED_HEAD_DIMS and not dropout_active:
        return True
    if backend == "triton":
        reason = "attention dropout" if dropout_active else f"head_dim {query.shape[-1]}"
        raise NotImplementedError(f"BACKEND='triton': the kernel does not support {reason}")
    return False


@dataclass
class _VarlenPlan:
    """How a (batch, heads, len, head_dim) input maps onto the kernel's varlen layout."""

    cu_seqlens_q: torch.Tensor  # (n_seq + 1,) int32 on the tensors' device
    cu_seqlens_k: torch.Tensor  # (n_seq + 1,) int32
    max_seqlen_q: int
    max_seqlen_k: int
    q_index: torch.Tensor | None  # (total_q,) rows of the flattened (batch * q_len) queries to keep; None = all
    k_index: torch.Tensor | None  # (total_k,) likewise for keys/values


def _cumsum0(lengths: torch.Tensor) -> torch.Tensor:
    """(n,) lengths -> (n + 1,) int32 cumulative lengths starting at 0."""
    return torch.nn.functional.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)


def _plan_packed(cu_q: torch.Tensor, cu_k: torch.Tensor, q_len: int, k_len: int, device) -> _VarlenPlan:
    cu_q = cu_q.to(device=device, dtype=torch.int32)
    cu_k = cu_k.to(device=device, dtype=torch.int32)
    zero = cu_q.new_zeros(1)  # keeps max() defined when there is no sequence at all
    max_q, max_k = torch.cat([torch.diff(cu_q), zero]).max(), torch.cat([torch.diff(cu_k), zero]).max()
    end_q, end_k, max_q, max_k = torch.stack([cu_q[-1], cu_k[-1], max_q, max_k]).tolist()  # one sync
    if end_q > q_len or end_k > k_len:
        raise ValueError(f"cu_seq_lens end at {end_q}/{end_k} tokens but q/k have {q_len}/{k_len}")
    if end_q < q_len or end_k < k_len:
        # the tokens past the last boundary form one more sequence (the reference gives them their own segment)
        cu_q = torch.cat([cu_q, cu_q.new_tensor([q_len])])
        cu_k = torch.cat([cu_k, cu_k.new_tensor([k_len])])
        max_q, max_k = max(max_q, q_len - end_q), max(max_k, k_len - end_k)
    return _VarlenPlan(cu_q, cu_k, max_q, max_k, None, None)


def _plan_position_ids(position_ids: torch.Tensor, batch: int, seq_len: int) -> _VarlenPlan:
    segments = segment_ids_from_position_ids(position_ids.expand(batch, -1))  # (batch, seq_len), from 0 per row
    row = torch.arange(batch, device=segments.device)[:, None] * seq_len  # (batch, 1): rows never share an id
    ids = (segments + row).flatten()  # (batch * seq_len,)
    starts = torch.ones_like(ids, dtype=torch.bool)
    starts[1:] = ids[1:] != ids[:-1]
    cu = torch.cat([starts.nonzero().flatten(), ids.new_tensor([batch * seq_len])]).to(torch.int32)  # (n_seq + 1,)
    max_len = int(torch.diff(cu).max())
    return _VarlenPlan(cu, cu, max_len, max_len, None, None)


def _plan_padding(mask_2d: torch.Tensor, q_len: int, k_len: int) -> _VarlenPlan | str:
    if mask_2d.shape[1] < k_len:
        return f"a 2D mask of {mask_2d.shape[1]} positions for {k_len} keys"
    if q_len > k_len:
        return "more queries than keys with a padding mask"
    valid_k = mask_2d[:, -k_len:].bool()  # (batch, k_len) True = real token
    valid_q = valid_k[:, k_len - q_len :]  # (batch, q_len): queries are the last q_len positions
    n_k = valid_k.sum(1)  # (batch,)
    first = valid_k.int().argmax(1)  # (batch,) first real position (0 for a row with none, whose run is empty)
    pos = torch.arange(k_len, device=valid_k.device)[None]  # (1, k_len)
    one_run = ((pos >= first[:, None]) & (pos < (first + n_k)[:, None])) == valid_k  # (batch, k_len)
    n_q = valid_q.sum(1)
    contiguous, max_q, max_k = torch.stack([one_run.all().long(), n_q.max(), n_k.max()]).tolist()  # one sync
    if not contiguous:
        return "a padding mask whose real tokens are not one contiguous run per row"
    return _VarlenPlan(
        _cumsum0(n_q),
        _cumsum0(n_k),
        max_q,
        max_k,
        valid_q.flatten().nonzero().flatten(),
        valid_k.flatten().nonzero().flatten(),
    )


# One cached plan: the key tensors (weakly referenced), their version counters and the shapes it was made for.
_plan_cache: tuple[tuple, tuple, tuple, _VarlenPlan] | None = None


def _varlen_plan(
    batch: int,
    q_len: int,
    k_len: int,
    device: torch.device,
    attention_mask: torch.Tensor | None,
    cu_seq_lens_q: torch.Tensor | None,
    cu_seq_lens_k: torch.Tensor | None,
    position_ids: torch.Tensor | None,
) -> _VarlenPlan | str:
    """The kernel layout for this input, or a string saying why there is none."""
    global _plan_cache
    sources = (attention_mask, cu_seq_lens_q, cu_seq_lens_k, position_ids)
    # inference tensors (torch.inference_mode) have no version counter: such inputs are planned every call
    cacheable = not any(t is not None and t.is_inference() for t in sources)
    versions = tuple(-1 if t is None else t._version for t in sources) if cacheable else None
    shape = (batch, q_len, k_len, str(device))
    if cacheable and _plan_cache is not None:
        refs, cached_versions, cached_shape, plan = _plan_cache
        same = all((r is None and t is None) or (r is not None and r() is t) for r, t in zip(refs, sources))
        if same and cached_versions == versions and cached_shape == shape:
            return plan

    if cu_seq_lens_q is not None:
        if batch != 1:
            raise ValueError(f"packed attention with cu_seq_lens expects batch size 1, got {batch}")
        if attention_mask is not None:
            return "packed rows (cu_seq_lens) together with an attention mask"
        cu_k = cu_seq_lens_k if cu_seq_lens_k is not None else cu_seq_lens_q
        plan = _plan_packed(cu_seq_lens_q, cu_k, q_len, k_len, device)
    elif attention_mask is None:
        if position_ids is not None and q_len == k_len and q_len > 1:
            plan = _plan_position_ids(position_ids.to(device), batch, q_len)
        else:
            arange = torch.arange(batch + 1, device=device, dtype=torch.int32)
            plan = _VarlenPlan(arange * q_len, arange * k_len, q_len, k_len, None, None)
    elif attention_mask.dim() == 2:
        plan = _plan_padding(attention_mask.to(device), q_len, k_len)
    else:
        return f"a {attention_mask.dim()}D attention mask (the kernel takes None, cu_seq_lens or a 2D padding mask)"
    if cacheable and isinstance(plan, _VarlenPlan):
        refs = tuple(None if t is None else weakref.ref(t) for t in sources)
        _plan_cache = (refs, versions, shape, plan)
    return plan


def _kernel_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, plan: _VarlenPlan, scaling: float | None
) -> torch.Tensor:
    """q (B, H, Lq, D), k/v (B, Hkv, Lk, D) -> (B, Lq, H, D) through `flash_attn_varlen`."""
    from qwen25.attention.triton_flash import flash_attn_varlen

    batch, n_heads, q_len, head_dim = query.shape
    n_kv_heads, k_len = key.shape[1], key.shape[2]
    # views, not copies, when the storage is transformers' (B, L, H, D) projection output
    q = query.transpose(1, 2).reshape(batch * q_len, n_heads, head_dim)  # (B * Lq, H, D)
    k = key.transpose(1, 2).reshape(batch * k_len, n_kv_heads, head_dim)  # (B * Lk, Hkv, D)
    v = value.transpose(1, 2).reshape(batch * k_len, n_kv_heads, head_dim)  # (B * Lk, Hkv, D)
    if plan.q_index is not None:
        q = q.index_select(0, plan.q_index)  # (total_q, H, D): real queries only
        k = k.index_select(0, plan.k_index)  # (total_k, Hkv, D)
        v = v.index_select(0, plan.k_index)
    out = flash_attn_varlen(
        q, k, v, plan.cu_seqlens_q, plan.cu_seqlens_k, plan.max_seqlen_q, plan.max_seqlen_k, scale=scaling
    )  # (total_q, H, D)
    if plan.q_index is not None:
        out = out.new_zeros(batch * q_len, n_heads, head_dim).index_copy(0, plan.q_index, out)  # (B * Lq, H, D)
    return out.view(batch, q_len, n_heads, head_dim)


def _segmented_sdpa(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, plan: _VarlenPlan, scaling: float | None
) -> torch.Tensor:
    """Packed rows off the kernel path: one causal `scaled_dot_product_attention` per segment.

    The reference builds one (L, L) mask over a packed row and computes every cross-segment score only to mask it;
    a row of eight ~160-token samples then costs ~8x the work of attending within each sample (measured:
    benchmarks/sft_throughput.py, 0.49-0.66x plain TRL before this path, 1.47x with it on CPU). The plan comes from
    `cu_seq_lens` (batch 1, tokens past the last boundary as one more segment), so the flattened (batch * len) layout
    is sliced directly. q (B, H, L, D), k/v (B, Hkv, L, D) -> (B, L, H, D).
    """
    batch, n_heads, q_len, head_dim = query.shape
    n_kv_heads = key.shape[1]
    q = query.transpose(0, 1).reshape(n_heads, batch * q_len, head_dim)  # (H, B * L, D)
    k = key.transpose(0, 1).reshape(n_kv_heads, batch * q_len, head_dim)  # (Hkv, B * L, D)
    v = value.transpose(0, 1).reshape(n_kv_heads, batch * q_len, head_dim)
    bounds = plan.cu_seqlens_q.tolist()
    parts = [
        torch.nn.functional.scaled_dot_product_attention(
            q[None, :, s:e], k[None, :, s:e], v[None, :, s:e], is_causal=True, scale=scaling, enable_gqa=True
        )[0]  # (H, e - s, D)
        for s, e in zip(bounds[:-1], bounds[1:])
        if e > s
    ]
    out = torch.cat(parts, dim=1)  # (H, B * L, D)
    return out.view(n_heads, batch, q_len, head_dim).permute(1, 2, 0, 3)  # (B, L, H, D)


def qwen25_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers attention function: q (B, H, Lq, D), k/v (B, Hkv, Lk, D) -> ((B, Lq, H, D), None).

    Handles padded batches (a 2D padding mask or the boolean 4D one), packed rows (`cu_seq_lens_q/k` from TRL's
    padding-free collator, or `position_ids` resets) and KV-cache decoding (Lq < Lk, causal aligned bottom-right).
    """
    if kwargs.get("sliding_window") is not None:
        raise NotImplementedError(
            "qwen25 attention has no sliding window (Qwen2.5 configs set use_sliding_window: false)"
        )
    if kwargs.get("is_causal") is False:
        raise NotImplementedError("qwen25 attention is causal only")
    batch, _, q_len, _ = query.shape
    k_len = key.shape[2]
    cu_seq_lens_q, cu_seq_lens_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    position_ids = kwargs.get("position_ids")
    dropout_active = dropout > 0.0 and module.training

    dual_chunk = getattr(module, "dual_chunk", None)  # set by enable_dca below
    # up to chunk_len keys (or packed segments of at most chunk_len tokens, `max_length_k` from the collator) every
    # position is < chunk_len (positions never exceed a token's index in its segment, as transformers builds them):
    # DCA's remapping is the identity and plain attention is exact
    longest = kwargs.get("max_length_k") if cu_seq_lens_q is not None else None
    longest = k_len if not isinstance(longest, int) else longest
    if dual_chunk is not None and longest > dual_chunk.config.chunk_len:
        return _dual_chunk_attention(
            dual_chunk, query, key, value, attention_mask, scaling, dropout_active,
            cu_seq_lens_q, cu_seq_lens_k, position_ids,
        ), None  # fmt: skip

    if _use_kernel(query, key, value, dropout_active):
        plan = _varlen_plan(
            batch, q_len, k_len, query.device, attention_mask, cu_seq_lens_q, cu_seq_lens_k, position_ids
        )
        if isinstance(plan, _VarlenPlan):
            return _kernel_attention(query, key, value, plan, scaling), None
        if _backend() == "triton":
            raise NotImplementedError(f"BACKEND='triton': the kernel cannot take {plan}")

    # packed rows off the kernel path: the segments say everything a mask would. Only with `cu_seq_lens` (TRL's
    # padding-free collator: no padding inside the row; the 4D mask the sdpa builder made from the same position_ids
    # is ignored): every plain forward also carries position_ids, and finding resets in them would cost a host sync
    # per call on the generation and reward-scoring path.
    if cu_seq_lens_q is not None and _backend() == "auto" and not dropout_active and q_len == k_len > 1:
        plan = _varlen_plan(batch, q_len, k_len, query.device, None, cu_seq_lens_q, cu_seq_lens_k, position_ids)
        if isinstance(plan, _VarlenPlan) and len(plan.cu_seqlens_q) - 1 > batch:  # more segments than rows
            return _segmented_sdpa(query, key, value, plan, scaling), None

    if attention_mask is not None and attention_mask.dim() == 2:
        attention_mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, k): key padding; causality added below
    mask = build_attention_mask(
        batch,
        q_len,
        k_len,
        query.device,
        attention_mask=attention_mask,
        cu_seq_lens_q=cu_seq_lens_q,
        cu_seq_lens_k=cu_seq_lens_k,
        position_ids=position_ids,
    )
    if query.device.type == "cpu" and _backend() == "auto" and not dropout_active:
        return _masked_sdpa(query, key, value, mask, scaling), None
    out = attention_reference(query, key, value, mask, scaling=scaling, dropout=dropout, training=module.training)
    return out, None


def _masked_sdpa(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scaling: float | None
) -> torch.Tensor:
    """Padded and decoding batches on CPU: PyTorch's fused SDPA on the reference's own boolean mask.

    The reference (a matmul, a masked fp32 softmax, another matmul) is the definition; on CPU it made GRPO's sampling
    0.86-0.91x plain TRL's tokens/s, whose sdpa runs a fused kernel. Same mask, same result (tests compare the two
    in fp32 and bf16). Rows with no visible key (left padding as a query) are zeros in the reference; torch 2.13's
    CPU kernel gives zeros too, older ones NaN, so they are zeroed explicitly. q (B, H, Lq, D), k/v (B, Hkv, Lk, D)
    -> (B, Lq, H, D).
    """
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, scale=scaling, enable_gqa=True
    )  # (B, H, Lq, D)
    empty = ~mask.any(dim=-1, keepdim=True)  # (B, 1, Lq, 1): query rows that see no key
    out = torch.where(empty, torch.zeros((), dtype=out.dtype), out)
    return out.transpose(1, 2).contiguous()


def _dual_chunk_attention(
    state, query, key, value, attention_mask, scaling, dropout_active, cu_seq_lens_q, cu_seq_lens_k, position_ids
) -> torch.Tensor:
    """DCA (`dca.py`): q (B, H, Lq, D) rotated at q_pos % L, k at k_pos % L -> (B, Lq, H, D).

    The Triton forward (`dca_triton.py`) where the plain kernel would run and no gradient is needed; otherwise
    the PyTorch reference (differentiable). BACKEND="triton" raises where the kernel cannot apply.
    """
    if dropout_active:
        raise NotImplementedError("dual chunk attention has no attention dropout (Qwen2.5 uses attention_dropout 0)")
    config = state.config
    batch, n_heads, q_len, head_dim = query.shape
    k_len = key.shape[2]
    cu_k = cu_seq_lens_k if cu_seq_lens_k is not None else cu_seq_lens_q
    k_pos = key_positions(batch, q_len, k_len, query.device, attention_mask, cu_k, position_ids)  # (B, Lk)
    q_pos = k_pos[:, k_len - q_len :]  # (B, Lq): queries are the last keys
    q_succ, q_inter = dca_queries(query, q_pos, config, state.inv_freq)  # (B, H, Lq, D) each

    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if _use_kernel(query, key, value, dropout_active):
        if needs_grad:
            if _backend() == "triton":
                raise NotImplementedError("BACKEND='triton': the DCA kernel is forward-only (no gradients)")
        else:
            plan = _varlen_plan(
                batch, q_len, k_len, query.device, attention_mask, cu_seq_lens_q, cu_seq_lens_k, position_ids
            )
            if isinstance(plan, _VarlenPlan):
                return _dca_kernel_attention(query, q_succ, q_inter, key, value, plan, scaling, config.chunk_len)
            if _backend() == "triton":
                raise NotImplementedError(f"BACKEND='triton': the DCA kernel cannot take {plan}")

    if attention_mask is not None and attention_mask.dim() == 2:
        attention_mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, k): key padding
    seg_q, seg_k = segments(batch, q_len, k_len, query.device, cu_seq_lens_q, cu_seq_lens_k, position_ids)
    return dual_chunk_attention_reference(
        query, q_succ, q_inter, key, value, chunk_len=config.chunk_len, k_pos=k_pos,
        attention_mask=attention_mask, seg_q=seg_q, seg_k=seg_k, scaling=scaling,
    )  # fmt: skip


def _dca_kernel_attention(query, q_succ, q_inter, key, value, plan: _VarlenPlan, scaling, chunk_len: int):
    """The three rotated queries and k/v laid out as `_kernel_attention` does, through `dual_chunk_attn_varlen`."""
    from qwen25.attention.dca_triton import dual_chunk_attn_varlen

    batch, n_heads, q_len, head_dim = query.shape
    n_kv_heads, k_len = key.shape[1], key.shape[2]

    def flat_q(q: torch.Tensor) -> torch.Tensor:
        q = q.transpose(1, 2).reshape(batch * q_len, n_heads, head_dim)  # (B * Lq, H, D)
        return q if plan.q_index is None else q.index_select(0, plan.q_index)  # (total_q, H, D)

    k = key.transpose(1, 2).reshape(batch * k_len, n_kv_heads, head_dim)  # (B * Lk, Hkv, D)
    v = value.transpose(1, 2).reshape(batch * k_len, n_kv_heads, head_dim)
    if plan.k_index is not None:
        k, v = k.index_select(0, plan.k_index), v.index_select(0, plan.k_index)  # (total_k, Hkv, D)
    out = dual_chunk_attn_varlen(  # (total_q, H, D)
        flat_q(query), flat_q(q_succ), flat_q(q_inter), k, v,
        plan.cu_seqlens_q, plan.cu_seqlens_k, plan.max_seqlen_q, chunk_len, scale=scaling,
    )  # fmt: skip
    if plan.q_index is not None:
        out = out.new_zeros(batch * q_len, n_heads, head_dim).index_copy(0, plan.q_index, out)  # (B * Lq, H, D)
    return out.view(batch, q_len, n_heads, head_dim)


def register() -> None:
    """Idempotent: make `attn_implementation="qwen25"` available to every transformers model."""
    AttentionInterface.register(ATTN_IMPLEMENTATION, qwen25_attention)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, qwen25_mask)


def enable_dca(model: nn.Module, dca: dict | DualChunkConfig) -> DualChunkConfig:
    """Turn DCA on in a loaded Qwen2 model (ours or transformers'), in place; returns the validated config.

    Sets `config.dual_chunk_attention_config` (saved with the checkpoint, read back by `load_model` and vLLM),
    wraps the rotary embedding (positions mod chunk_len) and marks every attention module. Idempotent; a second
    call with another config replaces the first. The model must use attn_implementation "qwen25".
    """
    config = DualChunkConfig.from_dict(dca)
    model_config = model.config
    if model_config._attn_implementation != ATTN_IMPLEMENTATION:
        raise ValueError(
            f"DCA runs in the {ATTN_IMPLEMENTATION!r} attention; this model uses "
            f"{model_config._attn_implementation!r} (load it with qwen25.model.load_model)"
        )
    rope_type = (getattr(model_config, "rope_parameters", None) or {}).get("rope_type", "default")
    if rope_type in UNSUPPORTED_ROPE:
        raise ValueError(f"DCA needs a fixed RoPE; rope_type {rope_type!r} changes with the length")
    original = config.original_max_position_embeddings
    if original is None:
        rope = getattr(model_config, "rope_parameters", None) or {}
        original = rope.get("original_max_position_embeddings") or model_config.max_position_embeddings
        if config.chunk_size > original:
            raise ValueError(
                f"{CONFIG_KEY}.chunk_size={config.chunk_size} exceeds the trained length {original} of this model"
            )
    base = model.base_model if hasattr(model, "base_model") else model
    rotary = getattr(base, "rotary_emb", None)
    if rotary is None:
        raise ValueError(f"{type(model).__name__} has no rotary_emb: not a Qwen2-style model")
    if isinstance(rotary, DualChunkRotaryEmbedding):
        rotary = rotary.rotary
    wrapped = DualChunkRotaryEmbedding(rotary, config)
    base.rotary_emb = wrapped
    state = DualChunkState(config, wrapped)
    marked = 0
    for module in model.modules():
        if hasattr(module, "q_proj") and hasattr(module, "k_proj") and hasattr(module, "layer_idx"):
            module.dual_chunk = state  # a plain attribute (not an nn.Module): no new parameters or buffers
            marked += 1
    if not marked:
        raise ValueError(f"found no attention modules in {type(model).__name__}")
    model_config.dual_chunk_attention_config = config.as_dict()
    return config


def disable_dca(model: nn.Module) -> None:
    """Undo `enable_dca`: plain rotary embedding and attention, config key removed."""
    base = model.base_model if hasattr(model, "base_model") else model
    if isinstance(getattr(base, "rotary_emb", None), DualChunkRotaryEmbedding):
        base.rotary_emb = base.rotary_emb.rotary
    for module in model.modules():
        if hasattr(module, "dual_chunk"):
            del module.dual_chunk
    if hasattr(model.config, CONFIG_KEY):
        delattr(model.config, CONFIG_KEY)
