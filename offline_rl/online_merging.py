"""The Online Merging Optimizer (Lu et al. 2024) that the Qwen2.5 report trains DPO with, unsharded or FSDP2-sharded.

Paper: Keming Lu, Bowen Yu, Fei Huang, Yang Fan, Runji Lin, Chang Zhou, "Online Merging Optimizers for Boosting
Rewards and Mitigating Tax in Alignment", arXiv:2405.17931; authors' code: github.com/QwenLM/online_merging_optimizers
(`online_merging/optimizers.py`, classes `ODAdamW` and `OTAdamW`).

Why by hand: no library ships it (not torch, transformers, TRL, accelerate, nor any package on the index); the
authors' code is a research drop (no package on the index, LLaMA-Factory 0.7 glue, its k-step path returns after the
first parameter, and it runs on unsharded parameters only). This module follows the authors' per-step arithmetic
for online_step = 1:

    m, v    = Adam moments of the gradient g (beta1, beta2); denom = sqrt(v) + eps  (eps outside the bias
              correction, as in the authors' AdamW)
    delta   = -lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / denom      the RL update AdamW would apply
    tau_ref = theta_SFT - theta_base                                    the SFT task vector, sparsified once
    OnDARE: delta  <- DARE(delta)   keep each entry with probability reserve_p, divide the kept ones by reserve_p
            theta <- theta + alpha * tau_ref + (1 - alpha) * delta
            (tau_ref got the same DARE once at the start, then was clipped to [-clip_val, clip_val])
    OnTIES: delta  <- the entries of delta whose magnitude is at least the k-th largest (k = int(reserve_p * numel)),
                      the rest zeroed
            sign   = +1 where tau_ref + delta >= 0 else -1 (elected per entry, the authors' `majority_sign`)
            theta <- theta + alpha * tau_ref * [sign(tau_ref) == sign] + (1 - alpha) * delta * [sign(delta) == sign]
            (tau_ref got the same magnitude trim once at the start)
    then decoupled weight decay on the updated weights: theta <- theta - lr * weight_decay * theta

`rescale` (default off, as in the authors' script) additionally scales a sparsified update back to the L1 norm it
had before sparsification. The Step-K variant (merge every K steps) is not implemented: the report does not say it
was used.

Sharding (FSDP2, `configs/accelerate/fsdp2.yaml`). Every operation above is elementwise except three, so each rank
updates its own shard of theta, m, v and tau_ref, and the result is the unsharded optimizer's to rounding:
- DARE's keep/drop draw. torch's generators cannot tell a shard where its entries sit in the whole tensor's random
  stream (DTensor's offset-based RNG is CUDA-only), so the draw is counter-based, like Philox: entry i of parameter
  j at step t is kept when hash(seed, j, t, i) / 2^24 < reserve_p (`uniform_for`, a 32-bit integer mixer written
  in torch integer ops). The mask of an entry depends on where it sits in the full tensor, never on the sharding,
  the device or the number of ranks; a resumed run needs no RNG state (the step count is in the optimizer state).
- OnTIES' k-th largest magnitude: each rank sends its own top min(k, shard) magnitudes (an all-gather of k values)
  and every rank takes the k-th largest of the union.
- rescale's L1 norms: an all-reduce of each shard's sum.
The task vector is built shard by shard (`TaskVector`): each rank reads only its rows of the base checkpoint
(safetensors' `get_slice`) and subtracts them from its own SFT shard, so no rank ever holds a whole-model copy.
Supported: unsharded parameters (one process or DDP) and DTensor parameters whose local shard is one contiguous
run of the flattened tensor (FSDP2's Shard(0) on a 1-D mesh). DeepSpeed flattens parameters into buckets and FSDP1
into flat parameters, which breaks the parameter -> task-vector pairing; `offline_rl.config` refuses both.

Defaults (`OM_DEFAULTS`) are the authors' published DPO script (`LLaMA-Factory/run_dpo_om.sh`): OnDARE,
reserve_p = 0.01, alpha = 1e-7, rescale off, clip_val 1.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors import safe_open
from torch import nn
from torch.distributed.tensor import DTensor, Shard
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

VARIANTS = ("ondare", "onties")
OM_DEFAULTS = {"variant": "ondare", "reserve_p": 0.01, "alpha": 1e-7, "rescale": False, "clip_val": 1.0}
_M32 = 0xFFFFFFFF
_CHUNK = 1 << 22  # entries per hashing chunk: bounds the int64 temporaries to 32 MiB each


# ---------------------------------------------------------------------------------------------------------- sharding
class _Layout:
    """Where a (possibly sharded) tensor's local entries sit in the flattened full tensor, and whom to talk to."""

    def __init__(self, t: torch.Tensor):
        self.numel = t.numel()  # a DTensor's numel is the full tensor's
        self.group = None
        self.start = 0
        if isinstance(t, DTensor):
            mesh, placements = t.device_mesh, t.placements
            sharded = [d for d, pl in enumerate(placements) if not pl.is_replicate()]
            if mesh.ndim != 1 or any(not isinstance(placements[d], Shard) or placements[d].dim != 0 for d in sharded):
                raise NotImplementedError(
                    f"online merging supports FSDP2's Shard(0) on a 1-D mesh; got {placements} on a "
                    f"{mesh.ndim}-D mesh (HSDP and tensor parallelism are not supported)"
                )
            if sharded:
                local_shape, offset = compute_local_shape_and_global_offset(t.shape, mesh, placements)
                self.start = offset[0] * math.prod(t.shape[1:])
                self.rows = (offset[0], offset[0] + local_shape[0])
                self.group = mesh.get_group(0)
                return
        self.rows = (0, t.shape[0]) if t.dim() else (0, 1)


