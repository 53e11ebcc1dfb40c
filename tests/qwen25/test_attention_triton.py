"""The Triton FlashAttention-2 kernels against the PyTorch reference: outputs and dq, dk, dv.

On CPU the kernels run under TRITON_INTERPRET=1 (tests/conftest.py sets it) at small shapes: fp32 with an
absolute tolerance, fp16 with STYLE.md's relative rule (the kernel's error against the fp32 reference at most
2x (forward) / 3x (backward) PyTorch's own fp16 error). bf16 runs only on CUDA: the interpreter's bf16 `tl.dot`
multiplies the raw bits (measured: errors of 1e10 on a bare 16x16 dot), so it cannot judge a kernel.
A bigger interpreter grid (head_dim 128, GQA 40/8 and 64/8) is marked `slow`; the full-size runs in bf16/fp16
are marked `gpu` and skipped without CUDA.
"""

from __future__ import annotations

import itertools
import os

import pytest
import torch

from qwen25.attention import registration
from qwen25.attention.reference import attention_reference, build_attention_mask
from qwen25.attention.triton_flash import flash_attn_varlen

HAS_CUDA = torch.cuda.is_available()
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# the Triton interpreter runs each kernel call for seconds on CPU: its own tier (make test runs it, test-fast not)
pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(not (HAS_CUDA or INTERPRET), reason="needs CUDA or TRITON_INTERPRET=1")]
CPU_DEVICE = "cuda" if HAS_CUDA and not INTERPRET else "cpu"  # where the small grid runs

FP32_ATOL = 1e-4  # fp32 kernel vs fp32 reference, scaled by max(1, |reference|)
FWD_FACTOR, BWD_FACTOR = 2.0, 3.0  # STYLE.md: at most 2x / 3x PyTorch's own low-precision error


def _cu(lengths: list[int]) -> torch.Tensor:
    return torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)


def reference_varlen(q, k, v, lens_q, lens_k, scale=None) -> torch.Tensor:
    """The package's reference run sequence by sequence, causality aligned bottom-right within each.

    q (total_q, H, D), k/v (total_k, Hkv, D) -> (total_q, H, D), in q's dtype.
    """
    outs, sq, sk = [], 0, 0
    for lq, lk in zip(lens_q, lens_k, strict=True):
        qi = q[sq : sq + lq].transpose(0, 1)[None]  # (1, H, lq, D)
        ki = k[sk : sk + lk].transpose(0, 1)[None]  # (1, Hkv, lk, D)
        vi = v[sk : sk + lk].transpose(0, 1)[None]
        mask = build_attention_mask(1, lq, lk, q.device)  # (1, 1, lq, lk)
        outs.append(attention_reference(qi, ki, vi, mask, scaling=scale)[0])  # (lq, H, D)
        sq, sk = sq + lq, sk + lk
    return torch.cat(outs)


def _inputs(lens_q, lens_k, n_heads, n_kv_heads, head_dim, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(sum(lens_q), n_heads, head_dim, generator=g)  # (total_q, H, D)
    k = torch.randn(sum(lens_k), n_kv_heads, head_dim, generator=g)  # (total_k, Hkv, D)
    v = torch.randn(sum(lens_k), n_kv_heads, head_dim, generator=g)
    dout = torch.randn(sum(lens_q), n_heads, head_dim, generator=g)
    return [x.to(device) for x in (q, k, v, dout)]


def _out_and_grads(fn, q, k, v, dout, dtype) -> list[torch.Tensor]:
    """[out, dq, dk, dv] in fp32 of fn run on copies of q, k, v cast to dtype."""
    q, k, v = (x.to(dtype).requires_grad_() for x in (q, k, v))
    out = fn(q, k, v)
    grads = torch.autograd.grad(out, (q, k, v), dout.to(dtype))
    return [t.float() for t in (out, *grads)]


def _kernel(lens_q, lens_k):
    cu_q, cu_k = _cu(lens_q), _cu(lens_k)
    return lambda q, k, v: flash_attn_varlen(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k))


def _reference(lens_q, lens_k):
    return lambda q, k, v: reference_varlen(q, k, v, lens_q, lens_k)


