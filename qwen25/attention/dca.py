"""Dual Chunk Attention (An et al. 2024, arXiv 2402.17463): attention past the trained length without training.

DCA keeps every query-key relative position inside the range the model was trained on by remapping positions per
pair. A sequence is cut into chunks of `chunk_len = chunk_size - local_size` tokens (Qwen2.5-1M's
`dual_chunk_attention_config` {chunk_size, local_size, original_max_position_embeddings}, as vLLM's
`dual_chunk_flash_attn` backend reads it). With L = chunk_len and s = chunk_size, a key at absolute position j is
rotated at j mod L, and a query at position i at one of three positions, by how far back the key's chunk lies:

- intra-chunk (same chunk, i // L == j // L): i mod L; relative distance i - j, the true one;
- successive-chunk (the previous chunk): min(i mod L + L, s); the true distance for the first `local_size` queries
  of a chunk, which keeps locality across the boundary, clamped at s after that;
- inter-chunk (two or more chunks back): s, a constant (vLLM's `qc_t[chunk_len - 1]`); distances stay <= s.

Each (query, key) pair belongs to exactly one case, so the three score sets are merged by one softmax over all keys
(equivalently a log-sum-exp combination of three partial attentions); causality, GQA, packed rows, padding and
KV-cache decoding are those of the plain attention (`reference.py`, `registration.py`). Since local_size < L is
required, inter-chunk pairs start at i >= 2L > s: for sequences of at most chunk_size tokens every distance is the
true one, so DCA changes nothing there (mathematically; bit for bit up to chunk_len tokens, where `registration.py`
takes the plain path).

How it plugs into transformers' Qwen2 attention, which applies RoPE *before* calling the attention function:
`enable_dca(model, ...)` (registration.py, beside the attention it switches) replaces the model's rotary embedding
by `DualChunkRotaryEmbedding`, which asks the original for position `position_ids mod L`. Keys therefore reach the
attention function, and the KV cache, already rotated at DCA's key position j mod L (for every layout: each token's
own position_ids are used), and queries at their intra-chunk position. The attention function then derives q_succ
and q_inter by rotating q further by the difference (at most s, so fp32 angles stay exact enough), never un-rotating
by large absolute positions. RoPE scaling (YaRN's attention factor) is already inside q and k; the extra rotation is
a pure one. Marking each attention module (`module.dual_chunk`) is what turns DCA on in `qwen25_attention`; the
config key `dual_chunk_attention_config` makes `qwen25.model.load_model` do it again when a checkpoint is loaded.

Paths: `dual_chunk_attention_reference` (PyTorch, differentiable; processes queries in blocks so 64K-token
prefills fit in memory, and skips keys no query of a block can see) and the Triton forward kernel
(`dca_triton.py`, CUDA or TRITON_INTERPRET=1, inference only: prefill and decoding for generation and evaluation).
DCA is written by hand because no library we build on offers it for training or HF generation (vLLM has it for
serving only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from torch import nn

from qwen25.attention.reference import segment_ids_from_cu_seqlens, segment_ids_from_position_ids
from stagekit.errors import ConfigError

CONFIG_KEY = "dual_chunk_attention_config"  # the key in config.json (Qwen2.5-1M's, read by vLLM)
UNSUPPORTED_ROPE = ("dynamic", "longrope")  # their frequencies change with the length seen: no fixed remapping


@dataclass(frozen=True)
class DualChunkConfig:
    chunk_size: int  # s: largest query position used; the longest relative distance DCA produces
    local_size: int  # w: queries of a chunk that see the previous chunk at their true distance
    original_max_position_embeddings: int | None = None  # the trained length; chunk_size must not exceed it

    @property
    def chunk_len(self) -> int:
        """L = chunk_size - local_size: tokens per chunk."""
        return self.chunk_size - self.local_size

    @classmethod
    def from_dict(cls, values: dict, where: str = CONFIG_KEY) -> DualChunkConfig:
        """Validated config; ValueError names the key and what was expected."""
        if isinstance(values, DualChunkConfig):
            return values
        if not isinstance(values, dict):
            raise ValueError(f"{where}: expected a mapping with chunk_size and local_size, got {values!r}")
        allowed = {"chunk_size", "local_size", "original_max_position_embeddings"}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
        for key in ("chunk_size", "local_size"):
            if key not in values:
                raise ValueError(f"{where}: {key} is required")
        for key, value in values.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValueError(f"{where}.{key}: expected a non-negative integer, got {value!r}")
        config = cls(**values)
        if config.chunk_size < 2:
            raise ValueError(f"{where}.chunk_size: must be >= 2, got {config.chunk_size}")
        if 2 * config.local_size >= config.chunk_size:
            raise ValueError(
                f"{where}.local_size={config.local_size} must be < chunk_size / 2 = {config.chunk_size / 2} "
                "(the local window must be shorter than a chunk)"
            )
        original = config.original_max_position_embeddings
        if original is not None and config.chunk_size > original:
            raise ValueError(
                f"{where}.chunk_size={config.chunk_size} exceeds original_max_position_embeddings={original}: "
                "DCA would produce distances the model was never trained on"
            )
        return config

    def as_dict(self) -> dict:
        out = {"chunk_size": self.chunk_size, "local_size": self.local_size}
        if self.original_max_position_embeddings is not None:
            out["original_max_position_embeddings"] = self.original_max_position_embeddings
        return out


def parse_dca(value: dict | str | bool | None, key: str = "dca") -> dict | bool | None:
    """A `dca` setting as `qwen25.model.load_model(dca=...)` takes it, validated before any model loads.

    None: the checkpoint's config decides; False or "off": DCA off; a mapping or a JSON object: those keys;
    "CHUNK_SIZE,LOCAL_SIZE" (the command-line form, e.g. 32768,1024): that config. ConfigError names `key`
    (a config key, or a flag such as "--dca") and what was wrong.
    """
    if value is None or value is False:
        return value
    text = str(value).strip()
    if not isinstance(value, dict) and text.lower() in ("off", "none", "false"):
        return False
    if isinstance(value, dict):
        parsed = value
    elif text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{key}: {value!r} is not a JSON object ({e})") from None
    else:
        try:
            chunk_size, local_size = (int(p) for p in text.split(","))
        except ValueError:
            raise ConfigError(
                f"{key} {value!r}: expected CHUNK_SIZE,LOCAL_SIZE (e.g. 32768,1024), a mapping, or off"
            ) from None
        parsed = {"chunk_size": chunk_size, "local_size": local_size}
    try:
        DualChunkConfig.from_dict(parsed, where=key)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return parsed


def dca_query_positions(positions: torch.Tensor, config: DualChunkConfig) -> tuple[torch.Tensor, ...]:
    """Remapped query positions (intra, successive, inter) for absolute positions; key positions are positions % L."""
    chunk_len = config.chunk_len
    intra = positions % chunk_len
    succ = (intra + chunk_len).clamp(max=config.chunk_size)
    inter = torch.full_like(positions, min(2 * chunk_len - 1, config.chunk_size))
    return intra, succ, inter


# ---------------------------------------------------------------------------------------------------------------
# RoPE: the model's rotary embedding asked for positions mod L, and the extra query rotations


class DualChunkRotaryEmbedding(nn.Module):
    """Wraps a transformers rotary embedding: cos/sin at `position_ids % chunk_len` (DCA's key/intra positions)."""

    def __init__(self, rotary: nn.Module, config: DualChunkConfig):
        super().__init__()
        self.rotary = rotary
        self.dca = config

    @property
    def inv_freq(self) -> torch.Tensor:
        return self.rotary.inv_freq

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor):
        return self.rotary(x, position_ids % self.dca.chunk_len)


