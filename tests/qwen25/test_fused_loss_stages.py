"""`fused_linear_ce: true` in the SFT, DPO and GRPO trainers: the loss, log-probs and gradients of full logits.

On the micro model, fp32. The references are built from the model's full logits (`model(...).logits`, log-softmax,
gather) on the very batch TRL's collator produced (packed rows with position_ids / cu_seq_lens, assistant-only
labels for SFT; prompt-masked completions for DPO; left-padded completions at a temperature for GRPO).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from qwen25.model import load_model
from qwen25.ops.fused_lm_head import naive_causal_lm_token_logps, use_fused_linear_ce
from qwen25.tokenizer import load_tokenizer
from stagekit.stage_io import load_records

TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture
def op_calls(monkeypatch) -> list[int]:
    """Counts calls of our op through the fused head: TRL's own head matches the references too, so without this
    a switch that silently did nothing would pass."""
    from qwen25.ops import fused_lm_head

    calls, real = [], fused_lm_head.fused_linear_token_stats

    def spy(hidden, *args, **kwargs):
        calls.append(hidden.size(0))
        return real(hidden, *args, **kwargs)

    monkeypatch.setattr(fused_lm_head, "fused_linear_token_stats", spy)
    return calls


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _assert_same_grads(got: dict, want: dict) -> None:
    assert got.keys() == want.keys() and len(got) > 10
    for name in want:
        torch.testing.assert_close(got[name], want[name], **TOL, msg=lambda m, name=name: f"{name}: {m}")


def _sft_trainer(micro_base, stage_data, tmp_path):
    from trl import SFTTrainer

    from sft.config import SFTStageConfig

    args = SFTStageConfig(
        output_dir=str(tmp_path), packing=True, assistant_only_loss=True, bf16=False, report_to="none",
        max_length=256, per_device_train_batch_size=2, seed=0,
    )  # fmt: skip
    rows = load_records(stage_data["sft"], key="dataset_path", columns=["messages"])
    model = load_model(micro_base).train()  # training mode, as in a step (Qwen2 has no dropout: same numbers)
    trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=load_tokenizer(micro_base))
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    return trainer, model, batch


def test_sft_fused_loss_and_grads_match_full_logits(micro_base, stage_data, tmp_path, op_calls):
    trainer, model, batch = _sft_trainer(micro_base, stage_data, tmp_path)
    assert "position_ids" in batch and "attention_mask" not in batch  # a packed, padding-free row
    labels = batch["labels"]
    n_items = (labels[:, 1:] != -100).sum()
    assert 0 < n_items < labels.numel() / 2  # assistant-only: most tokens are ignored

    # reference: full logits from the same packed inputs, TRL's shift and -100, normalised by num_items_in_batch
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
    naive = -naive_causal_lm_token_logps(logits, labels).sum() / n_items
    naive.backward()
    naive_grads = _grads(model)

    use_fused_linear_ce(trainer, stats=("entropy", "is_top1"))
    fused = trainer.compute_loss(model, dict(batch), num_items_in_batch=n_items)
    fused.backward()
    assert op_calls == [n_items]  # our op ran, on the labelled positions only
    torch.testing.assert_close(fused, naive, **TOL)
    _assert_same_grads(_grads(model), naive_grads)

    # TRL's metrics still come out, with the values the full logits give
    valid = labels[:, 1:] != -100
    logp_all = logits[:, :-1].float().log_softmax(-1)  # (1, seq - 1, vocab)
    accuracy = ((logits[:, :-1].argmax(-1) == labels[:, 1:]) & valid).sum() / valid.sum()
    entropy = (-(logp_all.exp() * logp_all).sum(-1) * valid).sum() / valid.sum()
    assert trainer._metrics["train"]["mean_token_accuracy"][-1] == pytest.approx(accuracy.item(), abs=1e-6)
    assert trainer._metrics["train"]["entropy"][-1] == pytest.approx(entropy.item(), rel=1e-5)


def test_sft_fused_matches_trl_head_with_grad_accumulation(micro_base, stage_data, tmp_path, op_calls):
    """num_items_in_batch (gradient accumulation's token count) divides the loss exactly as in TRL's own head."""
    trainer, model, batch = _sft_trainer(micro_base, stage_data, tmp_path)
    n_items = 3 * (batch["labels"][:, 1:] != -100).sum()  # as if two more micro-batches shared the count
    trl_loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n_items)
    trl_loss.backward()
    trl_grads = _grads(model)
    use_fused_linear_ce(trainer, stats=("entropy", "is_top1"))
    fused = trainer.compute_loss(model, dict(batch), num_items_in_batch=n_items)
    fused.backward()
    assert len(op_calls) == 1
    torch.testing.assert_close(fused, trl_loss, **TOL)
    _assert_same_grads(_grads(model), trl_grads)


@pytest.mark.parametrize("sft_weight", [None, 0.7], ids=["sigmoid", "sigmoid+sft"])
def test_dpo_fused_logps_loss_and_grads_match_full_logits(micro_base, stage_data, tmp_path, op_calls, sft_weight):
    """sigmoid+sft: configs/dpo/tiny.yaml's loss (DPO + NLL of the chosen answer, RPO), a weight other than 1."""
    from trl import DPOTrainer

    from offline_rl.config import DPOStageConfig

    losses = {} if sft_weight is None else {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, sft_weight]}
    args = DPOStageConfig(
        output_dir=str(tmp_path), bf16=False, report_to="none", max_length=256, per_device_train_batch_size=4,
        beta=0.1, seed=0, **losses,
    )  # fmt: skip
    rows = load_records(stage_data["preference"], key="dataset_path", columns=["prompt", "chosen", "rejected"])
    model = load_model(micro_base).train()
    trainer = DPOTrainer(model=model, args=args, train_dataset=rows, processing_class=load_tokenizer(micro_base))
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    with torch.no_grad():  # make the policy differ from the frozen reference, so the log-ratios are not all zero
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=1e-2)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def naive_logps(m):
        return naive_causal_lm_token_logps(m(**inputs, use_cache=False).logits, labels).sum(1)  # (2 * batch,)

    with torch.no_grad():
        ref_chosen, ref_rejected = naive_logps(trainer.ref_model).chunk(2)
    chosen, rejected = naive_logps(model).chunk(2)
    naive = -F.logsigmoid(0.1 * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean()
    if sft_weight is not None:  # mean NLL over the chosen answers' completion tokens
        chosen_labels = labels.chunk(2)[0][:, 1:]
        per_token = naive_causal_lm_token_logps(model(**inputs, use_cache=False).logits, labels).chunk(2)[0]
        naive = naive + sft_weight * -per_token[chosen_labels != -100].mean()
    naive.backward()
    naive_grads = _grads(model)

    use_fused_linear_ce(trainer, stats=("entropy", "mean_logits", "is_top1"))
    with torch.no_grad():
        out = model(**inputs, labels=labels, fused_lm_head=True)
        fused_chosen, fused_rejected = out.log_probs.sum(1).chunk(2)
    torch.testing.assert_close(fused_chosen, chosen.detach(), **TOL)
    torch.testing.assert_close(fused_rejected, rejected.detach(), **TOL)
    assert (chosen < 0).all() and not torch.allclose(chosen, ref_chosen)

    op_calls.clear()
    fused = trainer.compute_loss(model, dict(batch))
    fused.backward()
    assert len(op_calls) == 2  # the policy and the reference model both went through our op
    torch.testing.assert_close(fused, naive, **TOL)
    _assert_same_grads(_grads(model), naive_grads)
    metrics = trainer._metrics["train"]
    assert metrics["logps/chosen"][-1] == pytest.approx(chosen.mean().item(), rel=1e-5)
    assert metrics["logps/rejected"][-1] == pytest.approx(rejected.mean().item(), rel=1e-5)


def test_fused_head_leaves_plain_forward_and_generation_alone(micro_base):
    from qwen25.ops.fused_lm_head import add_fused_linear_ce_head

    model = load_model(micro_base)
    ids = torch.tensor([[5, 9, 13, 2, 7]])
    before = model(input_ids=ids).logits
    add_fused_linear_ce_head(model, stats=("entropy",), temperature=0.7)  # GRPO's case: tempered, with entropy
    torch.testing.assert_close(model(input_ids=ids).logits, before, rtol=0, atol=0)
    labels = ids.masked_fill(torch.tensor([[0, 0, 1, 1, 1]]) == 0, -100)  # score the last three tokens only
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    tempered = before / 0.7
    torch.testing.assert_close(out.log_probs, naive_causal_lm_token_logps(tempered, labels), **TOL)
    logp = tempered[:, :-1].log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1) * (labels[:, 1:] != -100)
    torch.testing.assert_close(out.entropy, entropy, **TOL)
    assert out.log_probs[0, 0] == 0 and out.log_probs[0, 1] < 0
    assert model.generate(ids, max_new_tokens=2, do_sample=False).shape == (1, 7)
    with pytest.raises(ValueError, match="unknown stats"):
        add_fused_linear_ce_head(model, stats=("entropies",))