def check_fp32(lens_q, lens_k, n_heads, n_kv_heads, head_dim, device):
    q, k, v, dout = _inputs(lens_q, lens_k, n_heads, n_kv_heads, head_dim, device)
    got = _out_and_grads(_kernel(lens_q, lens_k), q, k, v, dout, torch.float32)
    want = _out_and_grads(_reference(lens_q, lens_k), q, k, v, dout, torch.float32)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, want):
        assert torch.isfinite(a).all(), name
        err = (a - b).abs().max().item()
        assert err <= FP32_ATOL * max(1.0, b.abs().max().item()), f"{name}: max |kernel - reference| = {err:.2e}"


def check_low_precision(lens_q, lens_k, n_heads, n_kv_heads, head_dim, device, dtype):
    """STYLE.md's rule: error vs the fp32 reference at most 2x (fwd) / 3x (bwd) PyTorch's in the same dtype."""
    q, k, v, dout = _inputs(lens_q, lens_k, n_heads, n_kv_heads, head_dim, device)
    got = _out_and_grads(_kernel(lens_q, lens_k), q, k, v, dout, dtype)
    torch_low = _out_and_grads(_reference(lens_q, lens_k), q, k, v, dout, dtype)
    truth = _out_and_grads(_reference(lens_q, lens_k), q, k, v, dout, torch.float32)
    for name, factor, a, b, t in zip(
        ("out", "dq", "dk", "dv"), (FWD_FACTOR, BWD_FACTOR, BWD_FACTOR, BWD_FACTOR), got, torch_low, truth
    ):
        assert torch.isfinite(a).all(), name
        err_kernel, err_torch = (a - t).abs().max().item(), (b - t).abs().max().item()
        assert err_kernel <= factor * err_torch + 1e-5, (
            f"{name} ({dtype}): kernel error {err_kernel:.2e} > {factor}x PyTorch's {err_torch:.2e}"
        )


# (lens_q, lens_k, n_heads, n_kv_heads, head_dim): odd lengths, uneven packing, each GQA ratio of the small
# models, head_dim 16..128, decode rows (lq < lk) and rows with nothing to attend (lq > lk).
SMALL_GRID = {
    "len1": ([1], [1], 4, 2, 16),
    "len17-ratio14/2": ([17], [17], 14, 2, 16),
    "len113-hd64": ([113], [113], 2, 1, 64),
    "packed-uneven": ([5, 17, 1, 40, 3], [5, 17, 1, 40, 3], 4, 2, 32),
    "packed-ratio12/2": ([17, 2], [17, 2], 12, 2, 32),
    "packed-ratio16/2": ([1, 17], [1, 17], 16, 2, 16),
    "packed-ratio28/4": ([9, 2], [9, 2], 28, 4, 16),
    "packed-hd128": ([17, 1, 30], [17, 1, 30], 2, 1, 128),
    "decode": ([1, 3, 17, 2], [9, 3, 40, 2], 6, 2, 32),
    "more-queries-than-keys": ([9, 3, 5], [1, 3, 0], 4, 2, 16),
}


@pytest.mark.parametrize("case", list(SMALL_GRID), ids=list(SMALL_GRID))
def test_matches_reference_fp32(case):
    check_fp32(*SMALL_GRID[case], device=CPU_DEVICE)


@pytest.mark.parametrize(
    "lens", [([5, 17, 1, 40], [5, 17, 1, 40]), ([1, 3, 17], [9, 3, 40])], ids=["packed", "decode"]
)
def test_fp16_error_within_pytorch_rule(lens):
    check_low_precision(*lens, 4, 2, 32, device=CPU_DEVICE, dtype=torch.float16)


def test_rows_with_nothing_to_attend_are_zero_not_nan():
    """lq > lk: the first lq - lk queries of a sequence see no key; output 0, gradient 0, nothing NaN."""
    lens_q, lens_k = [6, 4], [2, 4]
    q, k, v, dout = _inputs(lens_q, lens_k, 2, 1, 16, CPU_DEVICE)
    out, dq, dk, dv = _out_and_grads(_kernel(lens_q, lens_k), q, k, v, dout, torch.float32)
    assert torch.isfinite(out).all() and torch.isfinite(dq).all() and torch.isfinite(dk).all()
    assert torch.equal(out[:4], torch.zeros_like(out[:4])) and torch.equal(dq[:4], torch.zeros_like(dq[:4]))
    assert out[4:6].abs().sum() > 0  # the last two queries of sequence 0 do see its two keys


