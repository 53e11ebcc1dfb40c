"""Padding-free (packed) log-prob passes: the real tokens of a padded batch as packed rows, scored, scattered back.

RL trainers score padded batches. GRPO builds `cat(left-padded prompts, right-padded completions)` and runs the model
on the whole (B, P + C) rectangle; DPO right-pads `[chosen..., rejected...]` to the longest pair. With completions of
16 to 512 tokens most of that rectangle is padding, and every layer computes it. Here the real tokens of the rows go
into one packed row (or a few) with `position_ids` that restart at 0 for each sequence and `cu_seq_lens_*`; our
attention (`qwen25/attention/registration.py`) takes the segment boundaries from them, so no token attends across
a sequence (the Triton kernel on CUDA, one SDPA call per segment on CPU), and the per-token results are scattered
back into the padded layout the trainer expects (zeros at padding and at unscored positions).

Why hand-written: TRL 1.16's DPO `padding_free` is disabled after a refactor (its trainer warns and pads), and its
GRPO trainer has no padding-free scoring at all; SFT's padding-free collator packs whole rows at collation time,
which does not fit the RL trainers, whose batches are made padded (by the DPO collator, by GRPO's generation).

Two ways to score, both projecting the LM head only at the positions whose next token is scored:
- `packed_fused_forward` / `packed_token_logps(..., fused_lm_head=True)`: the model carries a fused LM head (TRL's
  `add_fused_lm_head`, installed by every TRL 1.16 trainer, or ours, `qwen25/ops/fused_lm_head.py`), called as
  `model(..., labels=..., fused_lm_head=True)`. The packed call is that same call on packed inputs, so the numbers are
  the trainer's own (temperature and statistics are the head's) and wrappers (DDP, FSDP, PEFT) see a plain forward.
- `packed_token_logps(..., fused_lm_head=False)`: any causal LM; the LM head runs on the scored positions only
  (`logits_to_keep` as an index tensor), `temperature` divides the logits, then log-softmax (and entropy) in fp32.
  It materialises (scored tokens, vocab) logits per pack: for tests, benchmarks and small vocabularies.

Equivalence with the padded pass (tests/qwen25/test_packing.py): transformers gives a padded row positions
0..L-1 whatever its padding (a left-padded prompt starts at position n_pad), a packed sequence starts at 0; RoPE
makes attention depend on position differences only, so the results agree up to rounding (fp32: ~1e-6).
Rows must have their real tokens as one contiguous run (left and/or right padding, as the trainers make them);
a scored token must follow a real token of its row (a row's first real token has no predecessor to score it from).

How many packs: `rows_per_pack` groups consecutive rows as the trainer's own micro-batches would (the same number
of forwards on every rank, which FSDP and ZeRO-3 need: their parameter gathers are collective), `max_tokens` caps
the tokens of a pack (greedy, in row order; the count then depends on the data, so only for one process). Rows with
nothing to score are left out of their pack, but every pack runs (an all-unscored pack keeps one row) so the
outputs stay connected to the model and every rank runs the same forwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


class NotPackable(ValueError):
    """The batch cannot be packed exactly (a row's real tokens are not one contiguous run)."""


@dataclass
class Pack:
    """Some rows of a padded (B, L) batch laid out as one packed row of T tokens."""

    rows: torch.Tensor  # (n,) long: the batch rows in this pack, in order
    src: torch.Tensor  # (T,) long: flat index row * L + column of each packed token in the padded batch
    position_ids: torch.Tensor  # (1, T) long: 0..len-1 per sequence
    cu_seqlens: torch.Tensor  # (n + 1,) int32: sequence boundaries in the packed row
    max_len: int  # longest sequence in the pack

    @property
    def num_tokens(self) -> int:
        return self.src.numel()

    def gather(self, padded: torch.Tensor) -> torch.Tensor:
        """(B, L) per-token values of the padded batch -> (1, T) in the packed order."""
        return padded.flatten()[self.src][None]

    def model_inputs(self, input_ids: torch.Tensor) -> dict:
        """Keyword arguments of a causal LM forward on this pack: ids, restarting positions and cu_seq_lens."""
        return {
            "input_ids": self.gather(input_ids),
            "position_ids": self.position_ids,
            "cu_seq_lens_q": self.cu_seqlens,
            "cu_seq_lens_k": self.cu_seqlens,
            "max_length_q": self.max_len,
            "max_length_k": self.max_len,
        }


def _runs(attention_mask: torch.Tensor) -> tuple[list[int], list[int]]:
    """First real column and number of real tokens of every row; refuses a row whose real tokens have holes."""
    valid = attention_mask.bool()  # (B, L)
    n = valid.sum(1)  # (B,)
    first = valid.int().argmax(1)  # (B,): 0 for a row without real tokens (an empty run)
    pos = torch.arange(valid.size(1), device=valid.device)[None]  # (1, L)
    one_run = ((pos >= first[:, None]) & (pos < (first + n)[:, None])) == valid
    if not bool(one_run.all()):
        rows = (~one_run.all(1)).nonzero().flatten().tolist()
        raise NotPackable(
            f"packing needs each row's real tokens as one contiguous run (left/right padding); rows {rows} have holes"
        )
    return first.tolist(), n.tolist()


def plan_packs(
    attention_mask: torch.Tensor,
    *,
    rows_per_pack: int | None = None,
    max_tokens: int | None = None,
    skip: list[bool] | None = None,
) -> list[Pack]:
    """Group the rows of a (B, L) padded batch into packs of consecutive rows.

    A new pack starts after `rows_per_pack` rows (counting skipped ones, so the number of packs is ceil(B /
    rows_per_pack) whatever the data) or when the next row would take the pack past `max_tokens` (a row longer than
    that gets a pack of its own). None: no such limit. `skip[r]`: leave row r out of its pack; a pack whose rows are
    all skipped keeps its first row (one token if that row has none), so that no pack is empty.
    """
    batch, seq_len = attention_mask.shape
    first, lengths = _runs(attention_mask)
    skip = skip or [False] * batch
    groups: list[list[int]] = []
    tokens = 0
    for row in range(batch):
        row_tokens = 0 if skip[row] else lengths[row]
        if not groups:
            new = True
        else:
            full_rows = rows_per_pack is not None and len(groups[-1]) >= rows_per_pack
            full_tokens = max_tokens is not None and tokens > 0 and tokens + row_tokens > max_tokens
            new = full_rows or full_tokens
        if new:
            groups.append([])
            tokens = 0
        groups[-1].append(row)
        tokens += row_tokens
    device = attention_mask.device
    packs = []
    for group in groups:
        rows = [r for r in group if not skip[r]] or group[:1]
        starts = [r * seq_len + first[r] for r in rows]  # flat index of each sequence's first token
        lens = [lengths[r] for r in rows]
        if sum(lens) == 0:  # nothing real in the pack at all: one (padding) token keeps the forward well-formed
            starts, lens = [rows[0] * seq_len + seq_len - 1], [1]
        lens_t = torch.tensor(lens, device=device)
        cu = torch.nn.functional.pad(lens_t.cumsum(0), (1, 0))  # (n + 1,)
        total = int(cu[-1])
        offset = torch.repeat_interleave(cu[:-1], lens_t, output_size=total)  # (T,): start of each token's sequence
        local = torch.arange(total, device=device) - offset  # (T,): position within its sequence
        src = torch.repeat_interleave(torch.tensor(starts, device=device), lens_t, output_size=total) + local
        packs.append(Pack(torch.tensor(rows, device=device), src, local[None], cu.to(torch.int32), max(lens)))
    return packs


def _scored_labels(labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) labels with -100 wherever the packed pass cannot score: padding and tokens without a real predecessor."""
    valid = attention_mask.bool()
    has_prev = torch.zeros_like(valid)
    has_prev[:, 1:] = valid[:, :-1]
    return labels.masked_fill(~(valid & has_prev), IGNORE_INDEX)


def _scatter_plan(packs: list[Pack], packed_labels: list[torch.Tensor], seq_len: int):
    """Per pack: which packed positions are scored (predict the next packed token) and their (B, L - 1) flat index."""
    plans = []
    for pack, labels in zip(packs, packed_labels):
        keep = (labels[0, 1:] != IGNORE_INDEX).nonzero().flatten()  # (k,) packed position j scores token j + 1
        target = pack.src[1:][keep]  # (k,) flat (B, L) index of the scored token
        dest = target - target // seq_len - 1  # row * (L - 1) + column - 1: the shifted layout's index
        plans.append((keep, dest))
    return plans


def packed_fused_forward(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    *,
    rows_per_pack: int | None = None,
    max_tokens: int | None = None,
    **kwargs,
):
    """`model(input_ids, attention_mask, labels=labels, fused_lm_head=True, **kwargs)`, computed packed.

    `model` carries a fused LM head (see the module docstring). Returns an output of the head's own class with every
    per-token field ((B, L - 1): `log_probs`, `entropy`, `label_mask`, ...) scattered back to the padded layout, zero
    where nothing is scored, and `loss` as the head computes it (summed NLL over `num_items_in_batch`, else over the
    scored tokens). Labels are -100 where not scored; labels at padding, or on a row's first real token, are not
    scored (the padded pass would score the latter from a padding position). MoE router losses are not supported.
    """
    batch, seq_len = input_ids.shape
    num_items_in_batch = kwargs.pop("num_items_in_batch", None)
    if kwargs.get("output_router_logits"):
        raise NotImplementedError("packed passes do not compute MoE router losses (Qwen2.5 is dense)")
    labels = _scored_labels(labels, attention_mask)
    skip = (labels[:, 1:] == IGNORE_INDEX).all(1).tolist()  # rows with nothing to score
    packs = plan_packs(attention_mask, rows_per_pack=rows_per_pack, max_tokens=max_tokens, skip=skip)
    packed_labels = [pack.gather(labels) for pack in packs]
    for pack, lab in zip(packs, packed_labels):
        lab[0, pack.cu_seqlens[:-1].long()] = IGNORE_INDEX  # a sequence's first token is not scored from the last one
    plans = _scatter_plan(packs, packed_labels, seq_len)

    values: dict[str, list[torch.Tensor]] = {}
    output_type = None
    for pack, lab, (keep, _) in zip(packs, packed_labels, plans):
        out = model(**pack.model_inputs(input_ids), labels=lab, fused_lm_head=True, use_cache=False, **kwargs)
        output_type = type(out)
        for name, value in out.items():
            if name not in ("loss", "aux_loss") and isinstance(value, torch.Tensor) and value.dim() == 2:
                values.setdefault(name, []).append(value[0, keep])  # (k,) the scored positions of this pack
    dest = torch.cat([d for _, d in plans])  # (total scored,)
    fields = {}
    for name, parts in values.items():
        flat = torch.cat(parts)
        fields[name] = flat.new_zeros(batch * (seq_len - 1)).index_copy(0, dest, flat).view(batch, seq_len - 1)
    log_probs = fields["log_probs"]
    denominator = dest.numel() if num_items_in_batch is None else num_items_in_batch
    loss = -log_probs.sum() / (max(denominator, 1) if isinstance(denominator, int) else denominator)
    return output_type(loss=loss, **fields)


def packed_token_logps(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    logits_to_keep: int,
    *,
    temperature: float | None = None,
    compute_entropy: bool = False,
    fused_lm_head: bool = False,
    rows_per_pack: int | None = None,
    max_tokens: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs (and entropies) of the last `logits_to_keep` tokens of each row, computed packed.

    input_ids, attention_mask: (B, L) padded batch (GRPO: left-padded prompts then right-padded completions of width
    `logits_to_keep`). Scores exactly what TRL's GRPOTrainer._get_per_token_logps_and_entropies does: every real
    token among the last `logits_to_keep` columns, under logits / temperature. Returns (B, logits_to_keep) log-probs
    and, with `compute_entropy`, entropies (else None); zero at padding.

    fused_lm_head=True: through the model's fused head (`model(..., fused_lm_head=True)`), whose temperature and
    statistics are the ones it was installed with; `temperature` must then be None (it is not applied twice), and the
    head must compute "entropy" when `compute_entropy` is asked for. fused_lm_head=False: any causal LM; the head runs
    on the scored positions only and `temperature` (None: 1.0) divides the logits.
    """
    seq_len = input_ids.size(1)
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    labels[:, : seq_len - logits_to_keep] = IGNORE_INDEX
    if fused_lm_head:
        if temperature is not None:
            raise ValueError("fused_lm_head=True: the head applies the temperature it was installed with; pass None")
        out = packed_fused_forward(
            model, input_ids, attention_mask, labels, rows_per_pack=rows_per_pack, max_tokens=max_tokens
        )
        entropy = None
        if compute_entropy:
            if out.get("entropy") is None:
                raise ValueError("compute_entropy: the model's fused head does not compute entropy")
            entropy = out.entropy[:, -logits_to_keep:]
        return out.log_probs[:, -logits_to_keep:], entropy

    batch = input_ids.size(0)
    temperature = 1.0 if temperature is None else temperature
    labels = _scored_labels(labels, attention_mask)
    skip = (labels[:, 1:] == IGNORE_INDEX).all(1).tolist()
    packs = plan_packs(attention_mask, rows_per_pack=rows_per_pack, max_tokens=max_tokens, skip=skip)
    packed_labels = [pack.gather(labels) for pack in packs]
    for pack, lab in zip(packs, packed_labels):
        lab[0, pack.cu_seqlens[:-1].long()] = IGNORE_INDEX
    plans = _scatter_plan(packs, packed_labels, seq_len)
    logps, entropies = [], []
    for pack, lab, (keep, _) in zip(packs, packed_labels, plans):
        logits = model(**pack.model_inputs(input_ids), logits_to_keep=keep, use_cache=False).logits[0]  # (k, vocab)
        logp = (logits.float() / temperature).log_softmax(-1)  # (k, vocab)
        logps.append(logp.gather(-1, lab[0, keep + 1][:, None]).squeeze(-1))  # (k,)
        if compute_entropy:
            entropies.append(-(logp.exp() * logp).sum(-1))
    dest = torch.cat([d for _, d in plans])

    def unpack(parts: list[torch.Tensor]) -> torch.Tensor:
        flat = torch.cat(parts)
        full = flat.new_zeros(batch * (seq_len - 1)).index_copy(0, dest, flat).view(batch, seq_len - 1)
        return full[:, -logits_to_keep:]

    return unpack(logps), unpack(entropies) if compute_entropy else None