def describe_sharding(model: nn.Module) -> str:
    """How the trained parameters are held, for the run summary: 'unsharded' or e.g. 'FSDP2 Shard(dim=0) x 8'."""
    p = next((q for q in model.parameters() if q.requires_grad), None)
    if not isinstance(p, DTensor):
        return "unsharded"
    return f"FSDP2 {','.join(map(str, p.placements))} x {p.device_mesh.size()}"


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def _like(local: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`local` as a shard of the same DTensor layout as `like` (or itself when `like` is a plain tensor)."""
    if isinstance(like, DTensor):
        return DTensor.from_local(
            local, like.device_mesh, like.placements, run_check=False, shape=like.shape, stride=like.stride()
        )
    return local


def _sum(local_value: torch.Tensor, layout: _Layout) -> torch.Tensor:
    if layout.group is not None:
        local_value = local_value.clone()
        dist.all_reduce(local_value, group=layout.group)
    return local_value


# ------------------------------------------------------------------------------------------ counter-based uniforms
def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2^32 for 0 <= x < 2^32 in int64 without overflow (split x in 16-bit halves)."""
    return ((((x >> 16) * c) & 0xFFFF) << 16) + (x & 0xFFFF) * c & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """Chris Wellons' `lowbias32` integer hash (a bijection of 32-bit integers with near-ideal avalanche)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _mix32_int(x: int) -> int:
    return int(_mix32(torch.tensor([x & _M32], dtype=torch.int64))[0])


def stream_key(seed: int, index: int, step: int) -> int:
    """The 32-bit key of parameter `index`'s draw at `step` (0 = the task vector's, at construction)."""
    return _mix32_int(seed ^ _mix32_int(index * 0x9E3779B9 ^ _mix32_int(step)))


def uniform_for(key: int, start: int, count: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniforms in [0, 1) (24-bit) for entries start .. start+count-1 of the stream `key`: a pure function of
    (key, entry index), so any shard of a tensor draws exactly its part of the whole tensor's draw."""
    out = torch.empty(count, dtype=torch.float32, device=device)
    for lo in range(0, count, _CHUNK):
        idx = torch.arange(start + lo, start + min(count, lo + _CHUNK), dtype=torch.int64, device=device)
        h = _mix32((idx & _M32) ^ _mix32((idx >> 32) ^ key))
        out[lo : lo + idx.numel()] = (h >> 8).to(torch.float32) * (1.0 / (1 << 24))
    return out


# ----------------------------------------------------------------------------------------------------- sparsifiers
def dare_(tensor: torch.Tensor, reserve_p: float, key: int, layout: _Layout | None = None) -> torch.Tensor:
    """DARE in place: keep each entry with probability `reserve_p` (counter-based draw) and divide the kept ones by
    it. `tensor` is the local shard when `layout` says where it sits in the full tensor."""
    if reserve_p >= 1.0:
        return tensor
    start = layout.start if layout is not None else 0
    keep = uniform_for(key, start, tensor.numel(), tensor.device) < reserve_p
    return tensor.mul_(keep.view_as(tensor)).div_(reserve_p)