def test_no_attention_across_a_packed_boundary():
    """Changing the keys/values of the middle sequence leaves the others' outputs bit-for-bit unchanged."""
    lens = [19, 23, 18]
    q, k, v, _ = _inputs(lens, lens, 4, 2, 16, CPU_DEVICE)
    k2, v2 = k.clone(), v.clone()
    k2[19:42] += 3.0
    v2[19:42] -= 2.0
    run = _kernel(lens, lens)
    a, b = run(q, k, v), run(q, k2, v2)
    assert torch.equal(a[:19], b[:19]) and torch.equal(a[42:], b[42:])
    assert not torch.allclose(a[19:42], b[19:42])


def test_accepts_strided_views_without_copies():
    """(tokens, heads, head_dim) views of a (heads, tokens, head_dim) tensor, as registration passes them."""
    lens = [13, 20]
    q, k, v, dout = _inputs(lens, lens, 4, 2, 16, CPU_DEVICE)
    qv, kv, vv = (x.transpose(0, 1).contiguous().transpose(0, 1) for x in (q, k, v))  # same values, strided
    assert qv.stride(0) != qv.shape[1] * qv.shape[2]
    got = _out_and_grads(_kernel(lens, lens), qv, kv, vv, dout, torch.float32)
    want = _out_and_grads(_kernel(lens, lens), q, k, v, dout, torch.float32)
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "ratio,head_dim",
    [((40, 8), 128), ((64, 8), 128), ((40, 8), 64), ((28, 4), 128), ((14, 2), 128)],
    ids=["40/8-hd128", "64/8-hd128", "40/8-hd64", "28/4-hd128", "14/2-hd128"],
)
def test_matches_reference_fp32_big_grid(ratio, head_dim):
    """Packed odd lengths, then decode rows, at the big models' head counts (about 10 minutes on 2 cores)."""
    lens = [113, 17, 1, 30]
    check_fp32(lens, lens, *ratio, head_dim, device=CPU_DEVICE)
    check_fp32([1, 17, 5], [113, 17, 30], *ratio, head_dim, device=CPU_DEVICE)


# ---------------------------------------------------------------------------------------------------------------
# the dispatch point


@pytest.fixture
def forced_triton(monkeypatch):
    monkeypatch.setattr(registration, "BACKEND", "triton")


class _Module(torch.nn.Module):
    pass


def _dispatch(backend, monkeypatch, q, k, v, mask, rows=None, **kwargs) -> list[torch.Tensor]:
    """[out, dq, dk, dv] of `qwen25_attention` under one backend. q (B, H, Lq, D), k/v (B, Hkv, Lk, D).

    rows (B, Lq) bool: the real query rows; the others get no gradient, as in training, where padded positions
    carry no loss and nothing real reads them.
    """
    monkeypatch.setattr(registration, "BACKEND", backend)
    q, k, v = (x.detach().clone().requires_grad_() for x in (q, k, v))
    out, _ = registration.qwen25_attention(_Module().eval(), q, k, v, mask, **kwargs)  # (B, Lq, H, D)
    dout = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(out)
    if rows is not None:
        dout = dout * rows[:, :, None, None]
    return [out, *torch.autograd.grad(out, (q, k, v), dout)]