@pytest.mark.e2e
def test_sft_stage_with_fused_linear_ce_trains_like_the_default(micro_base, stage_data, tmp_path, op_calls):
    """Two optimizer steps through `python -m sft` with and without the switch: the same losses and weights."""
    from safetensors.torch import load_file

    from sft.__main__ import main

    runs = {}
    for fused in ("false", "true"):
        out = tmp_path / f"fused_{fused}"
        main(
            [
                "--config", "configs/sft/tiny.yaml", "--model_name_or_path", str(micro_base),
                "--dataset_path", str(stage_data["sft"]), "--output_dir", str(out), "--max_steps", "2",
                "--per_device_train_batch_size", "2", "--max_length", "256", "--report_to", "none",
                "--logging_steps", "1", "--fused_linear_ce", fused,
            ]
        )  # fmt: skip
        logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert (len(op_calls) > 0) == (fused == "true")  # `--fused_linear_ce true` switches the stage to our op
        runs[fused] = ([r["loss"] for r in logs if "loss" in r], load_file(str(out / "model.safetensors")))
    (losses, weights), (fused_losses, fused_weights) = runs["false"], runs["true"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert fused_losses == pytest.approx(losses, rel=1e-5)
    for name in weights:
        torch.testing.assert_close(fused_weights[name], weights[name], rtol=1e-4, atol=1e-5)


def test_grpo_fused_logps_and_entropies_match_full_logits(micro_base, stage_data, tmp_path, op_calls):
    """GRPO scores completions at its sampling temperature: log-probs, entropies and their gradient vs logits / T."""
    from datasets import load_from_disk
    from trl import GRPOTrainer

    from online_rl.config import GRPOStageConfig

    tok = load_tokenizer(micro_base)
    tok.padding_side = "left"
    model = load_model(micro_base).train()
    args = GRPOStageConfig(
        output_dir=str(tmp_path), bf16=False, report_to="none", per_device_train_batch_size=4, num_generations=4,
        max_completion_length=8, temperature=0.7,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)], args=args,
        train_dataset=load_from_disk(str(stage_data["rl_queries"])), processing_class=tok,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 300, (3, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a left-padded row
    keep = 5  # completion length: the last 5 tokens are scored

    labels = ids.masked_fill(mask == 0, -100)
    logits = model(input_ids=ids, attention_mask=mask).logits / 0.7  # (3, 12, vocab), tempered
    naive = naive_causal_lm_token_logps(logits, labels)[:, -keep:]
    logp = logits[:, :-1].log_softmax(-1)[:, -keep:]
    naive_entropy = -(logp.exp() * logp).sum(-1)
    weights = torch.randn(3, keep, generator=gen)  # per-token advantages: a non-uniform grad_output
    (naive * weights).sum().backward()
    naive_grads = _grads(model)

    use_fused_linear_ce(trainer, stats=("entropy",), temperature=trainer.temperature)
    logps, entropy, _ = trainer._get_per_token_logps_and_entropies(model, ids, mask, keep, compute_entropy=True)
    (logps * weights).sum().backward()
    assert len(op_calls) == 1
    torch.testing.assert_close(logps, naive, **TOL)
    torch.testing.assert_close(entropy, naive_entropy, **TOL)
    _assert_same_grads(_grads(model), naive_grads)
