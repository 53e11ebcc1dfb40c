"""Per-GPU memory of a training step, term by term, before anything is loaded: `qwenpost plan` and every training
stage's start-up check (`check_memory`).

Why by hand: DeepSpeed ships estimators for its ZeRO model states (`estimate_zero2_model_states_mem_needs`,
`estimate_zero3_model_states_mem_needs`), used here for those terms when DeepSpeed is installed (their formulas,
quoted below, otherwise). Nothing in the field estimates the rest of a Qwen2.5 step: activations with and without
gradient checkpointing, the LM head's logits with and without our fused loss, DPO's reference, GRPO's KV cache, the
Online Merging Optimizer's task vector, FSDP2's shards. accelerate's `estimate-memory` counts weights only.

Terms (bytes per GPU; P parameters, N GPUs, T tokens per GPU per micro-batch, b bytes per activation element:
2 in bf16, 4 in fp32; h hidden, I intermediate, L layers, V vocabulary, n_h heads, kv = n_kv * head_dim):
  model states   unsharded (one process, DDP): fp32 weights 4P + fp32 gradients 4P + Adam moments 8P, and in bf16
                 autocast's cached bf16 weight copies 2P; ZeRO-2/3: DeepSpeed's estimator; FSDP2: (4 + 4 + 8) P / N
                 plus two layers unsharded in bf16 (the one computing and the one prefetched) and their gradients
  task vector    Online Merging: the sparsified SFT - base, stored dense in fp32: 4P (/ N under FSDP2)
  activations    what autograd keeps per token per layer, derived from transformers' Qwen2 decoder layer:
                 2 RMSNorms x (fp32 input + fp32 normalised + b-byte output) = 2 (8h + b h); attention keeps
                 q, k, v after RoPE and its output, b (2h + 2kv), and its fp32 log-sum-exp, 4 n_h; the MLP keeps
                 gate, up, silu(gate) and their product, 4 b I.
                 Without checkpointing: L T of that. With checkpointing: each layer's input, L T h b, plus one
                 layer recomputed, T of that.
  loss head      full logits: T V (b + 8): the b-byte logits, the fp32 log-softmax and the fp32 gradient; with
                 our fused loss: one chunk of min(T, 2^26 / V) tokens' fp32 logits and its gradient, whatever T is.
  DPO reference  precomputed/cached log-probs: 0; a frozen reference model: its b-byte weights (/ N if sharded)
  GRPO KV cache  generation on the training GPU: 2 L kv b x sequences x (prompt + completion); served by vLLM on
                 other GPUs: 0 here (the server's own memory is its `gpu_memory_utilization`).
A plan fits when the sum is at most `usable` (0.9 by default) of the GPU's memory: the rest is the CUDA context,
the allocator's fragmentation and NCCL buffers. Validated against measured peaks: `benchmarks/memory_plan.py`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from accelerate.utils import parse_flag_from_env

from qwen25.ops.fused_linear_ce import CHUNK_ELEMENTS
from stagekit.errors import ConfigError

GIB = 1024**3
SHARDINGS = ("none", "ddp", "zero2", "zero3", "fsdp2")


@dataclass(frozen=True)
class Architecture:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    tie_word_embeddings: bool

    @classmethod
    def from_config(cls, config) -> Architecture:
        """From a transformers config, a config.json / model yaml mapping, or the path of either."""
        if isinstance(config, (str, Path)):
            path = Path(config)
            path = path / "config.json" if path.is_dir() else path
            config = yaml.safe_load(path.read_text())  # JSON is YAML
        get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
        heads = get("num_attention_heads")
        return cls(
            vocab_size=get("vocab_size"), hidden_size=get("hidden_size"), intermediate_size=get("intermediate_size"),
            num_hidden_layers=get("num_hidden_layers"), num_attention_heads=heads,
            num_key_value_heads=get("num_key_value_heads") or heads,
            head_dim=get("head_dim") or get("hidden_size") // heads,
            tie_word_embeddings=bool(get("tie_word_embeddings", False)),
        )  # fmt: skip

    @property
    def layer_params(self) -> int:
        h, q, kv, i = self.hidden_size, self.num_attention_heads * self.head_dim, self.kv_width, self.intermediate_size
        return (h * q + q) + 2 * (h * kv + kv) + q * h + 3 * h * i + 2 * h  # q, k, v (with bias), o, MLP, 2 norms

    @property
    def kv_width(self) -> int:
        return self.num_key_value_heads * self.head_dim

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def total_params(self) -> int:
        heads = 1 if self.tie_word_embeddings else 2
        return heads * self.embedding_params + self.num_hidden_layers * self.layer_params + self.hidden_size

    @property
    def largest_layer_params(self) -> int:
        return max(self.embedding_params, self.layer_params)

    def activation_bytes_per_token_layer(self, b: int) -> int:
        h, i = self.hidden_size, self.intermediate_size
        return 2 * (8 * h + b * h) + b * (2 * h + 2 * self.kv_width) + 4 * self.num_attention_heads + 4 * b * i


@dataclass
class Launch:
    """How the step is spread: `sharding` one of SHARDINGS over `gpus` GPUs (`gpus_per_node` each node)."""

    sharding: str = "none"
    gpus: int = 1
    gpus_per_node: int = 8
    offload_optimizer: bool = False
    offload_params: bool = False

    @classmethod
    def from_accelerate_config(cls, path: str | Path | None, gpus: int | None = None) -> Launch:
        if path is None:
            return cls(sharding="none" if (gpus or 1) == 1 else "ddp", gpus=gpus or 1)
        cfg = yaml.safe_load(Path(path).read_text()) or {}
        gpus = gpus or int(cfg.get("num_processes", 1)) * int(cfg.get("num_machines", 1))
        per_node = min(gpus, int(cfg.get("num_processes", gpus)) // max(1, int(cfg.get("num_machines", 1))) or gpus)
        kind = cfg.get("distributed_type", "NO")
        if kind == "DEEPSPEED":
            ds = cfg.get("deepspeed_config", {})
            stage = int(ds.get("zero_stage", 2))
            if stage not in (2, 3):
                raise ValueError(f"{path}: zero_stage {stage}: the plan covers ZeRO-2 and ZeRO-3")
            return cls(
                sharding=f"zero{stage}", gpus=gpus, gpus_per_node=per_node,
                offload_optimizer=ds.get("offload_optimizer_device", "none") not in ("none", None),
                offload_params=ds.get("offload_param_device", "none") not in ("none", None),
            )  # fmt: skip
        if kind == "FSDP":
            version = str(cfg.get("fsdp_config", {}).get("fsdp_version", 1))
            if version != "2":
                raise ValueError(f"{path}: FSDP version {version}: the plan covers FSDP2 (fsdp_version: 2)")
            offload = bool(cfg["fsdp_config"].get("fsdp_offload_params", False))
            return cls(sharding="fsdp2", gpus=gpus, gpus_per_node=per_node, offload_params=offload,
                       offload_optimizer=offload)  # fmt: skip
        return cls(sharding="ddp" if gpus > 1 else "none", gpus=gpus, gpus_per_node=per_node)


@dataclass
class Workload:
    """One training micro-step on one GPU."""

    stage: str  # sft | dpo | grpo | reward
    tokens: int  # tokens per GPU per micro-batch (DPO: chosen + rejected)
    gradient_checkpointing: bool = True
    fused_loss: bool = True
    compute_bytes: int = 2  # bf16 autocast: 2; fp32: 4
    optimizer: str = "adamw"  # or online_merging
    reference: str = "none"  # DPO: cached | model
    kv_cache_sequences: int = 0  # GRPO generating on the training GPU: sequences x kv_cache_length
    kv_cache_length: int = 0
    generation_note: str = ""
    loss_head: bool = True  # False for a reward model's scalar head


@dataclass
class Term:
    name: str
    bytes: int
    how: str
    sharded: bool = False  # shrinks as 1/N with more GPUs


@dataclass
class Plan:
    architecture: Architecture
    workload: Workload
    launch: Launch
    gpu_memory_gib: float
    usable: float
    terms: list[Term] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(t.bytes for t in self.terms)

    @property
    def budget(self) -> float:
        return self.gpu_memory_gib * GIB * self.usable

    @property
    def fits(self) -> bool:
        return self.total <= self.budget

    def render(self) -> str:
        a, w, launch = self.architecture, self.workload, self.launch
        where = f"{launch.gpus} GPU(s) x {self.gpu_memory_gib:g} GiB, {launch.sharding}"
        if launch.offload_optimizer or launch.offload_params:
            where += " + CPU offload" + (" (optimizer and parameters)" if launch.offload_params else " (optimizer)")
        lines = [
            f"memory plan: {w.stage}, {_count(a.total_params)} parameters ({a.num_hidden_layers} layers, hidden "
            f"{a.hidden_size}, vocabulary {a.vocab_size:,}), {w.tokens:,} tokens per GPU per micro-batch, {where}",
            f"{'term':32s} {'GiB/GPU':>9s}  how",
        ]
        for t in self.terms:
            lines.append(f"{t.name:32s} {t.bytes / GIB:9.2f}  {t.how}")
        verdict = "fits" if self.fits else "DOES NOT FIT"
        lines.append(
            f"{'total':32s} {self.total / GIB:9.2f}  {verdict}: budget {self.budget / GIB:.1f} GiB "
            f"({self.usable:.0%} of {self.gpu_memory_gib:g} GiB)"
        )
        lines += [f"to fit: {a}" for a in self.advice] if not self.fits else []
        return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.1f}M"


def _zero_estimate(stage: int, arch: Architecture, launch: Launch) -> tuple[int, str]:
    """DeepSpeed's own estimator for the ZeRO model states per GPU (its formula when DeepSpeed is absent)."""
    p, nodes = arch.total_params, max(1, launch.gpus // launch.gpus_per_node)
    per_node = launch.gpus // nodes
    try:
        if stage == 2:
            from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs as estimate

            _, gpu = estimate(p, per_node, nodes, cpu_offload=launch.offload_optimizer)
        else:
            from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs as estimate

            _, gpu, _ = estimate(p, arch.largest_layer_params, per_node, nodes, cpu_offload=launch.offload_optimizer,
                                 cpu_offload_params=launch.offload_params, zero_init=True)  # fmt: skip
        return int(gpu), f"DeepSpeed's estimate_zero{stage}_model_states_mem_needs"
    except ImportError:  # the same formulas as DeepSpeed 0.19 (stage_1_and_2.py, stage3.py)
        n = launch.gpus
        if stage == 2:
            gpu = 2 * p if launch.offload_optimizer else 2 * p + 18 * p // n
        elif launch.offload_optimizer and launch.offload_params:
            gpu = 4 * arch.largest_layer_params
        elif launch.offload_optimizer:
            gpu = 4 * arch.largest_layer_params + 2 * p // n
        else:
            gpu = 4 * arch.largest_layer_params + 18 * p // n
        return gpu, f"DeepSpeed 0.19's ZeRO-{stage} estimator formula (deepspeed not installed)"


def plan(arch: Architecture, work: Workload, launch: Launch, gpu_memory_gib: float, usable: float = 0.9) -> Plan:
    out = Plan(arch, work, launch, gpu_memory_gib, usable)
    p, n, b, t = arch.total_params, launch.gpus, work.compute_bytes, work.tokens
    terms = out.terms
    sharded = launch.sharding in ("zero3", "fsdp2")
    if work.optimizer == "online_merging" and launch.sharding in ("zero2", "zero3"):
        raise ValueError("the Online Merging Optimizer is refused under DeepSpeed; plan it under fsdp2 or ddp")
    # model states
    if launch.sharding in ("none", "ddp"):
        terms.append(Term("weights (fp32)", 4 * p, "4 bytes x P, every GPU a full copy"))
        terms.append(Term("gradients (fp32)", 4 * p, "4 bytes x P"))
        terms.append(Term("Adam moments (fp32)", 8 * p, "8 bytes x P"))
        if b == 2:
            terms.append(Term("autocast bf16 weight copies", 2 * p, "bf16 autocast caches a copy of each weight"))
    elif launch.sharding in ("zero2", "zero3"):
        gpu, how = _zero_estimate(int(launch.sharding[-1]), arch, launch)
        terms.append(Term(f"ZeRO-{launch.sharding[-1]} model states", gpu, how, sharded=True))
    else:
        shard = 0 if launch.offload_params else 16 * p // n
        terms.append(Term("FSDP2 sharded states (fp32)", shard, "(4 weights + 4 gradients + 8 Adam) x P / N"
                          + (": offloaded to CPU" if launch.offload_params else ""), sharded=True))  # fmt: skip
        terms.append(Term("FSDP2 unsharded layers", 2 * 2 * arch.largest_layer_params * 2,
                          "2 layers gathered in bf16 (computing + prefetched) and their bf16 gradients"))  # fmt: skip
    if work.optimizer == "online_merging":
        terms.append(Term("task vector (online merging)", 4 * p // (n if sharded else 1),
                          "SFT - base in fp32" + (" / N" if sharded else ""), sharded=sharded))  # fmt: skip
    # activations
    per = arch.activation_bytes_per_token_layer(b)
    if work.gradient_checkpointing:
        terms.append(Term("activations (checkpointed)", arch.num_hidden_layers * t * arch.hidden_size * b + t * per,
                          f"L T h b layer inputs + one layer recomputed ({per:,} B/token)"))  # fmt: skip
    else:
        terms.append(Term("activations", arch.num_hidden_layers * t * per, f"L T x {per:,} B/token/layer"))
    # loss head
    if work.loss_head:
        if work.fused_loss:
            chunk = min(t, max(1, CHUNK_ELEMENTS // arch.vocab_size))
            terms.append(Term("loss head (fused)", 2 * 4 * chunk * arch.vocab_size,
                              f"a {chunk:,}-token chunk of fp32 logits and its gradient"))  # fmt: skip
        else:
            terms.append(Term("loss head (full logits)", t * arch.vocab_size * (b + 8),
                              f"T V (b + 8): {t:,} x {arch.vocab_size:,} logits, fp32 log-softmax and gradient"))
    if work.reference == "model":
        terms.append(Term("DPO reference model", b * p // (n if sharded else 1), "frozen copy, b bytes x P",
                          sharded=sharded))  # fmt: skip
    elif work.reference == "cached":
        terms.append(Term("DPO reference", 0, "log-probs precomputed once (cached on disk): no model in memory"))
    if work.stage == "grpo":
        kv = 2 * arch.num_hidden_layers * arch.kv_width * b * work.kv_cache_sequences * work.kv_cache_length
        terms.append(Term("generation KV cache", kv, work.generation_note or "2 L kv b x sequences x length"))
    out.advice = _advice(out)
    return out


def _advice(pl: Plan) -> list[str]:
    if pl.fits:
        return []
    w, launch = pl.workload, pl.launch
    tips = []
    if not w.gradient_checkpointing:
        tips.append("gradient_checkpointing: true (keeps one layer's activations instead of all of them)")
    if w.loss_head and not w.fused_loss:
        tips.append("fused_linear_ce: true (no tokens x vocabulary logits)")
    if w.reference == "model":
        tips.append("precompute_ref_log_probs: true (no reference model in memory)")
    states = sum(t.bytes for t in pl.terms if t.name.startswith(("weights", "gradients", "Adam", "autocast")))
    if launch.sharding in ("none", "ddp") and states > 0.3 * pl.budget:
        tips.append("shard the model states: --accelerate_config configs/accelerate/zero3.yaml"
                    + (" (fsdp2.yaml with the Online Merging Optimizer)" if w.optimizer == "online_merging" else ""))
    elif launch.sharding in ("zero3", "fsdp2", "zero2"):
        scaling = sum(t.bytes for t in pl.terms if t.sharded)
        fixed = pl.total - scaling
        if fixed < pl.budget:
            gpus = math.ceil(scaling * launch.gpus / (pl.budget - fixed))
            nodes = math.ceil(gpus / launch.gpus_per_node)
            tips.append(f"more GPUs: at least {gpus} ({nodes} nodes of {launch.gpus_per_node}); the sharded terms "
                        f"({scaling / GIB:.1f} GiB/GPU now) shrink as 1/N")
        if launch.sharding != "fsdp2" and not launch.offload_optimizer:
            tips.append("offload the optimizer to CPU: configs/accelerate/zero3_offload.yaml")
    if w.tokens > 4096:
        tips.append(f"fewer tokens per micro-batch ({w.tokens:,} now): lower per_device_train_batch_size or "
                    "max_length, raise gradient_accumulation_steps to keep the global batch")
    return tips or [f"a GPU with more than {pl.total / GIB / pl.usable:.0f} GiB"]


# --------------------------------------------------------------------------------------------- stage configs -> plan
def workload_from_stage(stage: str, cfg: Mapping, arch: Architecture) -> Workload:
    """The micro-step a stage config describes (`cfg`: the stage's YAML keys or its parsed config's attributes)."""
    get = cfg.get if isinstance(cfg, Mapping) else lambda k, d=None: getattr(cfg, k, d)
    rows = int(get("per_device_train_batch_size", 1) or 1)
    bf16 = bool(get("bf16", False)) or bool(get("fp16", False))
    common = dict(
        gradient_checkpointing=bool(get("gradient_checkpointing", False) or get("activation_checkpointing", False)),
        fused_loss=bool(get("fused_linear_ce", False)),
        compute_bytes=2 if bf16 else 4,
    )
    if stage == "sft":
        return Workload("sft", rows * int(get("max_length", 1024) or 1024), **common)
    if stage == "dpo":
        reference = "cached" if get("precompute_ref_log_probs", False) else "model"
        return Workload("dpo", 2 * rows * int(get("max_length", 1024) or 1024), optimizer=get("optimizer", "adamw"),
                        reference=reference, **common)  # fmt: skip
    if stage == "grpo":
        completion = int(get("max_completion_length", 256) or 256)
        prompt = int(get("max_prompt_length", 512) or 512)
        served = bool(get("use_vllm", False)) and get("vllm_mode", "server") == "server"
        seqs = 0 if served else max(rows, int(get("generation_batch_size", 0) or rows))  # TRL: one row, one sample
        note = ("generation on the vLLM server's GPUs, not here" if served
                else f"{seqs} sequences x {prompt + completion:,} tokens on this GPU")  # fmt: skip
        return Workload("grpo", rows * (prompt + completion), kv_cache_sequences=seqs,
                        kv_cache_length=prompt + completion, generation_note=note, **common)  # fmt: skip
    if stage == "reward":
        return Workload("reward", rows * 2 * int(get("max_length", 1024) or 1024), loss_head=False, **common)
    raise ValueError(f"no memory plan for stage {stage!r}")


# --------------------------------------------------------------------------------------------- start-up check
@dataclass
class MemoryCheckArguments:
    """The start-up memory check every training stage runs before loading weights (qwen25/memory_plan.py)."""

    skip_memory_check: bool = field(
        default=False, metadata={"help": "do not stop when the memory plan says the step does not fit the GPU"}
    )
    memory_check_gpu_gib: float | None = field(
        default=None,
        metadata={"help": "GPU memory (GiB) to plan against; default: the CUDA device's, no check without CUDA"},
    )


class MemoryPlanError(ConfigError):
    """The memory plan does not fit: the message is the whole plan and what to change."""


def check_memory(stage: str, cfg, model_dir: str | Path) -> Plan | None:
    """Plan this stage's step from its config, the checkpoint's config.json and the launch in the environment;
    raise MemoryPlanError (before any weights load) when it does not fit. No check without CUDA unless
    `memory_check_gpu_gib` says how much."""
    gib = getattr(cfg, "memory_check_gpu_gib", None)
    if gib is None:
        if not torch.cuda.is_available():
            return None
        gib = torch.cuda.get_device_properties(0).total_memory / GIB
    arch = Architecture.from_config(model_dir)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launch = _launch_from_env(world)
    result = plan(arch, workload_from_stage(stage, cfg, arch), launch, gib)
    if not result.fits and not getattr(cfg, "skip_memory_check", False):
        raise MemoryPlanError(result.render() + "\n(--skip_memory_check true starts anyway)")
    return result


def _launch_from_env(world: int) -> Launch:
    """The launch `accelerate launch` set up for this process, read from the environment it exports."""
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED"):
        stage = int(os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2"))
        return Launch(
            sharding=f"zero{3 if stage == 3 else 2}", gpus=world, gpus_per_node=per_node,
            offload_optimizer=os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none") != "none",
            offload_params=os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none") != "none",
        )  # fmt: skip
    if parse_flag_from_env("ACCELERATE_USE_FSDP") and os.environ.get("FSDP_VERSION") == "2":
        return Launch(sharding="fsdp2", gpus=world, gpus_per_node=per_node,
                      offload_params=parse_flag_from_env("FSDP_OFFLOAD_PARAMS"))
    return Launch(sharding="ddp" if world > 1 else "none", gpus=world, gpus_per_node=per_node)
