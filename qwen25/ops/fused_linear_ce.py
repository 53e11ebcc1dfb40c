"""Fused linear cross-entropy: the loss of `hidden @ weight.T (+ bias)` without materialising the logits.

At Qwen2.5's vocabulary (151,936) the logits of one 32,768-token SFT row are 20 GB in fp32, and their gradient
as much again. This op walks the tokens in chunks: the forward keeps only each token's log-sum-exp (and the
requested statistics), the backward recomputes one chunk of logits at a time and turns it straight into that
chunk's share of the hidden-state and weight (and bias) gradients. Peak extra memory is two chunk-sized fp32
buffers (`chunk_size x vocab`, 256 MB each by default, reused across chunks) plus the weight gradient, accumulated
in fp32 (vocab x hidden x 4 bytes: 545 MB for Qwen2.5-0.5B's head), whatever the number of tokens.

Why hand-written: Liger-Kernel's fused linear cross-entropy computes its gradients inside the forward, assuming
the loss is a scalar that is then scaled; with per-token outputs (DPO and GRPO log-probs) it shipped wrong
gradients. Here the autograd function always returns per-token values and its backward multiplies by the
incoming per-token `grad_output`, so `reduction="none"` is exact by construction; "mean" and "sum" are plain
torch reductions on top. Liger is not a dependency. TRL 1.16 has its own chunked log-prob kernel
(`trl.kernels.ChunkedLogProbFunction`); this one is ours so that it is tested against the naive computation
here, on our shapes, and so that the stages can switch to it (`fused_linear_ce: true`, qwen25/ops/fused_lm_head.py).

Math, per token with scaled logits z = (h W^T + b) / T, p = softmax(z), lse = logsumexp(z), target y:
    loss = lse - z_y                    d loss / d z = p - onehot(y)
    entropy = lse - sum_v p_v z_v       d entropy / d z = -p * (z - E_p[z])
and d/d(h W^T + b) = (d/dz) / T, contracted with W (hidden gradient), h (weight gradient) or summed (bias).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Literal

import torch

# Per-token statistics the op can return besides the loss; "entropy" is differentiable, the others are not
STATS = ("entropy", "is_top1", "mean_logits", "log_sum_sq_probs")
# Default chunk: at most this many logits (2^26 fp32 = 256 MB) are alive at once
CHUNK_ELEMENTS = 1 << 26


def default_chunk_size(vocab_size: int) -> int:
    """Tokens per chunk so that one chunk of fp32 logits stays within `CHUNK_ELEMENTS` (441 at 151,936)."""
    return max(1, CHUNK_ELEMENTS // vocab_size)


def _gathered(*params: torch.Tensor | None):
    """Gather DeepSpeed ZeRO-3 shards of `params` while the op reads them (a null context without ZeRO-3).

    ZeRO-3 keeps a parameter as an empty shard outside its module's forward, and this op reads `lm_head.weight`
    without calling the module, in the forward and again in the backward (as TRL's `maybe_gather_lm_head_ctx`).
    """
    sharded = {id(p): p for p in params if p is not None and hasattr(p, "ds_status")}
    if not sharded:
        return nullcontext()
    import deepspeed
    from deepspeed.runtime.zero.partition_parameters import ZeroParamStatus

    to_gather = [p for p in sharded.values() if p.ds_status != ZeroParamStatus.AVAILABLE]
    return deepspeed.zero.GatheredParameters(to_gather) if to_gather else nullcontext()


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, inv_t: float, out: torch.Tensor):
    """Scaled logits of one chunk, written into `out` (chunk, vocab) in the accumulation dtype, and returned."""
    # the matmul runs in the input dtype, like the model's lm_head; everything after it in fp32 (fp64 for gradcheck)
    if h.dtype == out.dtype:
        torch.mm(h, weight.T, out=out)
    else:
        out.copy_(h @ weight.T)
    if bias is not None:
        out += bias
    if inv_t != 1.0:
        out *= inv_t
    return out


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_v a[i, v] * b[i, v] for (chunk, vocab) inputs, without a (chunk, vocab) temporary: (chunk,)."""
    return torch.bmm(a[:, None, :], b[:, :, None]).view(-1)  # (chunk, 1, vocab) @ (chunk, vocab, 1)


class _FusedLinearCE(torch.autograd.Function):
    """Per-token cross-entropy (and statistics) of a linear head, chunked over tokens.

    Inputs: hidden (N, H), weight (V, H), bias (V,) or None, target (N,) int64 with `ignore_index` allowed.
    Outputs: loss (N,) in fp32 (0 at ignored tokens), then one (N,) tensor per requested statistic.
    The (chunk, vocab) buffers are allocated once per call and reused: on CPU a fresh 256 MB tensor per chunk costs
    more in page faults than the matmul saves.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, ignore_index, temperature, chunk_size, stats):
        n_tokens, vocab = hidden.size(0), weight.size(0)
        acc = torch.promote_types(hidden.dtype, torch.float32)
        inv_t = 1.0 / temperature
        valid = target != ignore_index
        safe_target = torch.where(valid, target, 0)
        lse = torch.empty(n_tokens, dtype=acc, device=hidden.device)
        loss = torch.empty(n_tokens, dtype=acc, device=hidden.device)
        ctx.set_materialize_grads(False)  # entropy is often logged only: no zero gradient to multiply through
        out = {
            name: torch.empty(n_tokens, dtype=torch.bool if name == "is_top1" else acc, device=hidden.device)
            for name in stats
        }
        rows = min(chunk_size, n_tokens)
        z_buf = torch.empty(rows, vocab, dtype=acc, device=hidden.device)  # (chunk, vocab)
        e_buf = torch.empty_like(z_buf)  # exp(z - max), (chunk, vocab)
        for start in range(0, n_tokens, chunk_size):
            end = min(start + chunk_size, n_tokens)
            z = _chunk_logits(hidden[start:end], weight, bias, inv_t, z_buf[: end - start])  # (chunk, vocab)
            z_max = z.amax(dim=-1)  # (chunk,)
            e = torch.sub(z, z_max[:, None], out=e_buf[: end - start]).exp_()  # unnormalised probabilities
            sum_e = e.sum(dim=-1)  # (chunk,)
            chunk_lse = z_max + sum_e.log()
            lse[start:end] = chunk_lse
            loss[start:end] = chunk_lse - z.gather(1, safe_target[start:end, None]).squeeze(1)
            if "entropy" in out:
                out["entropy"][start:end] = chunk_lse - _rowdot(e, z) / sum_e  # lse - E_p[z]
            if "log_sum_sq_probs" in out:
                out["log_sum_sq_probs"][start:end] = _rowdot(e, e).log() - 2 * sum_e.log()
            if "is_top1" in out:
                out["is_top1"][start:end] = z.argmax(-1) == target[start:end]
            if "mean_logits" in out:
                out["mean_logits"][start:end] = z.mean(-1)
        del z_buf, e_buf
        loss = loss.masked_fill(~valid, 0.0)
        for name in out:
            out[name] = out[name].masked_fill(~valid, 0)
        entropy = out.get("entropy")
        ctx.save_for_backward(hidden, weight, bias, safe_target, valid, lse, entropy)
        ctx.inv_t, ctx.chunk_size, ctx.acc, ctx.stats = inv_t, chunk_size, acc, stats
        ctx.mark_non_differentiable(*(out[name] for name in stats if name != "entropy"))
        return (loss, *(out[name] for name in stats))

    @staticmethod
    def backward(ctx, grad_loss, *grad_stats):
        hidden, weight, bias, target, valid, lse, entropy = ctx.saved_tensors
        with _gathered(weight, bias):
            return _FusedLinearCE._backward(
                ctx, hidden, weight, bias, target, valid, lse, entropy, grad_loss, grad_stats
            )

    @staticmethod
    def _backward(ctx, hidden, weight, bias, target, valid, lse, entropy, grad_loss, grad_stats):
        grad_entropy = dict(zip(ctx.stats, grad_stats)).get("entropy")
        need_h, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        acc, inv_t, chunk_size = ctx.acc, ctx.inv_t, ctx.chunk_size
        n_tokens, vocab = hidden.size(0), weight.size(0)
        # the incoming gradient is per token; ignored tokens contribute nothing whatever it says
        g_loss = torch.zeros_like(lse) if grad_loss is None else grad_loss.to(acc).masked_fill(~valid, 0.0)
        g_ent = None if grad_entropy is None else grad_entropy.to(acc).masked_fill(~valid, 0.0)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_w else None
        grad_b = torch.zeros(vocab, dtype=acc, device=weight.device) if need_b else None
        rows = min(chunk_size, n_tokens)
        z_buf = torch.empty(rows, vocab, dtype=acc, device=hidden.device)  # (chunk, vocab), becomes d/dz in place
        p_buf = torch.empty_like(z_buf) if g_ent is not None else None
        for start in range(0, n_tokens, chunk_size):
            end = min(start + chunk_size, n_tokens)
            h = hidden[start:end]  # (chunk, hidden)
            z = _chunk_logits(h, weight, bias, inv_t, z_buf[: end - start])  # (chunk, vocab)
            g = g_loss[start:end, None]  # (chunk, 1)
            if g_ent is None:
                dz = z.sub_(lse[start:end, None]).exp_().mul_(g)  # p * g
            else:
                p = torch.sub(z, lse[start:end, None], out=p_buf[: end - start]).exp_()
                mean_z = lse[start:end] - entropy[start:end]  # E_p[z], (chunk,)
                # d(g * loss + g_ent * entropy)/dz = p * (g - g_ent * (z - E_p[z])) - g * onehot
                dz = z.sub_(mean_z[:, None]).mul_(-g_ent[start:end, None]).add_(g).mul_(p)
            dz.scatter_add_(1, target[start:end, None], -g)  # the -onehot(target) term
            if inv_t != 1.0:
                dz *= inv_t  # z = logits / T
            if need_h:
                if dz.dtype == hidden.dtype:
                    torch.mm(dz, weight, out=grad_h[start:end])
                else:
                    grad_h[start:end] = dz.to(hidden.dtype) @ weight  # in the matmul dtype, like autograd
            if need_w:
                # accumulated over chunks in fp32: rounding each chunk's product to bf16 first would bias the sum
                grad_w.addmm_(dz.T, h.to(acc))
            if need_b:
                grad_b += dz.sum(0)
        grad_w = None if grad_w is None else grad_w.to(weight.dtype)
        grad_b = None if grad_b is None else grad_b.to(bias.dtype)
        return grad_h, grad_w, grad_b, None, None, None, None, None


def _check_inputs(hidden: torch.Tensor, weight: torch.Tensor, target: torch.Tensor, bias: torch.Tensor | None):
    if hidden.dim() < 1 or weight.dim() != 2:
        raise ValueError(f"fused_linear_ce: expected hidden (..., H) and weight (V, H); got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)}")
    if hidden.size(-1) != weight.size(1):
        raise ValueError(f"fused_linear_ce: hidden size {hidden.size(-1)} != weight's second dim {weight.size(1)} "
                         f"(weight is {tuple(weight.shape)}, expected (vocab, hidden))")
    if target.shape != hidden.shape[:-1]:
        raise ValueError(f"fused_linear_ce: target shape {tuple(target.shape)} must be hidden's without the last dim, "
                         f"{tuple(hidden.shape[:-1])}")
    if target.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"fused_linear_ce: target must be int64 or int32 token ids, got {target.dtype}")
    if bias is not None and bias.shape != (weight.size(0),):
        raise ValueError(f"fused_linear_ce: bias shape {tuple(bias.shape)} must be (vocab,) = ({weight.size(0)},)")
    if hidden.dtype != weight.dtype:
        raise ValueError(f"fused_linear_ce: hidden dtype {hidden.dtype} != weight dtype {weight.dtype}")


def fused_linear_token_stats(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
    temperature: float = 1.0,
    chunk_size: int | None = None,
    stats: tuple[str, ...] = (),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token cross-entropy of `hidden @ weight.T + bias` scaled by `1 / temperature`, plus per-token statistics.

    hidden (..., H), weight (V, H), target (...) token ids, bias (V,) or None. Returns the loss (...) in fp32
    (fp64 for fp64 inputs), 0 where `target == ignore_index`, and {name: (...)} for each name in `stats`
    (see `STATS`): "entropy" of the tempered distribution (differentiable), "is_top1" (bool: the target is the
    first argmax), "mean_logits" (mean tempered logit), "log_sum_sq_probs" (log sum_v p_v^2); all 0 (False) at
    ignored tokens. Log-probs of the targets are `-loss`.
    """
    with _gathered(weight, bias):
        return _token_stats(hidden, weight, target, bias, ignore_index, temperature, chunk_size, stats)


def _token_stats(hidden, weight, target, bias, ignore_index, temperature, chunk_size, stats):
    _check_inputs(hidden, weight, target, bias)
    unknown = [name for name in stats if name not in STATS]
    if unknown:
        raise ValueError(f"fused_linear_ce: unknown stats {unknown}; known: {list(STATS)}")
    if temperature <= 0:
        raise ValueError(f"fused_linear_ce: temperature must be > 0, got {temperature}")
    vocab = weight.size(0)
    chunk_size = default_chunk_size(vocab) if chunk_size is None else chunk_size
    if chunk_size < 1:
        raise ValueError(f"fused_linear_ce: chunk_size must be >= 1, got {chunk_size}")
    flat_target = target.reshape(-1).long()  # (N,)
    bad = (flat_target != ignore_index) & ((flat_target < 0) | (flat_target >= vocab))
    if bad.any():
        first = int(bad.nonzero()[0, 0])
        raise ValueError(f"fused_linear_ce: target[{first}] = {int(flat_target[first])} is outside [0, {vocab}) and "
                         f"is not ignore_index ({ignore_index})")
    flat_hidden = hidden.reshape(-1, hidden.size(-1))  # (N, H)
    outputs = _FusedLinearCE.apply(
        flat_hidden, weight, bias, flat_target, ignore_index, float(temperature), chunk_size, stats
    )
    shape = target.shape
    loss = outputs[0].view(shape)
    return loss, {name: t.view(shape) for name, t in zip(stats, outputs[1:])}


def fused_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    ignore_index: int = -100,
    reduction: Literal["mean", "sum", "none"] = "mean",
    temperature: float = 1.0,
    chunk_size: int | None = None,
    return_entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """`F.cross_entropy((hidden @ weight.T + bias) / temperature, target)` without materialising the logits.

    hidden (..., H), weight (V, H), target (...), bias (V,) or None. reduction "mean" (over non-ignored tokens,
    0 when there are none), "sum", or "none" (per-token loss (...), 0 at ignored tokens; its backward uses the
    per-token grad_output). With `return_entropy`, also the per-token entropy (...) of the tempered distribution,
    never reduced. The loss is fp32 (fp64 for fp64 inputs); gradients come back in the inputs' dtypes.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"fused_linear_ce: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    stats = ("entropy",) if return_entropy else ()
    per_token, extra = fused_linear_token_stats(
        hidden, weight, target, bias, ignore_index=ignore_index, temperature=temperature, chunk_size=chunk_size,
        stats=stats,
    )  # fmt: skip
    if reduction == "none":
        loss = per_token
    elif reduction == "sum":
        loss = per_token.sum()
    else:
        loss = per_token.sum() / (target != ignore_index).sum().clamp(min=1)
    return (loss, extra["entropy"]) if return_entropy else loss