def magnitude_mask_(tensor: torch.Tensor, reserve_p: float, layout: _Layout | None = None) -> torch.Tensor:
    """TIES trim in place: keep the entries whose magnitude is at least the k-th largest of the full tensor
    (k = int(reserve_p * numel)); the rest zeroed. Sharded: the k-th largest of the union of every rank's top k."""
    numel = layout.numel if layout is not None else tensor.numel()
    k = int(reserve_p * numel)
    if reserve_p >= 1.0 or k < 1:  # the authors' `magnitude_mask_` leaves the tensor whole when k < 1
        return tensor
    flat = tensor.view(-1)
    top = flat.abs().topk(min(k, flat.numel())).values
    if layout is not None and layout.group is not None:
        padded = torch.full((k,), -1.0, dtype=top.dtype, device=top.device)
        padded[: top.numel()] = top
        gathered = [torch.empty_like(padded) for _ in range(dist.get_world_size(layout.group))]
        dist.all_gather(gathered, padded, group=layout.group)
        top = torch.cat(gathered).topk(k).values
    threshold = top[k - 1]
    return flat.mul_(flat.abs() >= threshold).view_as(tensor)


def _rescale_l1_(tensor: torch.Tensor, l1_before: torch.Tensor, eps: float, layout: _Layout) -> torch.Tensor:
    if l1_before >= 1e-8:
        tensor.mul_(l1_before / (_sum(tensor.abs().sum(), layout) + eps))
    return tensor


