"""Fused linear cross-entropy against the naive computation (full logits + F.cross_entropy): loss and gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qwen25.ops import fused_linear_cross_entropy, fused_linear_token_stats
from qwen25.ops.fused_linear_ce import default_chunk_size

TOL = {"rtol": 1e-5, "atol": 1e-5}


def _inputs(n, hidden, vocab, *, bias, dtype=torch.float32, masked=0.25, seed=0):
    gen = torch.Generator().manual_seed(seed)
    h = (torch.randn(n, hidden, generator=gen) / math.sqrt(hidden) * 3).to(dtype).requires_grad_()
    w = torch.randn(vocab, hidden, generator=gen).to(dtype).requires_grad_()
    b = torch.randn(vocab, generator=gen).to(dtype).requires_grad_() if bias else None
    target = torch.randint(0, vocab, (n,), generator=gen)
    target[torch.rand(n, generator=gen) < masked] = -100
    return h, w, b, target


def _grad_out(n, seed=1):
    """A non-uniform, reproducible per-token grad_output."""
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


def _naive(h, w, b, target, reduction, temperature=1.0):
    logits = F.linear(h, w, b).float() / temperature  # (n, vocab): what the fused op never holds
    return F.cross_entropy(logits, target, reduction=reduction, ignore_index=-100)


def _grads(loss, params, grad_output=None):
    params = [p for p in params if p is not None]
    return torch.autograd.grad(loss, params, grad_output)


# 37 tokens in chunks of 8: the last chunk is partial; vocab 101 is not a power of two
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_matches_naive_fp32(reduction, bias, temperature):
    h, w, b, target = _inputs(37, 24, 101, bias=bias)
    grad_out = _grad_out(37) if reduction == "none" else None  # non-uniform per-token weights
    fused = fused_linear_cross_entropy(h, w, target, b, reduction=reduction, temperature=temperature, chunk_size=8)
    naive = _naive(h, w, b, target, reduction, temperature)
    torch.testing.assert_close(fused, naive, **TOL)
    for got, want in zip(_grads(fused, (h, w, b), grad_out), _grads(naive, (h, w, b), grad_out), strict=True):
        torch.testing.assert_close(got, want, **TOL)


def test_reduction_none_uses_the_per_token_grad_output():
    """The Liger bug: a backward that assumes a scalar loss. Weight token i by i; its hidden gradient scales by i."""
    h, w, _, target = _inputs(6, 8, 11, bias=False, masked=0.0)
    per_token = fused_linear_cross_entropy(h, w, target, reduction="none", chunk_size=4)
    (grad_weighted,) = torch.autograd.grad(per_token, h, torch.arange(6.0))
    (grad_ones,) = torch.autograd.grad(fused_linear_cross_entropy(h, w, target, reduction="none"), h, torch.ones(6))
    torch.testing.assert_close(grad_weighted, grad_ones * torch.arange(6.0)[:, None], **TOL)
    assert grad_weighted[0].abs().max() == 0  # weight 0: no gradient at all, not the mean's


def test_ignored_tokens_give_zero_loss_and_no_gradient():
    h, w, b, target = _inputs(10, 8, 13, bias=True, masked=0.0)
    target[[2, 7]] = -100
    per_token = fused_linear_cross_entropy(h, w, target, b, reduction="none", chunk_size=3)
    assert per_token[2] == 0 and per_token[7] == 0 and (per_token[target != -100] > 0).all()
    (grad_h,) = torch.autograd.grad(per_token, h, _grad_out(10))  # nonzero grad_output at ignored tokens too
    assert grad_h[[2, 7]].abs().max() == 0
    mean = fused_linear_cross_entropy(h, w, target, b, reduction="mean")
    torch.testing.assert_close(mean, per_token.sum() / 8, **TOL)


def test_all_tokens_ignored_gives_finite_zero_mean():
    h, w, _, target = _inputs(5, 8, 13, bias=False, masked=1.0)
    loss = fused_linear_cross_entropy(h, w, target)
    loss.backward()
    assert loss.item() == 0.0 and h.grad.abs().max() == 0 and w.grad.abs().max() == 0


def test_batched_shapes_and_custom_ignore_index():
    h, w, _, target = _inputs(12, 8, 19, bias=False, masked=0.0)
    target[3] = 5
    fused = fused_linear_cross_entropy(h.view(3, 4, 8), w, target.view(3, 4), ignore_index=5, reduction="none")
    naive = F.cross_entropy(h @ w.T, target, ignore_index=5, reduction="none")
    assert fused.shape == (3, 4)
    torch.testing.assert_close(fused.view(-1), naive, **TOL)


def test_hand_derived_values():
    """Two tokens, vocab 3, identity-like weights: loss = logsumexp(z) - z_target by hand."""
    h = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # logits: [1, 0, 0] and [0, 2, 0]
    loss = fused_linear_cross_entropy(h, w, torch.tensor([0, 2]), reduction="none")
    expected = [math.log(math.e + 2) - 1, math.log(2 + math.e**2) - 0]
    torch.testing.assert_close(loss, torch.tensor(expected), **TOL)


def test_stats_match_naive():
    h, w, b, target = _inputs(29, 16, 67, bias=True)
    temperature = 0.8
    with torch.no_grad():
        target[:4] = F.linear(h[:4], w, b).argmax(-1)  # some top-1 hits, so is_top1 is not all zeros
    per_token, stats = fused_linear_token_stats(
        h, w, target, b, temperature=temperature, chunk_size=7, stats=("entropy", "is_top1", "mean_logits",
                                                                        "log_sum_sq_probs")
    )  # fmt: skip
    z = F.linear(h, w, b) / temperature  # (29, 67)
    logp = z.log_softmax(-1)
    valid = target != -100
    torch.testing.assert_close(stats["entropy"], (-(logp.exp() * logp).sum(-1)) * valid, **TOL)
    assert torch.equal(stats["is_top1"], (z.argmax(-1) == target) & valid)
    assert stats["is_top1"][:4].tolist() == [True] * 4
    torch.testing.assert_close(stats["mean_logits"], z.mean(-1) * valid, **TOL)
    torch.testing.assert_close(stats["log_sum_sq_probs"], (2 * logp).logsumexp(-1) * valid, **TOL)
    torch.testing.assert_close(per_token, _naive(h, w, b, target, "none", temperature), **TOL)


def test_entropy_gradient_matches_naive():
    """GRPO's entropy bonus backpropagates through the entropy: check d(loss + entropy weights) against autograd."""
    h, w, b, target = _inputs(19, 12, 41, bias=True)
    g_loss, g_ent = _grad_out(19, seed=1), _grad_out(19, seed=2)
    loss, ent = fused_linear_cross_entropy(h, w, target, b, reduction="none", temperature=0.9, return_entropy=True,
                                           chunk_size=5)
    z = F.linear(h, w, b) / 0.9
    logp = z.log_softmax(-1)
    valid = target != -100
    naive_ent = -(logp.exp() * logp).sum(-1) * valid
    naive_loss = F.cross_entropy(z, target, reduction="none")
    got = _grads((loss * g_loss).sum() + (ent * g_ent).sum(), (h, w, b))
    want = _grads((naive_loss * g_loss).sum() + (naive_ent * g_ent).sum(), (h, w, b))
    for a, c in zip(got, want, strict=True):
        # gradients up to ~8 summed over 41 logits: fp32 rounding on both sides reaches 2e-5 absolute
        torch.testing.assert_close(a, c, rtol=1e-5, atol=5e-5)


