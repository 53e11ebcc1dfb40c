"""Padding-free log-prob passes for GRPO: `PackedLogpsMixin` packs the real tokens of each scoring batch.

TRL 1.16's GRPOTrainer scores completions on the padded (B, P + C) rectangle of left-padded prompts and
right-padded completions, in every pass: the policy's loss pass, the old-policy pass (importance sampling) and the
reference pass (KL). With completions of very different lengths most of that rectangle is padding. The mixin
overrides `_get_per_token_logps_and_entropies`, the one method all three go through, to run them packed
(`qwen25.packing.packed_token_logps` through the fused LM head TRL installed, so the temperature, the entropy and
the `fused_linear_ce` switch are the trainer's own): the same (B, C) log-probs and entropies, zero at padding.

Reads `self.args.padding_free` (the stage config declares it); false, multimodal inputs, a MoE router loss or a
batch whose rows are not one contiguous run of real tokens go to TRL's own method. Packs follow TRL's micro-batches
(`batch_size` rows each), so every rank runs as many forwards as TRL would (FSDP and ZeRO-3 gather collectively).

Use: `class Trainer(PackedLogpsMixin, GRPOTrainer)` (the mixin first).
"""

from __future__ import annotations

import logging

from qwen25.packing import NotPackable, packed_token_logps

logger = logging.getLogger(__name__)


class PackedLogpsMixin:
    """GRPOTrainer mixin: `_get_per_token_logps_and_entropies` packed when `self.args.padding_free` is true."""

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, compute_entropy=False, **kwargs
    ):
        """As TRL's: returns (per-token log-probs (B, logits_to_keep), entropies or None, aux loss (None here))."""
        extra = {name: value for name, value in kwargs.items() if value is not None and value is not False}
        if not getattr(self.args, "padding_free", False) or extra:  # multimodal inputs or compute_aux_loss=True
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, **kwargs
            )
        try:
            with self.accelerator.autocast():
                logps, entropies = packed_token_logps(
                    model,
                    input_ids,
                    attention_mask,
                    logits_to_keep,
                    compute_entropy=compute_entropy,
                    fused_lm_head=True,  # TRL's head (or ours): it holds the temperature
                    rows_per_pack=batch_size or input_ids.size(0),
                )
        except NotPackable as err:
            if not getattr(self, "_warned_not_packable", False):
                logger.warning("padding_free: %s; this batch and any like it are scored padded", err)
                self._warned_not_packable = True
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, **kwargs
            )
        return logps, entropies, None