@dataclass
class DualChunkState:
    """What `qwen25_attention` needs on each attention module: the config and the pure rotation frequencies."""

    config: DualChunkConfig
    rotary: DualChunkRotaryEmbedding

    @property
    def inv_freq(self) -> torch.Tensor:
        return self.rotary.inv_freq  # (head_dim / 2,)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotate(x: torch.Tensor, delta: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, L, D) further by `delta` (B, L) positions, RoPE's half-split layout, fp32 math.

    Unscaled (cos, sin): any RoPE attention factor is already inside x.
    """
    freqs = delta[..., None].float() * inv_freq.to(device=x.device, dtype=torch.float32)  # (B, L, D/2)
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, L, D)
    xf = x.float()
    return (xf * emb.cos() + rotate_half(xf) * emb.sin()).to(x.dtype)


def dca_queries(
    query: torch.Tensor, q_pos: torch.Tensor, config: DualChunkConfig, inv_freq: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """From q rotated at q_pos % L (B, H, Lq, D): (q_succ, q_inter), rotated at their remapped positions."""
    intra, succ, inter = dca_query_positions(q_pos, config)  # (B, Lq) each
    return rotate(query, succ - intra, inv_freq), rotate(query, inter - intra, inv_freq)


# ---------------------------------------------------------------------------------------------------------------
# positions, segments and masks of an input


def key_positions(
    batch: int,
    q_len: int,
    k_len: int,
    device: torch.device,
    attention_mask: torch.Tensor | None = None,
    cu_seq_lens_k: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Absolute position (B, Lk) of every key, the one its rotary embedding was computed at.

    Queries are the last q_len keys. Sources, in order: position_ids when they cover the keys (q_len == k_len:
    prefill, packed rows); cu_seq_lens (position within the segment); the real keys of a padding mask (decoding a
    left-padded batch: transformers' position_ids are cumsum(mask) - 1); else 0..k_len-1.
    """
    if position_ids is not None and q_len == k_len:
        return position_ids.to(device).expand(batch, -1).long()
    if cu_seq_lens_k is not None:
        cu = cu_seq_lens_k.to(device=device, dtype=torch.int64)
        segments = segment_ids_from_cu_seqlens(cu, k_len)  # (k_len,)
        starts = torch.cat([cu[:-1], cu[-1:]])  # tokens past the end form a segment starting at cu[-1]
        return (torch.arange(k_len, device=device) - starts[segments]).expand(batch, -1)
    if attention_mask is not None:
        if attention_mask.dim() == 2:
            valid = attention_mask[:, -k_len:].bool()  # (B, Lk)
        else:
            last = attention_mask[:, 0, -1, -k_len:]  # the last query sees every real key (bottom-right causal)
            valid = last if last.dtype == torch.bool else last >= 0
            valid = valid.expand(batch, -1)
        return (valid.long().cumsum(-1) - 1).clamp(min=0)
    return torch.arange(k_len, device=device).expand(batch, -1)


