"""The Online Merging Optimizer (Lu et al. 2024) that the Qwen2.5 report trains DPO with.

Paper: Keming Lu, Bowen Yu, Fei Huang, Yang Fan, Runji Lin, Chang Zhou, "Online Merging Optimizers for Boosting
Rewards and Mitigating Tax in Alignment", arXiv:2405.17931; authors' code: github.com/QwenLM/online_merging_optimizers
(`online_merging/optimizers.py`, classes `ODAdamW` and `OTAdamW`).

Why by hand: no library ships it (not torch, transformers, TRL, accelerate, nor any package on the index); the
authors' code is a research drop (no package on the index, LLaMA-Factory 0.7 glue, and its k-step path returns after
the first parameter). This module follows the authors' per-step arithmetic for online_step = 1:

    m, v    = Adam moments of the gradient g (beta1, beta2); denom = sqrt(v) + eps  (eps outside the bias
              correction, as in the authors' AdamW)
    delta   = -lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / denom      the RL update AdamW would apply
    tau_ref = theta_SFT - theta_base                                    the SFT task vector, sparsified once
    OnDARE: delta  <- DARE(delta)   keep each entry with probability reserve_p, divide the kept ones by reserve_p
            theta <- theta + alpha * tau_ref + (1 - alpha) * delta
            (tau_ref got the same DARE once at the start, then was clipped to [-clip_val, clip_val])
    OnTIES: delta  <- top-k by magnitude of delta (k = int(reserve_p * numel)), the rest zeroed
            sign   = +1 where tau_ref + delta >= 0 else -1 (elected per entry, the authors' `majority_sign`)
            theta <- theta + alpha * tau_ref * [sign(tau_ref) == sign] + (1 - alpha) * delta * [sign(delta) == sign]
            (tau_ref got the same top-k once at the start)
    then decoupled weight decay on the updated weights: theta <- theta - lr * weight_decay * theta

`rescale` (default off, as in the authors' script) additionally scales a sparsified update back to the L1 norm it
had before sparsification. The Step-K variant (merge every K steps) is not implemented: the report does not say it
was used. The DARE masks draw from torch's global RNG, which the Trainer saves in each checkpoint, and tau_ref lives
in the optimizer state (saved in optimizer.pt), so a resumed run continues exactly.

Defaults (`OM_DEFAULTS`) are the authors' published DPO script (`LLaMA-Factory/run_dpo_om.sh`): OnDARE,
reserve_p = 0.01, alpha = 1e-7, rescale off, clip_val 1. Works with one process or DDP (parameters stay the same
objects); DeepSpeed and FSDP flatten or shard parameters, which breaks the parameter -> tau_ref pairing (the
authors' code has the same limit), so `offline_rl.config` refuses them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

VARIANTS = ("ondare", "onties")
OM_DEFAULTS = {"variant": "ondare", "reserve_p": 0.01, "alpha": 1e-7, "rescale": False, "clip_val": 1.0}


def dare_(tensor: torch.Tensor, reserve_p: float) -> torch.Tensor:
    """DARE in place: keep each entry with probability `reserve_p` and divide the kept ones by it (global RNG)."""
    if reserve_p >= 1.0:
        return tensor
    keep = torch.rand_like(tensor, dtype=torch.float32) < reserve_p  # same shape as tensor
    return tensor.mul_(keep).div_(reserve_p)


def magnitude_mask_(tensor: torch.Tensor, reserve_p: float) -> torch.Tensor:
    """TIES trim in place: keep the int(reserve_p * numel) entries of largest magnitude, zero the rest."""
    k = int(reserve_p * tensor.numel())
    if reserve_p >= 1.0 or k < 1:  # the authors' `magnitude_mask_` leaves the tensor whole when k < 1
        return tensor
    flat = tensor.view(-1)
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[flat.abs().topk(k).indices] = True
    return flat.mul_(keep).view_as(tensor)


def _rescale_l1_(tensor: torch.Tensor, l1_before: torch.Tensor, eps: float) -> torch.Tensor:
    if l1_before >= 1e-8:
        tensor.mul_(l1_before / (tensor.abs().sum() + eps))
    return tensor


class OnlineMergingAdamW(torch.optim.Optimizer):
    """AdamW whose every step is merged with the SFT task vector (OnDARE or OnTIES); see the module docstring.

    `ref_deltas` maps each trained parameter to theta_SFT - theta_base (same shape); `reference_deltas` builds it
    from a base checkpoint. It is sparsified (and for OnDARE clipped) here, once, and kept in the optimizer state.
    """

    def __init__(
        self,
        params: Iterable,
        *,
        ref_deltas: Mapping[torch.Tensor, torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        variant: str = OM_DEFAULTS["variant"],
        reserve_p: float = OM_DEFAULTS["reserve_p"],
        alpha: float = OM_DEFAULTS["alpha"],
        rescale: bool = OM_DEFAULTS["rescale"],
        clip_val: float = OM_DEFAULTS["clip_val"],
    ):
        if variant not in VARIANTS:
            raise ValueError(f"online merging variant must be one of {VARIANTS}, got {variant!r}")
        if not 0.0 < reserve_p <= 1.0:
            raise ValueError(f"reserve_p must be in (0, 1], got {reserve_p}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if lr < 0.0 or eps < 0.0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid Adam settings lr={lr}, betas={betas}, eps={eps}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        self.variant, self.reserve_p, self.alpha = variant, reserve_p, alpha
        self.rescale, self.clip_val = rescale, clip_val
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p not in ref_deltas:
                        raise ValueError(f"no reference delta for a parameter of shape {tuple(p.shape)}")
                    tau = ref_deltas[p].detach().to(device=p.device, dtype=p.dtype, copy=True)
                    if tau.shape != p.shape:
                        raise ValueError(
                            f"reference delta of shape {tuple(tau.shape)} for a parameter of shape {tuple(p.shape)}"
                        )
                    if variant == "ondare":  # as the authors' init: DARE, then clip (no rescale)
                        self.state[p]["tau_ref"] = dare_(tau, reserve_p).clamp_(-clip_val, clip_val)
                    else:
                        self.state[p]["tau_ref"] = self._sparsify_(tau, eps)

    def _sparsify_(self, tensor: torch.Tensor, eps: float) -> torch.Tensor:
        l1_before = tensor.abs().sum()
        if self.variant == "ondare":
            dare_(tensor, self.reserve_p)
        else:
            magnitude_mask_(tensor, self.reserve_p)
        if self.rescale:
            _rescale_l1_(tensor, l1_before, eps)
            if self.variant == "ondare":
                tensor.clamp_(-self.clip_val, self.clip_val)
        return tensor

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("OnlineMergingAdamW does not support sparse gradients")
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                tau = state["tau_ref"]
                if tau.device != p.device:  # the Trainer moved the model after the optimizer was built
                    tau = state["tau_ref"] = tau.to(p.device)
                state["step"] += 1
                m, v, g = state["exp_avg"], state["exp_avg_sq"], p.grad
                m.mul_(beta1).add_(g, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                step_size = group["lr"] * math.sqrt(1.0 - beta2 ** state["step"]) / (1.0 - beta1 ** state["step"])
                delta = m / (v.sqrt() + group["eps"]) * -step_size  # the plain AdamW update
                self._sparsify_(delta, group["eps"])
                if self.variant == "ondare":
                    p.add_(tau, alpha=self.alpha).add_(delta, alpha=1.0 - self.alpha)
                else:
                    sign = torch.where(tau + delta >= 0, 1.0, -1.0).to(p.dtype)  # elected sign per entry
                    p.add_(tau * (tau.sign() == sign), alpha=self.alpha)
                    p.add_(delta * (delta.sign() == sign), alpha=1.0 - self.alpha)
                if group["weight_decay"] > 0.0:
                    p.mul_(1.0 - group["lr"] * group["weight_decay"])
        return loss


def reference_deltas(model: nn.Module, base_dir: str | Path) -> dict[nn.Parameter, torch.Tensor]:
    """theta_SFT - theta_base for every trainable parameter of `model` (the SFT policy), read from `base_dir`.

    The base checkpoint's safetensors are read tensor by tensor (no second model in memory); names are the model's
    own `named_parameters` (tied weights appear once). A parameter missing from the base or of another shape is an
    error naming it: the task vector must come from the checkpoint SFT started from.
    """
    from safetensors import safe_open

    files = sorted(Path(base_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{base_dir}: no *.safetensors weight files for the online-merging base model")
    where: dict[str, Path] = {}
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            where.update(dict.fromkeys(st.keys(), f))
    deltas = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name not in where:
            raise KeyError(f"{base_dir}: base checkpoint has no tensor {name!r}")
        with safe_open(str(where[name]), framework="pt") as st:
            base = st.get_tensor(name)
        if base.shape != p.shape:
            raise ValueError(f"{base_dir}: {name} has shape {tuple(base.shape)}, the policy {tuple(p.shape)}")
        deltas[p] = p.detach().to("cpu", torch.float32) - base.to(torch.float32)
    return deltas
