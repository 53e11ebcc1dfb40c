"""DPO with `padding_free: true` (offline_rl/packed.py): the packed policy and reference passes give TRL's padded
loss, metrics and gradients, on pairs whose lengths differ ~20x, fp32 on the micro model."""

from __future__ import annotations

import logging

import pytest
import torch
from datasets import Dataset

from offline_rl.packed import packed_dpo_trainer_class
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer

TOL = {"rtol": 1e-5, "atol": 1e-5}
REPEATS = [(1, 9), (14, 2), (3, 3), (0, 12), (6, 1), (20, 5)]  # (chosen, rejected) sentences; 0: a bare number


def ragged_pairs() -> Dataset:
    rows = []
    for a, (n_chosen, n_rejected) in enumerate(REPEATS):
        prompt = [{"role": "user", "content": f"Sam has {a} apples and gets 2 more. How many?" + " Please." * a}]
        right, wrong = f"{a} + 2 = {a + 2}. ", f"{a} + 2 = {a + 3}. "
        rows.append({
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": (right * n_chosen) or str(a + 2)}],
            "rejected": [{"role": "assistant", "content": wrong * n_rejected}],
        })  # fmt: skip
    return Dataset.from_list(rows)


@pytest.fixture(scope="module")
def trainer(micro_base, tmp_path_factory):
    from trl import DPOTrainer

    from offline_rl.config import DPOStageConfig

    args = DPOStageConfig(
        output_dir=str(tmp_path_factory.mktemp("dpo_packed")), bf16=False, report_to="none", max_length=512,
        per_device_train_batch_size=len(REPEATS), beta=0.1, seed=0, loss_type=["sigmoid", "sft"],
        loss_weights=[1.0, 0.7], padding_free=True, precompute_ref_log_probs=False, ref_logprob_cache=False,
    )  # fmt: skip
    model = load_model(micro_base).train()
    trainer_cls = packed_dpo_trainer_class(DPOTrainer)
    logs = []
    handler = logging.Handler()
    handler.emit = lambda record: logs.append(record.getMessage())
    trl_logger = logging.getLogger("trl.trainer.dpo_trainer")
    trl_logger.addHandler(handler)
    try:
        trainer = trainer_cls(
            model=model, args=args, train_dataset=ragged_pairs(), processing_class=load_tokenizer(micro_base)
        )
    finally:
        trl_logger.removeHandler(handler)
    trainer.test_init_logs = logs
    with torch.no_grad():  # make the policy differ from the frozen reference, so the log-ratios are not all zero
        for p in model.parameters():
            p.add_(torch.randn_like(p), alpha=1e-2)
    return trainer


def _batch(trainer):
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    lengths = batch["attention_mask"].sum(1)
    assert lengths.max() > 3 * lengths.min()  # ragged: most of the padded rectangle is padding
    return batch


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def test_padding_free_is_ours_not_trls(trainer):
    assert not any("padding_free" in line for line in trainer.test_init_logs)  # TRL's "disabled" warning not logged
    assert trainer.args.padding_free is True and trainer.padding_free is True and trainer.packed_logps


def _count_packed_calls(monkeypatch) -> list[tuple]:
    """Spy on offline_rl.packed's packed forward: (batch shape) per packed call."""
    from offline_rl import packed

    calls, real = [], packed.packed_fused_forward

    def spy(model, input_ids, *args, **kwargs):
        calls.append(input_ids.shape)
        return real(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(packed, "packed_fused_forward", spy)
    return calls


def test_packed_dpo_loss_metrics_and_grads_match_padded(trainer, monkeypatch, same_grads):
    model, batch = trainer.model, _batch(trainer)
    calls = _count_packed_calls(monkeypatch)
    head = model.forward  # TRL's fused head
    results = {}
    for packed in (False, True):
        trainer.packed_logps = packed
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
        results[packed] = loss.detach(), metrics, _grads(model)
    trainer.packed_logps = True
    assert calls == [batch["input_ids"].shape] * 2  # the packed run only: policy and reference
    assert "forward" in model.__dict__ and model.forward == head  # the packing patch is gone after the pass
    (want, want_metrics, want_grads), (got, got_metrics, got_grads) = results[False], results[True]
    torch.testing.assert_close(got, want, **TOL)
    for name in ("logps/chosen", "logps/rejected", "rewards/margins", "entropy", "mean_token_accuracy"):
        if name in want_metrics:
            assert got_metrics[name] == pytest.approx(want_metrics[name], rel=1e-5, abs=1e-6), name
    worst = same_grads(got_grads, want_grads, **TOL)
    print(f"loss {want.item():.6f} |diff| {(got - want).abs().item():.2e}, max relative grad diff {worst:.2e}")


def test_packed_reference_pass_matches_padded(trainer, monkeypatch):
    """`compute_ref_log_probs` (the precomputed reference pass, also the ref log-prob cache's) packed vs padded."""
    batch = _batch(trainer)
    calls, head = [], trainer.ref_model.forward
    spy = lambda *a, **k: calls.append(k["input_ids"].shape) or head(*a, **k)  # noqa: E731
    monkeypatch.setattr(trainer.ref_model, "forward", spy)
    results = {}
    for packed in (False, True):
        trainer.packed_logps = packed
        results[packed] = trainer.compute_ref_log_probs(trainer.ref_model, batch)
    trainer.packed_logps = True
    for want, got in zip(results[False], results[True]):
        torch.testing.assert_close(got, want, **TOL)
    print(f"max |diff| ref logps {max((g - w).abs().max().item() for w, g in zip(results[False], results[True])):.2e}")
    padded, packed = calls  # one forward each; the packed one is a single row of the real tokens only
    assert packed == (1, int(batch["attention_mask"].sum())) and padded == batch["input_ids"].shape


def test_packed_dpo_with_lora_matches_padded(micro_base, tmp_path, monkeypatch):
    """`use_peft: true`: the fused head sits on the PEFT base model, the reference is the policy with its adapter off
    (`use_adapter` around `self.model(...)`); both passes pack, and the adapter's gradients match."""
    from trl import DPOTrainer

    from offline_rl.config import DPOStageConfig

    args = DPOStageConfig(
        output_dir=str(tmp_path), bf16=False, report_to="none", max_length=512, per_device_train_batch_size=4,
        beta=0.1, seed=0, padding_free=True, precompute_ref_log_probs=False, ref_logprob_cache=False,
        use_peft=True, lora_r=4, lora_dropout=0.0,
    )  # fmt: skip
    trainer = packed_dpo_trainer_class(DPOTrainer)(
        model=load_model(micro_base).train(), args=args, train_dataset=ragged_pairs(),
        processing_class=load_tokenizer(micro_base), peft_config=args.lora_config(),
    )  # fmt: skip
    model = trainer.model
    with torch.no_grad():  # LoRA B starts at zero (policy == reference): move it
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(torch.randn_like(p), alpha=1e-1)
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    calls = _count_packed_calls(monkeypatch)
    results = {}
    for packed in (False, True):
        trainer.packed_logps = packed
        loss = trainer.compute_loss(model, dict(batch))
        loss.backward()
        results[packed] = loss.detach(), _grads(model)
    assert len(calls) == 2  # policy, and reference (adapter off), packed
    (want, want_grads), (got, got_grads) = results[False], results[True]
    assert want_grads and all("lora_" in name for name in want_grads)
    assert want.item() != pytest.approx(0.6931, abs=1e-4)  # not log(2): policy and reference differ
    torch.testing.assert_close(got, want, **TOL)
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, **TOL, msg=lambda m, name=name: f"{name}: {m}")
