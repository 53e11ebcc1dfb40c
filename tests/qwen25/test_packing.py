"""Packed log-prob passes (qwen25/packing.py) against the padded pass they replace, on the micro architecture in fp32.

The batch is GRPO's layout, ragged on purpose: left-padded prompts of 1 to 8 tokens, right-padded completions of
0 (all padding), 1, 2, 4, 7 and 10 tokens. The reference is the padded forward's full logits (divided by the
temperature, log-softmax, gather), which is what TRL's fused head computes in tiles.
"""

from __future__ import annotations

import os

import pytest
import torch

from qwen25.attention import registration
from qwen25.model import build_model, load_preset, make_config
from qwen25.packing import NotPackable, packed_fused_forward, packed_token_logps, plan_packs

MICRO = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 512,
}  # fmt: skip
VOCAB = 320
PROMPT_LENS = [8, 3, 1, 5, 6, 2]
COMPLETION_LENS = [10, 1, 4, 0, 2, 7]  # 0: a completion masked out entirely (TRL's mask_truncated_completions)
P, C = max(PROMPT_LENS), max(COMPLETION_LENS)
TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def model():
    return build_model(make_config(load_preset("tiny"), vocab_size=VOCAB, **MICRO), seed=0).eval()


def ragged_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P + C) ids and attention mask: prompts left-padded, completions right-padded, as GRPO builds them."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (len(PROMPT_LENS), P + C), generator=gen)
    mask = torch.zeros_like(ids)
    for row, (p, c) in enumerate(zip(PROMPT_LENS, COMPLETION_LENS)):
        mask[row, P - p : P + c] = 1
    return ids, mask


def padded_reference(model, ids, mask, temperature: float = 1.0):
    """(B, C) log-probs and entropies of the completion tokens from the padded forward's full logits."""
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :P] = -100
    scored = labels[:, 1:] != -100  # (B, L - 1)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1] / temperature
    logp = logits.float().log_softmax(-1)
    token = logp.gather(-1, labels[:, 1:].clamp(min=0)[..., None]).squeeze(-1) * scored
    entropy = -(logp.exp() * logp).sum(-1) * scored
    return token[:, -C:], entropy[:, -C:]


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize(
    "layout",
    [{}, {"rows_per_pack": 2}, {"max_tokens": 12}, {"rows_per_pack": 1}],
    ids=["one_pack", "rows_per_pack_2", "max_tokens_12", "row_per_pack"],
)
def test_packed_logps_and_entropies_match_padded(model, temperature, layout):
    ids, mask = ragged_batch()
    want_logps, want_entropy = padded_reference(model, ids, mask, temperature)
    logps, entropy = packed_token_logps(model, ids, mask, C, temperature=temperature, compute_entropy=True, **layout)
    assert logps.shape == entropy.shape == (len(PROMPT_LENS), C)
    torch.testing.assert_close(logps, want_logps, **TOL)
    torch.testing.assert_close(entropy, want_entropy, **TOL)
    completion = mask[:, P:].bool()
    assert (logps[~completion] == 0).all() and (entropy[~completion] == 0).all()  # padding stays 0
    assert (logps[completion] < 0).all() and (logps[3] == 0).all()  # row 3: nothing to score
    diffs = (logps - want_logps).abs().max(), (entropy - want_entropy).abs().max()
    print(f"max |diff| logps {diffs[0]:.2e} entropy {diffs[1]:.2e}")


def test_packed_gradients_match_padded(model):
    ids, mask = ragged_batch(1)
    weights = torch.randn(len(PROMPT_LENS), C, generator=torch.Generator().manual_seed(2))  # per-token advantages
    want_logps, want_entropy = padded_reference(model, ids, mask, 0.7)
    ((want_logps * weights).sum() + 0.1 * want_entropy.sum()).backward()
    want = _grads(model)
    logps, entropy = packed_token_logps(model, ids, mask, C, temperature=0.7, compute_entropy=True, rows_per_pack=4)
    ((logps * weights).sum() + 0.1 * entropy.sum()).backward()
    got = _grads(model)
    assert got.keys() == want.keys() and len(got) > 10
    worst = 0.0
    for name in want:
        torch.testing.assert_close(got[name], want[name], **TOL, msg=lambda m, name=name: f"{name}: {m}")
        worst = max(worst, ((got[name] - want[name]).abs().max() / want[name].abs().max().clamp(min=1e-12)).item())
    print(f"max relative grad diff {worst:.2e}")