# ------------------------------------------------------------------------------------------------------- optimizer
class OnlineMergingAdamW(torch.optim.Optimizer):
    """AdamW whose every step is merged with the SFT task vector (OnDARE or OnTIES); see the module docstring.

    `ref_deltas` maps each trained parameter to theta_SFT - theta_base of the same shape (for a DTensor parameter, a
    DTensor of the same layout or the local shard): a dict, or a `TaskVector` that builds each entry from the base
    checkpoint when asked. It is sparsified (and for OnDARE clipped) here, once, and kept in the optimizer state.
    `seed` keys the counter-based DARE draws (entry i of the j-th parameter at step t); the Trainer passes its seed.
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
        seed: int = 0,
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
        self.rescale, self.clip_val, self.seed = rescale, clip_val, seed
        self._layouts: dict[torch.Tensor, _Layout] = {}
        with torch.no_grad():
            for index, p in enumerate(self._params()):
                if p not in ref_deltas:
                    raise ValueError(f"no reference delta for a parameter of shape {tuple(p.shape)}")
                local_p, local_tau = _local(p), _local(ref_deltas[p]).detach()
                if local_tau.shape != local_p.shape:  # the whole tensor, or this rank's shard of it
                    raise ValueError(
                        f"reference delta of shape {tuple(local_tau.shape)} for a parameter of shape "
                        f"{tuple(local_p.shape)}" + (f" (this rank's shard of {tuple(p.shape)})" if p is not local_p
                                                     else "")
                    )
                layout = self._layout(p)
                local_tau = local_tau.to(device=local_p.device, dtype=local_p.dtype, copy=True)
                key = stream_key(seed, index, 0)
                if variant == "ondare":  # as the authors' init: DARE, then clip (no rescale)
                    local_tau = dare_(local_tau, reserve_p, key, layout).clamp_(-clip_val, clip_val)
                else:
                    local_tau = self._sparsify_(local_tau, eps, key, layout)
                self.state[p]["tau_ref"] = _like(local_tau, p)

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _layout(self, p: torch.Tensor) -> _Layout:
        if p not in self._layouts:
            self._layouts[p] = _Layout(p)
        return self._layouts[p]

    def _sparsify_(self, tensor: torch.Tensor, eps: float, key: int, layout: _Layout) -> torch.Tensor:
        l1_before = _sum(tensor.abs().sum(), layout) if self.rescale else None
        if self.variant == "ondare":
            dare_(tensor, self.reserve_p, key, layout)
        else:
            magnitude_mask_(tensor, self.reserve_p, layout)
        if self.rescale:
            _rescale_l1_(tensor, l1_before, eps, layout)
            if self.variant == "ondare":
                tensor.clamp_(-self.clip_val, self.clip_val)
        return tensor

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        index = -1
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                index += 1  # the parameter's place in the optimizer: part of its DARE key, the same on every rank
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("OnlineMergingAdamW does not support sparse gradients")
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                if _local(state["tau_ref"]).device != _local(p).device:  # the Trainer moved the model after us
                    state["tau_ref"] = _like(_local(state["tau_ref"]).to(_local(p).device), p)
                state["step"] += 1
                step = int(state["step"])
                theta, g = _local(p), _local(p.grad)
                m, v, tau = _local(state["exp_avg"]), _local(state["exp_avg_sq"]), _local(state["tau_ref"])
                m.mul_(beta1).add_(g, alpha=1.0 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
                step_size = group["lr"] * math.sqrt(1.0 - beta2**step) / (1.0 - beta1**step)
                delta = m / (v.sqrt() + group["eps"]) * -step_size  # the plain AdamW update
                self._sparsify_(delta, group["eps"], stream_key(self.seed, index, step), self._layout(p))
                if self.variant == "ondare":
                    theta.add_(tau, alpha=self.alpha).add_(delta, alpha=1.0 - self.alpha)
                else:
                    sign = torch.where(tau + delta >= 0, 1.0, -1.0).to(theta.dtype)  # elected sign per entry
                    theta.add_(tau * (tau.sign() == sign), alpha=self.alpha)
                    theta.add_(delta * (delta.sign() == sign), alpha=1.0 - self.alpha)
                if group["weight_decay"] > 0.0:
                    theta.mul_(1.0 - group["lr"] * group["weight_decay"])
        return loss


# ----------------------------------------------------------------------------------------------------- task vector
class TaskVector(Mapping):
    """theta_SFT - theta_base for every trainable parameter of `model` (the SFT policy), base read from `base_dir`.

    Lazy: the entry of a parameter is built when the optimizer asks for it, after FSDP2 has sharded the model, from
    the parameter as it is then (its local shard) and the same rows of the base tensor (safetensors `get_slice`:
    only those rows are read). Names are the model's own `named_parameters` (tied weights appear once). A
    parameter missing from the base or of another shape is an error naming it: the task vector must come from the
    checkpoint SFT started from.
    """

    def __init__(self, model: nn.Module, base_dir: str | Path):
        self.model, self.base_dir = model, Path(base_dir)
        files = sorted(self.base_dir.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(f"{base_dir}: no *.safetensors weight files for the online-merging base model")
        self._where: dict[str, Path] = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for f in files:  # each file opened once: its tensor names and shapes (headers only, no weights read)
            with safe_open(str(f), framework="pt") as st:
                for name in st.keys():
                    self._where[name], shapes[name] = f, tuple(st.get_slice(name).get_shape())
        for name, p in self._named():
            if name not in shapes:
                raise KeyError(f"{base_dir}: base checkpoint has no tensor {name!r}")
            if shapes[name] != tuple(p.shape):
                raise ValueError(f"{base_dir}: {name} has shape {shapes[name]}, the policy {tuple(p.shape)}")
        self._names: dict[torch.Tensor, str] = {}

    def _named(self):
        return [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]

    def _name_of(self, p: torch.Tensor) -> str | None:
        if p not in self._names:  # first lookup, or FSDP2 has replaced the parameters by DTensors since: look again
            self._names = {q: n for n, q in self._named()}
        return self._names.get(p)

    def __contains__(self, p) -> bool:
        return self._name_of(p) is not None

    def __getitem__(self, p: torch.Tensor) -> torch.Tensor:
        name = self._name_of(p)
        if name is None:
            raise KeyError("not a trainable parameter of the model")
        lo, hi = _Layout(p).rows
        with safe_open(str(self._where[name]), framework="pt") as st:
            piece = st.get_slice(name)
            base = piece[lo:hi] if p.dim() else piece[...]
        local = _local(p).detach()
        return local.to(torch.float32) - base.to(device=local.device, dtype=torch.float32)

    def __iter__(self):
        return (p for _, p in self._named())

    def __len__(self) -> int:
        return len(self._named())


def reference_deltas(model: nn.Module, base_dir: str | Path) -> TaskVector:
    """The SFT task vector of `model` against the base checkpoint in `base_dir` (see `TaskVector`)."""
    return TaskVector(model, base_dir)
