"""Serve TRL's fused-LM-head calls with our fused linear cross-entropy (the `fused_linear_ce: true` switch).

TRL 1.16's SFT, DPO and GRPO trainers never build logits for the loss: their `__init__` patches the model with
`trl.trainer.utils.add_fused_lm_head`, and every loss or log-prob path then calls
`model(**inputs, labels=labels, fused_lm_head=True)` and reads a `FusedCausalLMOutput` (per-token `log_probs`,
`entropy`, `is_top1`, ... zero at ignored labels, and `loss` = summed NLL / `num_items_in_batch`). That call is
the one point where the logits would be made, so the switch replaces that forward, after TRL has installed
its own, with one that runs the backbone and hands the last hidden states and `lm_head.weight` to
`qwen25.ops.fused_linear_token_stats`. Everything else stays TRL's: label shifting, -100 masks (assistant-only
masks are already folded into the labels), packed rows (`position_ids`, `cu_seq_lens_*` go to the backbone
untouched), `num_items_in_batch` normalisation, and the metrics (entropy, token accuracy, DPO's mean logits).
Only the positions with a label are projected, so the memory is one chunk of logits whatever the row length.
Not covered: MoE router losses and logit soft-capping (refused: Qwen2.5 has neither). Under autocast the head runs
in the weights' dtype (fp32 master weights: an fp32 matmul, correct but slower on a GPU than TRL's bf16 tiles).
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel

from qwen25.ops.fused_linear_ce import STATS, fused_linear_token_stats


@dataclass
class FusedLinearCEArguments:
    """The `fused_linear_ce` switch, declared once and mixed into the SFT, DPO and GRPO stage configs."""

    fused_linear_ce: bool = field(
        default=False,
        metadata={"help": "the loss / per-token log-probs and entropy from qwen25.ops' fused linear cross-entropy "
                  "(never materialises the logits) instead of TRL's own chunked LM head"},
    )


def add_fused_linear_ce_head(
    model: PreTrainedModel, *, temperature: float = 1.0, stats: tuple[str, ...] = (), chunk_size: int | None = None
) -> None:
    """Make `model(..., labels=..., fused_lm_head=True)` return a TRL `FusedCausalLMOutput` computed by our op.

    `stats`: the per-token fields besides `log_probs` to fill (names in `STATS`; the rest stay None), as the trainer
    that reads them asks TRL for. `temperature` divides the logits (GRPO samples and scores at its temperature).
    Calls without `fused_lm_head=True` (generation, plain forwards) go to the forward the model had before.
    """
    from trl.trainer.utils import FusedCausalLMOutput  # imported late: stages check their config before TRL loads

    unknown = [name for name in stats if name not in STATS]
    if unknown:
        raise ValueError(f"add_fused_linear_ce_head: unknown stats {unknown}; known: {list(STATS)}")
    text_config = model.config.get_text_config()
    if getattr(text_config, "output_router_logits", False):
        raise ValueError("fused_linear_ce: MoE router aux loss is not supported; set fused_linear_ce: false")
    if getattr(text_config, "final_logit_softcapping", None) or getattr(text_config, "logit_scale", None):
        raise ValueError("fused_linear_ce: logit soft-capping/scaling is not supported (Qwen2.5 has neither)")
    previous_forward = model.forward

    # keep the class forward's signature: `generate` validates its model kwargs against it
    @functools.wraps(type(model).forward)
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head:
            extra = {"labels": labels, "shift_labels": shift_labels, "num_items_in_batch": num_items_in_batch}
            return previous_forward(*args, **kwargs, **{k: v for k, v in extra.items() if v is not None})
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state  # (batch, seq, hidden)
        if shift_labels is None:
            hidden, labels = hidden[:, :-1], labels[:, 1:]  # position t predicts token t + 1: (batch, seq - 1, ...)
        else:
            labels = shift_labels  # already shifted (context/sequence parallelism)
        head = self.get_output_embeddings()
        labels = labels.to(head.weight.device)
        mask = labels != -100  # (batch, seq - 1)
        # only the positions with a label are projected: (n_valid, hidden)
        picked = hidden[mask.to(hidden.device)].to(device=head.weight.device, dtype=head.weight.dtype)
        per_token, extra = fused_linear_token_stats(
            picked, head.weight, labels[mask], head.bias, temperature=temperature, chunk_size=chunk_size, stats=stats
        )
        # back to (batch, seq - 1), zero at ignored positions; masked_scatter keeps an all-ignored batch differentiable
        log_probs = per_token.new_zeros(mask.shape).masked_scatter(mask, -per_token)
        fields = {name: t.new_zeros(mask.shape).masked_scatter(mask, t) for name, t in extra.items()}
        denominator = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / denominator, log_probs=log_probs, label_mask=mask, **fields
        )

    model.forward = types.MethodType(forward, model)


def use_fused_linear_ce(trainer, *, stats: tuple[str, ...], temperature: float = 1.0) -> None:
    """Switch a constructed TRL trainer's policy (and reference model, if it has one) to our fused head.

    Call right after the trainer is built: its `__init__` installs TRL's head, which this replaces. `stats` are the
    fields the trainer reads from the policy's output; the reference model is only asked for log-probs.
    A reference pass TRL runs inside `__init__` (DPO's `precompute_ref_log_probs`) has used TRL's head already.
    """
    from accelerate.utils import is_peft_model

    model = trainer.model.get_base_model() if is_peft_model(trainer.model) else trainer.model
    add_fused_linear_ce_head(model, temperature=temperature, stats=stats)
    ref_model = getattr(trainer, "ref_model", None)
    if ref_model is not None:
        add_fused_linear_ce_head(ref_model, temperature=temperature)


def naive_causal_lm_token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Reference for the fused head: per-token log-probs (batch, seq - 1) of `labels` from full logits.

    logits (batch, seq, vocab), labels (batch, seq) with -100 ignored; zero at ignored positions. Builds the full
    log-softmax: for tests and small models only.
    """
    logits, labels = logits[:, :-1].float(), labels[:, 1:]  # (batch, seq - 1, vocab), (batch, seq - 1)
    mask = labels != -100
    logp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None]).squeeze(-1)  # (batch, seq - 1)
    return logp * mask