def _bhld(batch, n_heads, n_kv_heads, q_len, k_len, head_dim, seed=0):
    """q (B, H, Lq, D) as a transposed view of (B, Lq, H, D) storage, as transformers' projections give it."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, q_len, n_heads, head_dim, generator=g).transpose(1, 2)
    k = torch.randn(batch, k_len, n_kv_heads, head_dim, generator=g).transpose(1, 2)
    v = torch.randn(batch, k_len, n_kv_heads, head_dim, generator=g).transpose(1, 2)
    return q, k, v


def _assert_same(a: list[torch.Tensor], b: list[torch.Tensor], rows: torch.Tensor | None = None):
    """Outputs (optionally only the real query rows (B, Lq) bool) and all gradients agree to fp32 tolerance."""
    out_a, out_b = (a[0], b[0]) if rows is None else (a[0][rows], b[0][rows])
    assert (out_a - out_b).abs().max().item() <= FP32_ATOL
    for name, x, y in zip(("dq", "dk", "dv"), a[1:], b[1:]):
        assert (x - y).abs().max().item() <= FP32_ATOL * max(1.0, y.abs().max().item()), name


def test_dispatch_packed_cu_seq_lens_with_a_tail(monkeypatch):
    """cu_seq_lens ending before the row does: the tail is one more sequence, as the reference treats it."""
    q, k, v = _bhld(1, 4, 2, 40, 40, 16)
    cu = torch.tensor([0, 7, 8, 31], dtype=torch.int32)  # tokens 31..39 past the last boundary
    kwargs = dict(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=23, max_length_k=23)
    got = _dispatch("triton", monkeypatch, q, k, v, None, **kwargs)
    _assert_same(got, _dispatch("reference", monkeypatch, q, k, v, None, **kwargs))


def test_dispatch_position_id_resets(monkeypatch):
    q, k, v = _bhld(2, 4, 2, 24, 24, 16)
    packed = torch.cat([torch.arange(10), torch.arange(3), torch.arange(11)])
    position_ids = torch.stack([packed, torch.arange(24)])  # (2, 24): row 0 three sequences, row 1 one
    got = _dispatch("triton", monkeypatch, q, k, v, None, position_ids=position_ids)
    _assert_same(got, _dispatch("reference", monkeypatch, q, k, v, None, position_ids=position_ids))


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("q_len", [21, 3], ids=["prefill", "decode"])
def test_dispatch_padded_batch(monkeypatch, side, q_len):
    """A 2D padding mask (what the kernel path's mask function gives) is unpadded; real rows match the reference."""
    k_len, real = 21, [21, 12, 5]
    mask = torch.zeros(3, k_len, dtype=torch.bool)  # (B, k_len) True = real token
    for i, n in enumerate(real):
        if side == "left":
            mask[i, k_len - n :] = True
        else:
            mask[i, :n] = True
    q, k, v = _bhld(3, 4, 2, q_len, k_len, 16)
    rows = mask[:, k_len - q_len :]  # (B, Lq) real query positions
    got = _dispatch("triton", monkeypatch, q, k, v, mask, rows=rows)
    want = _dispatch("reference", monkeypatch, q, k, v, mask, rows=rows)
    _assert_same(got, want, rows=rows)
    assert torch.equal(got[0][~rows], torch.zeros_like(got[0][~rows]))  # padded query rows: exact zeros


def test_forced_triton_refuses_what_it_cannot_take(monkeypatch, forced_triton):
    q, k, v = _bhld(1, 4, 2, 8, 8, 16)
    mask_4d = torch.ones(1, 1, 8, 8, dtype=torch.bool).tril()
    with pytest.raises(NotImplementedError, match="4D attention mask"):
        registration.qwen25_attention(_Module().eval(), q, k, v, mask_4d)
    q24, k24, v24 = _bhld(1, 4, 2, 8, 8, 24)
    with pytest.raises(NotImplementedError, match="head_dim 24"):
        registration.qwen25_attention(_Module().eval(), q24, k24, v24, None)


def test_mask_function_follows_the_path(monkeypatch):
    """Kernel path: flash-attention's mask (None / 2D); reference path: sdpa's 4D boolean mask."""
    padding = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    kwargs = dict(batch_size=2, q_length=4, kv_length=4, attention_mask=padding, device=torch.device("cpu"))
    monkeypatch.setattr(registration, "BACKEND", "triton")
    assert torch.equal(registration.qwen25_mask(**kwargs), padding)
    monkeypatch.setattr(registration, "BACKEND", "reference")
    assert registration.qwen25_mask(**kwargs).shape == (2, 1, 4, 4)
    monkeypatch.setattr(registration, "BACKEND", "auto")  # auto on CPU: the reference's mask
    assert registration.qwen25_mask(**kwargs).shape == (2, 1, 4, 4)


def test_plan_is_reused_for_the_same_tensors_and_rebuilt_when_they_change():
    cu = torch.tensor([0, 3, 10], dtype=torch.int32)
    first = registration._varlen_plan(1, 10, 10, torch.device("cpu"), None, cu, cu, None)
    assert registration._varlen_plan(1, 10, 10, torch.device("cpu"), None, cu, cu, None) is first
    cu[1] = 5  # in place: the version counter moves, the plan must not be reused
    second = registration._varlen_plan(1, 10, 10, torch.device("cpu"), None, cu, cu, None)
    assert second is not first and second.cu_seqlens_q.tolist() == [0, 5, 10] and second.max_seqlen_q == 5


# ---------------------------------------------------------------------------------------------------------------
# the micro Qwen2 model


def test_micro_model_packed_row_logits_and_gradients(micro_base, monkeypatch):
    """The whole model, BACKEND="triton" vs "reference": logits and every parameter's gradient on a packed row."""
    from qwen25.model import load_model

    model = load_model(micro_base)
    g = torch.Generator().manual_seed(0)
    lengths = [13, 2, 8]
    ids = torch.randint(0, model.config.vocab_size - 30, (1, sum(lengths)), generator=g)
    cu = _cu(lengths)
    kwargs = dict(
        input_ids=ids,
        labels=ids,
        position_ids=torch.cat([torch.arange(n) for n in lengths])[None],
        cu_seq_lens_q=cu,
        cu_seq_lens_k=cu,
        max_length_q=max(lengths),
        max_length_k=max(lengths),
        use_cache=False,
    )
    results = {}
    for backend in ("reference", "triton"):
        monkeypatch.setattr(registration, "BACKEND", backend)
        model.zero_grad()
        out = model(**kwargs)
        out.loss.backward()
        results[backend] = (out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})
    (logits_r, grads_r), (logits_t, grads_t) = results["reference"], results["triton"]
    assert (logits_t - logits_r).abs().max().item() <= 1e-5
    for name, grad in grads_r.items():
        err = (grads_t[name] - grad).abs().max().item()
        assert err <= 1e-5 * max(1.0, grad.abs().max().item()), f"{name}: {err:.2e}"