def segments(batch, q_len, k_len, device, cu_seq_lens_q, cu_seq_lens_k, position_ids):
    """Packed-segment ids (B, Lq), (B, Lk) or (None, None): the rule of `reference.build_attention_mask`."""
    if cu_seq_lens_q is not None:
        if batch != 1:
            raise ValueError(f"packed attention with cu_seq_lens expects batch size 1, got {batch}")
        cu_k = cu_seq_lens_k if cu_seq_lens_k is not None else cu_seq_lens_q
        return (
            segment_ids_from_cu_seqlens(cu_seq_lens_q.to(device), q_len)[None],
            segment_ids_from_cu_seqlens(cu_k.to(device), k_len)[None],
        )
    if position_ids is not None and q_len == k_len and q_len > 1:
        segments = segment_ids_from_position_ids(position_ids.to(device).expand(batch, -1))
        return segments, segments
    return None, None


def _block_mask(q0, q1, k_len, k_end, offset, device, attention_mask, seg_q, seg_k) -> torch.Tensor:
    """Boolean (B or 1, 1, q1 - q0, k_end) mask of queries [q0, q1) over keys [0, k_end), True = may attend."""
    q_idx = torch.arange(q0, q1, device=device)[:, None] + offset  # (b, 1): query i sits at key index offset + i
    k_idx = torch.arange(k_end, device=device)[None]  # (1, k_end)
    mask = (k_idx <= q_idx)[None, None]  # (1, 1, b, k_end)
    if attention_mask is not None:
        if attention_mask.dtype != torch.bool:
            attention_mask = attention_mask >= 0  # additive float mask: 0 = attend
        rows = attention_mask if attention_mask.shape[-2] == 1 else attention_mask[..., q0:q1, :]
        mask = mask & rows[..., -k_len:][..., :k_end]  # a mask may cover more positions than there are keys
    if seg_q is not None:
        mask = mask & (seg_q[:, None, q0:q1, None] == seg_k[:, None, None, :k_end])
    return mask


# ---------------------------------------------------------------------------------------------------------------
# PyTorch reference