def test_packed_fused_head_matches_the_padded_fused_call():
    """Through TRL's fused head (what the trainers call): every per-token field, the loss and their gradients."""
    from trl.trainer.utils import add_fused_lm_head

    model = build_model(make_config(load_preset("tiny"), vocab_size=VOCAB, **MICRO), seed=0)
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    ids, mask = ragged_batch(3)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :P] = -100
    want = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    want.loss.backward()
    want_grads = _grads(model)
    got = packed_fused_forward(model, ids, mask, labels, rows_per_pack=3)
    got.loss.backward()
    assert type(got) is type(want)
    for name in ("log_probs", "entropy", "mean_logits"):
        torch.testing.assert_close(got[name], want[name], **TOL)
    assert torch.equal(got.is_top1, want.is_top1) and torch.equal(got.label_mask, want.label_mask)
    torch.testing.assert_close(got.loss, want.loss, **TOL)
    for name, grad in want_grads.items():
        torch.testing.assert_close(model.get_parameter(name).grad, grad, **TOL)
    # the same through packed_token_logps (GRPO's entry point); the head holds the temperature
    logps, entropy = packed_token_logps(model, ids, mask, C, compute_entropy=True, fused_lm_head=True)
    torch.testing.assert_close(logps, want.log_probs[:, -C:], **TOL)
    torch.testing.assert_close(entropy, want.entropy[:, -C:], **TOL)
    with pytest.raises(ValueError, match="temperature"):
        packed_token_logps(model, ids, mask, C, temperature=0.7, fused_lm_head=True)


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_packing_removes_cross_sequence_attention(model, monkeypatch, backend):
    """Rows 0 and 1 share a pack: changing row 0's tokens leaves row 1's log-probs exactly as they were.

    "auto" on CPU runs one SDPA call per segment (cu_seq_lens); "reference" builds the block-causal mask from the
    segments. The control (the same packed row, positions 0..T-1 and no boundaries) does see row 0's change.
    """
    monkeypatch.setattr(registration, "BACKEND", backend)
    ids, mask = ragged_batch(4)
    with torch.no_grad():
        before, _ = packed_token_logps(model, ids, mask, C)
        changed = ids.clone()
        changed[0] = (changed[0] + 7) % VOCAB
        after, _ = packed_token_logps(model, changed, mask, C)
        assert not torch.allclose(after[0], before[0])
        torch.testing.assert_close(after[1:], before[1:], rtol=0, atol=1e-6)

        # control: rows 0 and 1 concatenated as one plain sequence; row 1's tokens then attend to row 0's
        pack = plan_packs(mask[:2])[0]
        plain = [model(input_ids=pack.gather(t)).logits[0, -1] for t in (ids[:2], changed[:2])]
        assert not torch.allclose(plain[0], plain[1], atol=1e-4)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="CPU tensors: interpreter only")
def test_packed_logps_through_the_triton_kernel(model, monkeypatch):
    """The CUDA path: BACKEND="triton" runs our varlen kernel on the packed row (segments from cu_seq_lens) and on the
    padded batch (unpadded from its 2D mask); fp32 under the interpreter, forward only (~5 s)."""
    monkeypatch.setattr(registration, "BACKEND", "triton")
    ids, mask = ragged_batch(6)
    with torch.no_grad():
        want_logps, want_entropy = padded_reference(model, ids, mask, 0.7)
        logps, entropy = packed_token_logps(model, ids, mask, C, temperature=0.7, compute_entropy=True)
    torch.testing.assert_close(logps, want_logps, **TOL)
    torch.testing.assert_close(entropy, want_entropy, **TOL)
    monkeypatch.setattr(registration, "BACKEND", "reference")
    with torch.no_grad():
        torch.testing.assert_close(padded_reference(model, ids, mask, 0.7)[0], want_logps, **TOL)  # kernel = reference


def test_position_id_resets_alone_separate_sequences(model):
    """A packed row with only restarting position_ids (no cu_seq_lens, as the brief of our attention says) computes
    each sequence as if it ran alone."""
    ids, mask = ragged_batch(5)
    pack = plan_packs(mask[:3])[0]
    with torch.no_grad():
        packed = model(input_ids=pack.gather(ids[:3]), position_ids=pack.position_ids).logits[0]  # (T, vocab)
        bounds = pack.cu_seqlens.tolist()
        for row, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
            alone = model(input_ids=ids[row, mask[row].bool()][None]).logits[0]
            torch.testing.assert_close(packed[start:end], alone, **TOL)


def test_plan_packs_layout():
    _, mask = ragged_batch()
    lengths = [p + c for p, c in zip(PROMPT_LENS, COMPLETION_LENS)]
    one = plan_packs(mask)
    assert len(one) == 1 and one[0].num_tokens == sum(lengths) and one[0].max_len == max(lengths)
    assert one[0].position_ids[0, : lengths[0] + 1].tolist() == [*range(lengths[0]), 0]
    assert one[0].cu_seqlens.tolist() == [0, *torch.tensor(lengths).cumsum(0).tolist()]
    # rows_per_pack: ceil(B / n) packs whatever is skipped (the same forwards on every rank)
    skip = [c == 0 for c in COMPLETION_LENS]
    packs = plan_packs(mask, rows_per_pack=4, skip=skip)
    assert [p.rows.tolist() for p in packs] == [[0, 1, 2], [4, 5]]
    assert len(plan_packs(mask, rows_per_pack=1, skip=[True] * 6)) == 6  # all skipped: every pack still runs
    # max_tokens: greedy in row order, never over the budget unless one row alone is longer
    packs = plan_packs(mask, max_tokens=12)
    assert [p.rows.tolist() for p in packs] == [[0], [1, 2], [3], [4], [5]]
    assert all(p.num_tokens <= 12 or len(p.rows) == 1 for p in packs)
    holes = mask.clone()
    holes[0, P] = 0  # a hole inside row 0's completion
    with pytest.raises(NotPackable, match=r"rows \[0\]"):
        plan_packs(holes)