def test_micro_model_padded_batch_logits(micro_base, monkeypatch):
    from qwen25.model import load_model

    model = load_model(micro_base).eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size - 30, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :5] = 0  # left padding
    logits = {}
    for backend in ("reference", "triton"):
        monkeypatch.setattr(registration, "BACKEND", backend)
        with torch.no_grad():
            logits[backend] = model(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert (logits["triton"][real] - logits["reference"][real]).abs().max().item() <= 1e-5


# ---------------------------------------------------------------------------------------------------------------
# full size on CUDA

GPU_RATIOS = [(14, 2), (12, 2), (16, 2), (28, 4), (40, 8), (64, 8)]
GPU_LENS = [1, 17, 113, 1023, 2048, 300]


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("ratio", GPU_RATIOS, ids=[f"{h}/{kv}" for h, kv in GPU_RATIOS])
@pytest.mark.parametrize("layout", ["packed", "decode"])
def test_gpu_full_size(layout, ratio, head_dim, dtype):
    lens_q = GPU_LENS if layout == "packed" else [1, 1, 17, 113, 4]
    lens_k = GPU_LENS if layout == "packed" else [1, 1023, 2048, 113, 300]
    check_low_precision(lens_q, lens_k, *ratio, head_dim, device="cuda", dtype=dtype)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA")
def test_gpu_auto_backend_dispatches_to_the_kernel(monkeypatch):
    from qwen25.attention import triton_flash

    calls = []
    real = triton_flash.flash_attn_varlen
    monkeypatch.setattr(triton_flash, "flash_attn_varlen", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    monkeypatch.setattr(registration, "BACKEND", "auto")
    q, k, v = (x.to("cuda", torch.bfloat16) for x in _bhld(1, 28, 4, 256, 256, 128))
    cu = torch.tensor([0, 100, 256], dtype=torch.int32, device="cuda")
    out, _ = registration.qwen25_attention(_Module().eval(), q, k, v, None, cu_seq_lens_q=cu, cu_seq_lens_k=cu)
    assert calls == [1] and out.shape == (1, 256, 28, 128)
    q32, k32, v32 = (x.to("cuda") for x in _bhld(1, 4, 2, 16, 16, 64))
    registration.qwen25_attention(_Module().eval(), q32, k32, v32, None)  # fp32 stays on the reference
    assert calls == [1]