def dual_chunk_attention_reference(
    q_intra: torch.Tensor,
    q_succ: torch.Tensor,
    q_inter: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    *,
    chunk_len: int,
    k_pos: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    seg_q: torch.Tensor | None = None,
    seg_k: torch.Tensor | None = None,
    scaling: float | None = None,
    block_q: int | None = None,
) -> torch.Tensor:
    """DCA over rotated queries q_* (B, H, Lq, D) and keys (B, Hkv, Lk, D) rotated at k_pos % chunk_len.

    k_pos (B, Lk): absolute key positions; queries are the last Lq keys. attention_mask: None or a boolean/additive
    (B, 1, Lq or 1, Lk) mask ANDed with bottom-right causality; seg_q/seg_k: packed-segment ids.
    Returns (B, Lq, H, D). One softmax per query over all visible keys, each score taken from the query rotation
    of its case; rows that see nothing output 0. Queries run in blocks of `block_q` (default: at most one chunk
    and 128 MiB of fp32 scores per block) over only the keys the block can see; the intra/successive products
    only over the key columns near the block (about two chunks for a plain row).
    """
    batch, n_heads, q_len, head_dim = q_intra.shape
    n_kv_heads, k_len = key.shape[1], key.shape[2]
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv_heads}")
    groups = n_heads // n_kv_heads
    scaling = head_dim**-0.5 if scaling is None else scaling
    offset = k_len - q_len
    if block_q is None:  # at most one chunk and 32 Mi fp32 scores (128 MiB) per block
        block_q = max(16, min(chunk_len, (32 << 20) // max(1, batch * n_heads * k_len)))
    chunks = k_pos // chunk_len  # (B, Lk) chunk index of every key
    q_chunks = chunks[:, offset:]  # (B, Lq)
    out = torch.empty(batch, q_len, n_heads, head_dim, dtype=value.dtype, device=value.device)
    for q0 in range(0, q_len, block_q):
        q1 = min(q0 + block_q, q_len)
        k_end = min(k_len, offset + q1)  # later keys are invisible to every query of the block
        b = q1 - q0
        k = key[:, :, None, :k_end]  # (B, Hkv, 1, k_end, D)
        v = value[:, :, None, :k_end]

        def scores(q: torch.Tensor, lo: int) -> torch.Tensor:
            q = q[:, :, q0:q1].reshape(batch, n_kv_heads, groups, b, head_dim)  # (B, Hkv, G, b, D)
            return torch.matmul(q, k[..., lo:, :].transpose(-1, -2)).float() * scaling  # (B, Hkv, G, b, k_end - lo)

        allowed = _block_mask(q0, q1, k_len, k_end, offset, q_intra.device, attention_mask, seg_q, seg_k)[:, :, None]
        # allowed (B|1, 1, 1, b, k_end). Inter-chunk scores everywhere, then intra/successive ones only from the
        # first key column whose chunk is at most one before the block's earliest query chunk: far keys cost one
        # product, not three (keys of other packed segments may widen that range; `rel` still decides per pair).
        first_chunk = q_chunks[:, q0:q1].min(dim=-1, keepdim=True).values  # (B, 1)
        near = (chunks[:, :k_end] >= first_chunk - 1).any(0).nonzero()  # (n, 1) key columns
        s = scores(q_inter, 0)  # (B, Hkv, G, b, k_end)
        if near.numel():
            lo = int(near[0, 0])
            rel = (q_chunks[:, q0:q1, None] - chunks[:, None, lo:k_end])[:, None, None]  # (B, 1, 1, b, k_end - lo)
            s_near = torch.where(rel == 1, scores(q_succ, lo), s[..., lo:])
            s[..., lo:] = torch.where(rel == 0, scores(q_intra, lo), s_near)
        s = s.masked_fill(~allowed, float("-inf"))
        probs = torch.softmax(s, dim=-1)
        probs = torch.where(allowed.any(dim=-1, keepdim=True), probs, torch.zeros((), dtype=probs.dtype))
        o = torch.matmul(probs.to(value.dtype), v)  # (B, Hkv, G, b, D)
        out[:, q0:q1] = o.reshape(batch, n_heads, b, head_dim).transpose(1, 2)
    return out


__all__ = [
    "CONFIG_KEY",
    "DualChunkConfig",
    "DualChunkRotaryEmbedding",
    "dca_queries",
    "dca_query_positions",
    "dual_chunk_attention_reference",
    "key_positions",
    "parse_dca",
    "segments",
]
