"""GRPO's packed log-prob passes (online_rl/packed.py) against TRL's padded ones on the same trainer, fp32.

`T(PackedLogpsMixin, GRPOTrainer)` with `args.padding_free` switched per call: the per-token log-probs and
entropies of a ragged batch (completions of 0 to 10 tokens, prompts of 1 to 8, left/right padded as TRL builds
them), then `_compute_loss` and the gradients of every parameter.
"""

from __future__ import annotations

import logging

import pytest
import torch

from online_rl.packed import PackedLogpsMixin
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer

PROMPT_LENS = [8, 3, 1, 5, 6, 2, 4, 7]
COMPLETION_LENS = [10, 1, 4, 0, 2, 7, 9, 3]
P, C = max(PROMPT_LENS), max(COMPLETION_LENS)
TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def trainer(micro_base, stage_data, tmp_path_factory):
    from datasets import load_from_disk
    from trl import GRPOTrainer

    from online_rl.config import GRPOStageConfig

    class T(PackedLogpsMixin, GRPOTrainer):
        pass

    tok = load_tokenizer(micro_base)
    tok.padding_side = "left"
    args = GRPOStageConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo_packed")), bf16=False, report_to="none",
        per_device_train_batch_size=8, num_generations=4, max_completion_length=C, temperature=0.7,
        loss_type="dapo", beta=0.04,
    )  # fmt: skip
    return T(
        model=load_model(micro_base).train(), reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
        args=args, train_dataset=load_from_disk(str(stage_data["rl_queries"])), processing_class=tok,
    )  # fmt: skip


def ragged_inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rows = len(PROMPT_LENS)
    prompt_ids = torch.randint(1, 300, (rows, P), generator=gen)
    completion_ids = torch.randint(1, 300, (rows, C), generator=gen)
    prompt_mask, completion_mask = torch.zeros_like(prompt_ids), torch.zeros_like(completion_ids)
    for row, (p, c) in enumerate(zip(PROMPT_LENS, COMPLETION_LENS)):
        prompt_mask[row, P - p :] = 1
        completion_mask[row, :c] = 1
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
            "completion_mask": completion_mask}  # fmt: skip


def _logps(trainer, padding_free: bool, model=None, **kwargs):
    trainer.args.padding_free = padding_free
    batch = ragged_inputs()
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    return trainer._get_per_token_logps_and_entropies(model or trainer.model, ids, mask, C, **kwargs)


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("batch_size", [None, 3], ids=["one_pack", "micro_batches"])
def test_packed_logps_and_entropies_match_trl(trainer, batch_size, monkeypatch):
    with torch.no_grad():
        want_logps, want_entropy, want_aux = _logps(trainer, False, batch_size=batch_size, compute_entropy=True)
        calls, head = [], trainer.model.forward  # the fused head TRL installed: count the packed forwards
        spy = lambda *a, **k: calls.append(k["input_ids"].shape) or head(*a, **k)  # noqa: E731
        monkeypatch.setattr(trainer.model, "forward", spy)
        logps, entropy, aux = _logps(trainer, True, batch_size=batch_size, compute_entropy=True)
    assert want_aux is None and aux is None
    torch.testing.assert_close(logps, want_logps, **TOL)
    torch.testing.assert_close(entropy, want_entropy, **TOL)
    assert logps.shape == (len(PROMPT_LENS), C) and (logps[3] == 0).all()
    # one packed row per TRL micro-batch (3 rows -> ceil(8 / 3) forwards), no padding in it
    tokens = sum(PROMPT_LENS[r] + COMPLETION_LENS[r] for r in range(len(PROMPT_LENS)) if COMPLETION_LENS[r])
    assert len(calls) == (1 if batch_size is None else 3) and all(shape[0] == 1 for shape in calls)
    assert sum(shape[1] for shape in calls) == tokens  # row 3 (nothing to score) left out
    diffs = (logps - want_logps).abs().max(), (entropy - want_entropy).abs().max()
    print(f"max |diff| logps {diffs[0]:.2e} entropy {diffs[1]:.2e}")

    # the reference model's head computes no entropy: its pass (compute_entropy=False) works packed too
    with torch.no_grad():
        ref_want, _, _ = _logps(trainer, False, model=trainer.ref_model, batch_size=batch_size)
        ref_got, none, _ = _logps(trainer, True, model=trainer.ref_model, batch_size=batch_size)
    assert none is None
    torch.testing.assert_close(ref_got, ref_want, **TOL)


def test_packed_compute_loss_and_grads_match_trl(trainer, same_grads):
    model = trainer.model
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(); the dapo normaliser reads it
    inputs = ragged_inputs(1)
    with torch.no_grad():  # an old policy and a reference that differ from the policy: ratios and KL are not trivial
        ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
        mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
        trainer.args.padding_free = False
        logps, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, mask, C)
    gen = torch.Generator().manual_seed(3)
    inputs["old_per_token_logps"] = logps + 0.05 * torch.randn(logps.shape, generator=gen)
    inputs["ref_per_token_logps"] = logps + 0.1 * torch.randn(logps.shape, generator=gen)
    inputs["advantages"] = torch.randn(len(PROMPT_LENS), generator=gen)
    inputs["num_items_in_batch"] = inputs["completion_mask"].sum()

    results = {}
    for padding_free in (False, True):
        trainer.args.padding_free = padding_free
        loss = trainer._compute_loss(model, dict(inputs))
        loss.backward()
        results[padding_free] = loss.detach(), _grads(model)
    (want, want_grads), (got, got_grads) = results[False], results[True]
    torch.testing.assert_close(got, want, **TOL)
    worst = same_grads(got_grads, want_grads, **TOL)
    print(f"loss {want.item():.6f} |diff| {(got - want).abs().item():.2e}, max relative grad diff {worst:.2e}")


def test_falls_back_to_trl(trainer, monkeypatch, caplog):
    from trl import GRPOTrainer

    calls = []
    real = GRPOTrainer._get_per_token_logps_and_entropies

    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", spy)
    with torch.no_grad():
        _logps(trainer, False)
        assert len(calls) == 1  # padding_free false
        _logps(trainer, True, pixel_values=None, num_images=None, compute_aux_loss=False)
        assert len(calls) == 1  # absent multimodal inputs (TRL passes None) still pack
        with pytest.raises(Exception):  # present ones go to TRL (this text model then refuses the pixels)
            _logps(trainer, True, pixel_values=torch.zeros(1, 3))
        assert len(calls) == 2
        trainer.args.padding_free = True
        batch = ragged_inputs()
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        mask[0, P + 2] = 0  # a hole in row 0: not packable
        with caplog.at_level(logging.WARNING, logger="online_rl.packed"):
            trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, C)
    assert len(calls) == 3 and "contiguous" in caplog.text


def test_packed_through_our_fused_linear_ce_head(trainer):
    """`fused_linear_ce: true` swaps TRL's head for ours (qwen25/ops); the packed pass runs through whichever head is
    in place, temperature and entropy included. (Last in the file: it switches the module's trainer to our head.)"""
    from qwen25.ops.fused_lm_head import use_fused_linear_ce

    use_fused_linear_ce(trainer, stats=("entropy",), temperature=trainer.temperature)
    with torch.no_grad():
        want_logps, want_entropy, _ = _logps(trainer, False, compute_entropy=True)
        logps, entropy, _ = _logps(trainer, True, compute_entropy=True)
    torch.testing.assert_close(logps, want_logps, **TOL)
    torch.testing.assert_close(entropy, want_entropy, **TOL)
