"""Our attention against transformers' eager attention on the same weights (fp32, max |logit diff| <= 1e-5).

Padded batches, packed rows vs. the same sequences one by one (boundaries from position_ids resets and from
cu_seq_lens), and greedy generation with a KV cache.
"""

from __future__ import annotations

import pytest
import torch

from qwen25 import ATTN_IMPLEMENTATION
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer

TOL = 1e-5


@pytest.fixture(scope="module")
def models(micro_base):
    ours = load_model(micro_base).eval()
    eager = load_model(micro_base, attn_implementation="eager").eval()
    assert ours.config._attn_implementation == ATTN_IMPLEMENTATION
    assert eager.config._attn_implementation == "eager"
    return ours, eager


def _sequences(lengths: list[int], vocab: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab - 30, (n,), generator=g) for n in lengths]


def _pad(seqs: list[torch.Tensor], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(width - len(s), width) if side == "left" else slice(0, len(s))
        ids[i, sl], mask[i, sl] = s, 1
    return ids, mask


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_matches_eager(models, side):
    ours, eager = models
    seqs = _sequences([1, 17, 9, 30], ours.config.vocab_size)
    ids, mask = _pad(seqs, pad_id=0, side=side)
    with torch.no_grad():
        a = ours(input_ids=ids, attention_mask=mask).logits
        b = eager(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    diff = (a[real] - b[real]).abs().max().item()
    assert diff <= TOL, diff
    assert torch.isfinite(a).all()  # fully padded query rows give zeros, not NaN


def _one_by_one(model, seqs) -> list[torch.Tensor]:
    with torch.no_grad():
        return [model(input_ids=s[None]).logits[0] for s in seqs]


@pytest.mark.parametrize("use_cache", [False, True])
def test_packed_row_from_position_id_resets(models, use_cache):
    """A packed row (position_ids restart per segment, no mask) equals each sequence run alone under eager."""
    ours, eager = models
    seqs = _sequences([5, 17, 1, 11], ours.config.vocab_size, seed=1)
    packed = torch.cat(seqs)[None]  # (1, total)
    position_ids = torch.cat([torch.arange(len(s)) for s in seqs])[None]  # (1, total)
    with torch.no_grad():
        out = ours(input_ids=packed, position_ids=position_ids, use_cache=use_cache).logits[0]
    start = 0
    for ref in _one_by_one(eager, seqs):
        got = out[start : start + len(ref)]
        assert (got - ref).abs().max().item() <= TOL
        start += len(ref)


def test_packed_row_from_cu_seq_lens(models):
    """TRL's padding-free collator passes cu_seq_lens_q/k; boundaries come from them."""
    ours, eager = models
    seqs = _sequences([13, 2, 8], ours.config.vocab_size, seed=2)
    packed = torch.cat(seqs)[None]
    lengths = torch.tensor([len(s) for s in seqs])
    cu = torch.cat([torch.zeros(1, dtype=torch.int32), lengths.cumsum(0).to(torch.int32)])
    position_ids = torch.cat([torch.arange(len(s)) for s in seqs])[None]
    with torch.no_grad():
        out = ours(
            input_ids=packed,
            position_ids=position_ids,
            cu_seq_lens_q=cu,
            cu_seq_lens_k=cu,
            max_length_q=int(lengths.max()),
            max_length_k=int(lengths.max()),
            use_cache=False,
        ).logits[0]
    refs = _one_by_one(eager, seqs)
    assert (out - torch.cat(refs)).abs().max().item() <= TOL


@pytest.mark.parametrize("use_cache", [False, True])
def test_no_token_attends_across_a_packed_boundary(models, use_cache):
    """Changing every token of one segment leaves the other segments' logits bit-for-bit unchanged."""
    ours, _ = models
    seqs = _sequences([7, 9, 6], ours.config.vocab_size, seed=3)
    position_ids = torch.cat([torch.arange(len(s)) for s in seqs])[None]
    altered = [seqs[0], (seqs[1] + 5) % 300, seqs[2]]
    with torch.no_grad():
        a = ours(input_ids=torch.cat(seqs)[None], position_ids=position_ids, use_cache=use_cache).logits[0]
        b = ours(input_ids=torch.cat(altered)[None], position_ids=position_ids, use_cache=use_cache).logits[0]
    first, third = slice(0, 7), slice(16, 22)
    assert torch.equal(a[first], b[first]) and torch.equal(a[third], b[third])
    assert not torch.allclose(a[7:16], b[7:16])  # the altered segment itself did change


def test_greedy_generation_with_kv_cache_matches_eager(models, micro_base):
    ours, eager = models
    tok = load_tokenizer(micro_base)
    prompts = [
        [{"role": "user", "content": "Sam has 3 apples and gets 4 more."}],
        [{"role": "user", "content": "Mia had 9 pens"}],
    ]
    tok.padding_side = "left"
    texts = [tok.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in prompts]
    batch = tok(texts, return_tensors="pt", padding=True)
    assert (batch["attention_mask"] == 0).any()  # really left-padded
    kwargs = dict(max_new_tokens=24, do_sample=False, min_new_tokens=24, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        a = ours.generate(**batch, **kwargs)
        b = eager.generate(**batch, **kwargs)
    assert a.shape[1] == batch["input_ids"].shape[1] + 24
    assert torch.equal(a, b)
    # and the cached decode equals a full no-cache recomputation of the same continuation
    with torch.no_grad():
        full_mask = torch.cat([batch["attention_mask"], torch.ones_like(a[:, batch["input_ids"].shape[1] :])], 1)
        c = ours(input_ids=a, attention_mask=full_mask, use_cache=False).logits
        e = eager(input_ids=a, attention_mask=full_mask, use_cache=False).logits
    real = full_mask.bool()
    assert (c[real] - e[real]).abs().max().item() <= TOL


def test_packed_row_under_inference_mode(models):
    """Inference tensors have no version counter; the varlen plan must not need one (reward service, eval)."""
    ours, _ = models
    seqs = _sequences([7, 3, 9], ours.config.vocab_size, seed=3)
    packed = torch.cat(seqs)[None]
    position_ids = torch.cat([torch.arange(len(s)) for s in seqs])[None]
    with torch.no_grad():
        expected = ours(input_ids=packed, position_ids=position_ids).logits
    with torch.inference_mode():
        got = ours(input_ids=packed, position_ids=position_ids.clone()).logits  # clone: an inference tensor
        plain = ours(input_ids=torch.stack([seqs[0], seqs[0]])).logits  # position_ids made inside: inference
    assert (got - expected).abs().max().item() == 0.0
    with torch.no_grad():
        assert (plain - ours(input_ids=torch.stack([seqs[0], seqs[0]])).logits).abs().max().item() == 0.0
