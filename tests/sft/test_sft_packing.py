"""Packing is exact: a packed SFT batch gives the same per-sample losses and gradients as its samples run one by one.

The packed row comes from the SFT stage's own path (TRL's SFTTrainer with packing, assistant-only labels, our
`qwen25` attention reading `cu_seq_lens`, our fused linear cross-entropy); the reference runs each sample alone,
unpadded, through the same model, so any leak across sample boundaries (attention, positions, label shift) shows.
fp32, tolerance 1e-5.
"""

from __future__ import annotations

import torch

from qwen25.model import load_model
from qwen25.ops.fused_lm_head import use_fused_linear_ce
from qwen25.tokenizer import load_tokenizer
from stagekit.stage_io import load_records

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def test_packed_batch_equals_samples_one_by_one(micro_base, stage_data, tmp_path):
    from trl import SFTTrainer

    from sft.config import SFTStageConfig

    args = SFTStageConfig(
        output_dir=str(tmp_path), packing=True, assistant_only_loss=True, bf16=False, report_to="none",
        max_length=256, per_device_train_batch_size=2, seed=0, fused_linear_ce=True,
    )  # fmt: skip
    rows = load_records(stage_data["sft"], key="dataset_path", columns=["messages"])
    model = load_model(micro_base).train()
    assert model.config._attn_implementation == "qwen25"
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=load_tokenizer(micro_base))
    use_fused_linear_ce(trainer, stats=("entropy", "is_top1"))
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    ids, labels, pos = batch["input_ids"], batch["labels"], batch["position_ids"]
    assert ids.shape[0] == 1 and "attention_mask" not in batch  # one padding-free packed row

    # the samples in the row: position_ids restart at 0 at each one
    starts = (pos[0] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
    segments = list(zip(starts[:-1], starts[1:]))
    assert len(segments) >= 4 and len({e - s for s, e in segments}) > 1  # several samples of uneven length
    cu = batch["cu_seq_lens_q"].tolist()
    assert cu == starts  # what our attention gets agrees with the positions
    n_items = (labels[:, 1:] != -100).sum()
    assert 0 < n_items < labels.numel() / 2  # assistant-only

    # packed: per-token log-probs (1, seq - 1), the stage's loss and its gradients
    out = model(**{k: v for k, v in batch.items() if k != "labels"}, labels=labels, fused_lm_head=True)
    packed_loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n_items)
    packed_loss.backward()
    packed_grads = _grads(model)

    # one by one: each sample alone, same labels; losses share the packed batch's normaliser, so they sum to it
    alone_losses = []
    for s, e in segments:
        sample = {
            "input_ids": ids[:, s:e], "labels": labels[:, s:e],
            "position_ids": torch.arange(e - s, dtype=pos.dtype)[None],
        }  # fmt: skip
        logps = model(**sample, fused_lm_head=True).log_probs.detach()  # (1, e - s - 1)
        # packed row: position t predicts t + 1, so sample [s, e) owns log-prob slots [s, e - 1)
        torch.testing.assert_close(out.log_probs[:, s : e - 1].detach(), logps, **TOL)
        if e < ids.shape[1]:  # the slot predicting the next sample's first token is not trained on
            assert out.log_probs[0, e - 1] == 0
        loss = trainer.compute_loss(model, dict(sample), num_items_in_batch=n_items)
        loss.backward()  # accumulates: the sum over samples
        alone_losses.append(loss.detach())
    torch.testing.assert_close(torch.stack(alone_losses).sum(), packed_loss.detach(), **TOL)
    alone_grads = _grads(model)
    assert alone_grads.keys() == packed_grads.keys() and len(packed_grads) > 10
    for name in packed_grads:
        torch.testing.assert_close(alone_grads[name], packed_grads[name], **TOL, msg=lambda m, n=name: f"{n}: {m}")

    # and the check can fail: the same row without cu_seq_lens / position resets attends across samples
    leaky = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs.detach()
    assert not torch.allclose(leaky, out.log_probs.detach(), **TOL)
