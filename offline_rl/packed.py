"""Padding-free log-prob passes for DPO (`padding_free: true`): policy and reference forwards run packed.

TRL 1.16's DPOTrainer pads `[chosen..., rejected...]` (prompt + response) to the longest row and scores the whole
rectangle; its own `padding_free` is disabled after a refactor (the trainer warns and pads). There is no separate
"concatenated forward" method in 1.16: the policy pass and the reference pass are `model(..., labels=...,
fused_lm_head=True)` calls inside `_compute_loss` (training and evaluation) and `compute_ref_log_probs` (the
precomputed reference pass, run inside `__init__`, and the reference log-prob cache's pass). `PackedDPOMixin`
overrides those two methods: while they run, the fused-head forward of the policy (under PEFT, its base model) and of
the reference model packs each padded batch (`qwen25.packing.packed_fused_forward`: real tokens only, position_ids
restarting per sequence, one forward per batch as TRL's) and scatters every per-token field (log_probs, entropy,
mean_logits, is_top1, log_sum_sq_probs) back to the padded layout. Everything after the forward (the DPO losses,
ld_alpha, metrics) is TRL's code on the same tensors. The patch is installed per call and removed after, so it wraps
whichever head is in place (TRL's, or ours with `fused_linear_ce: true`) and never touches generation.

The switch is TRL's own field, `padding_free` (DPOStageConfig redeclares its help): the mixin takes it before
`DPOTrainer.__init__` runs, hides it from that `__init__` (which would log that padding-free is disabled and fall
back to padding), then puts it back, so the saved config says `padding_free: true` and `trainer.padding_free` is
True. Not supported packed (refused at construction): MoE router losses, prompt-learning PEFT (virtual tokens).

Use: `PackedDPOTrainer` (from `packed_dpo_trainer_class(DPOTrainer)`), or mix `PackedDPOMixin` first into any
DPOTrainer subclass (offline_rl/__main__.py does so with the reference log-prob cache's trainer).
"""

from __future__ import annotations

import contextlib
import functools

from qwen25.packing import packed_fused_forward


@contextlib.contextmanager
def packed_fused_calls(models):
    """While open, `model(input_ids=..., attention_mask=..., labels=..., fused_lm_head=True)` runs packed.

    `models`: the modules TRL installed its fused head on. Calls without `fused_lm_head`, or already packed
    (position_ids, cu_seq_lens), go to the forward in place. The previous forwards are restored on exit.
    """
    saved = []
    for model in {id(m): m for m in models if m is not None}.values():
        previous = model.forward
        saved.append((model, model.__dict__.get("forward")))

        @functools.wraps(previous)
        def forward(*args, _previous=previous, fused_lm_head=False, **kwargs):
            packable = (
                fused_lm_head
                and not args
                and kwargs.get("input_ids") is not None
                and kwargs.get("attention_mask") is not None
                and kwargs["attention_mask"].dim() == 2
                and kwargs.get("labels") is not None
                and kwargs.get("position_ids") is None
                and kwargs.get("inputs_embeds") is None
                and kwargs.get("cu_seq_lens_q") is None
            )
            if not packable:
                return _previous(*args, fused_lm_head=fused_lm_head, **kwargs)
            ids, mask, labels = (kwargs.pop(name) for name in ("input_ids", "attention_mask", "labels"))
            kwargs.pop("use_cache", None)
            return packed_fused_forward(_previous, ids, mask, labels, **kwargs)

        model.forward = forward
    try:
        yield
    finally:
        for model, instance_forward in reversed(saved):
            if instance_forward is None:
                del model.forward
            else:
                model.forward = instance_forward


class PackedDPOMixin:
    """DPOTrainer mixin: with `args.padding_free`, the policy and reference log-prob passes run packed."""

    def __init__(self, *args, **kwargs):
        trainer_args = kwargs.get("args", args[2] if len(args) > 2 else None)
        self.packed_logps = bool(getattr(trainer_args, "padding_free", False))
        if self.packed_logps:
            trainer_args.padding_free = False  # TRL's __init__ would warn and disable it; ours runs in the forwards
        try:
            super().__init__(*args, **kwargs)
        finally:
            if self.packed_logps:
                trainer_args.padding_free = True
        if self.packed_logps:
            self.padding_free = True
            if self.aux_loss_enabled:
                raise NotImplementedError("padding_free: packed DPO passes do not compute MoE router losses")
            peft_config = getattr(self.model, "active_peft_config", None)
            if peft_config is not None and peft_config.is_prompt_learning:
                raise NotImplementedError("padding_free: prompt-learning PEFT (virtual tokens) cannot be packed")

    def _fused_head_models(self) -> list:
        """The modules TRL's `add_fused_lm_head` patched: the policy (its base model under PEFT) and the reference."""
        from accelerate.utils import is_peft_model

        policy = self.model.get_base_model() if is_peft_model(self.model) else self.model
        return [policy, getattr(self, "ref_model", None)]

    def _compute_loss(self, model, inputs, return_outputs):
        if not self.packed_logps:
            return super()._compute_loss(model, inputs, return_outputs)
        with packed_fused_calls(self._fused_head_models()):
            return super()._compute_loss(model, inputs, return_outputs)

    def compute_ref_log_probs(self, model, inputs):
        if not self.packed_logps:
            return super().compute_ref_log_probs(model, inputs)
        with packed_fused_calls(self._fused_head_models()):
            return super().compute_ref_log_probs(model, inputs)


def packed_dpo_trainer_class(base: type) -> type:
    """`base` (DPOTrainer or a subclass of it) with `PackedDPOMixin` mixed in first."""
    return type(f"Packed{base.__name__}", (PackedDPOMixin, base), {"__module__": __name__, "__doc__": base.__doc__})