@pytest.mark.e2e  # float64 gradcheck
def test_gradcheck_float64():
    h, w, b, target = _inputs(7, 5, 9, bias=True, dtype=torch.float64, masked=0.3)
    target[0] = 3  # at least one real token

    def f(h, w, b):
        loss, ent = fused_linear_cross_entropy(h, w, target, b, reduction="none", temperature=1.3, chunk_size=3,
                                               return_entropy=True)
        return loss, ent

    assert torch.autograd.gradcheck(f, (h.detach().requires_grad_(), w.detach().requires_grad_(),
                                        b.detach().requires_grad_()), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(
        lambda h, w: fused_linear_cross_entropy(h, w, target, reduction="mean", chunk_size=2),
        (h.detach().requires_grad_(), w.detach().requires_grad_()),
    )


def test_bf16_is_as_close_to_fp32_as_naive_bf16():
    h32, w32, _, target = _inputs(64, 32, 257, bias=False)
    h16, w16 = (h32.detach().bfloat16().requires_grad_(), w32.detach().bfloat16().requires_grad_())
    ref = _naive(h32, w32, None, target, "mean")
    ref_grads = _grads(ref, (h32, w32))
    fused = fused_linear_cross_entropy(h16, w16, target, chunk_size=16)
    naive = _naive(h16, w16, None, target, "mean")
    fused_grads, naive_grads = _grads(fused, (h16, w16)), _grads(naive, (h16, w16))
    assert fused.dtype == torch.float32 and fused_grads[0].dtype == torch.bfloat16
    assert abs(fused - ref) <= 2 * abs(naive - ref) + 1e-4
    for got, base, want in zip(fused_grads, naive_grads, ref_grads, strict=True):
        err, naive_err = (got.float() - want).abs().max(), (base.float() - want).abs().max()
        assert err <= 3 * naive_err, (err, naive_err)


def test_default_chunk_keeps_logits_small():
    assert default_chunk_size(151_936) == 441  # 441 x 151,936 fp32 = 256 MB
    assert default_chunk_size(448) >= 100_000  # tiny vocabulary: one chunk for any CPU batch


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target": torch.tensor([0, 99])}, r"target\[1\] = 99 is outside \[0, 13\)"),
        ({"target": torch.tensor([0])}, "target shape"),
        ({"weight": torch.randn(13, 7)}, "hidden size 8"),
        ({"bias": torch.randn(12)}, "bias shape"),
        ({"reduction": "avg"}, "reduction must be"),
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"target": torch.tensor([0.0, 1.0])}, "target must be int64"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    args = {"hidden": torch.randn(2, 8), "weight": torch.randn(13, 8), "target": torch.tensor([0, 1])}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fused_linear_cross_entropy(**args)


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 17, 113, 1023])
@pytest.mark.parametrize("vocab", [3, 151, 1000])
@pytest.mark.parametrize("chunk", [1, 64, None])
def test_matches_naive_grid(n, vocab, chunk):
    h, w, b, target = _inputs(n, 32, vocab, bias=True, seed=n + vocab)
    grad_out = _grad_out(n).abs()
    fused = fused_linear_cross_entropy(h, w, target, b, reduction="none", chunk_size=chunk)
    naive = _naive(h, w, b, target, "none")
    torch.testing.assert_close(fused, naive, **TOL)
    for got, want in zip(_grads(fused, (h, w, b), grad_out), _grads(naive, (h, w, b), grad_out), strict=True):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_at_qwen25_vocabulary():
    """Qwen2.5-0.5B's head (hidden 896, vocabulary 151,936) in bf16 on CUDA, 4,096 tokens, the default chunk:
    loss and gradients at most 2x / 3x as far from the fp32 truth as PyTorch's own bf16 computation."""
    h32, w32, _, target = (t.cuda() if t is not None else t for t in _inputs(4096, 896, 151936, bias=False))
    h32, w32 = h32.detach().requires_grad_(), w32.detach().requires_grad_()
    h16, w16 = (h32.detach().bfloat16().requires_grad_(), w32.detach().bfloat16().requires_grad_())
    ref = _naive(h32, w32, None, target, "mean")
    ref_grads = _grads(ref, (h32, w32))
    fused = fused_linear_cross_entropy(h16, w16, target)
    naive = _naive(h16, w16, None, target, "mean")
    fused_grads, naive_grads = _grads(fused, (h16, w16)), _grads(naive, (h16, w16))
    assert torch.isfinite(fused) and abs(fused - ref) <= 2 * abs(naive - ref) + 1e-4
    for got, base, want in zip(fused_grads, naive_grads, ref_grads, strict=True):
        err, naive_err = (got.float() - want).abs().max(), (base.float() - want).abs().max()
        assert err <= 3 * naive_err, (err, naive_err)
