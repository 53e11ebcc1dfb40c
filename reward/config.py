"""The reward stage's configs, one module for all three commands: `python -m reward train` (`RewardTrainConfig`,
TRL's `RewardConfig` plus data and criterion), `python -m reward serve` (`ServeConfig`, the service) and
`python -m reward eval` (`RewardEvalConfig`). Each is parsed by `stagekit.config.parse_config` (YAML + command line,
unknown keys refused) and checks its values when built, so a bad config stops before a model loads."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from trl import RewardConfig

from qwen25.memory_plan import MemoryCheckArguments
from reward.combine import CRITERIA
from reward.judge import parse_judge
from stagekit.config import ConfigError
from stagekit.device import check_device_dtype
from stagekit.lora import LoraArguments
from stagekit.tracking import ExperimentArguments


@dataclass
class RewardTrainConfig(RewardConfig, LoraArguments, MemoryCheckArguments, ExperimentArguments):
    """TRL's RewardConfig (every TrainingArguments key) plus where the model and data come from."""

    model_name_or_path: str | None = field(default=None)  # SFT checkpoint directory (HF format, tokenizer inside)
    dataset_path: str | None = field(default=None)  # builders' preference pairs (save_to_disk); optional with files
    preference_files: list[str] | None = field(default=None)  # local JSONL preference files, added to dataset_path
    eval_dataset_path: str | None = field(default=None)  # held-out pairs for the final pairwise accuracy; optional
    eval_preference_files: list[str] | None = field(default=None)  # held-out JSONL preference files; optional
    criterion: str | None = field(default=None)  # train on rows labelled with this criterion only; None: all rows

    def __post_init__(self):
        super().__post_init__()
        self.check_lora()  # use_peft: LoRA on the backbone, the fresh score head trained in full (stagekit/lora.py)
        if self.criterion is not None and self.criterion not in CRITERIA:
            raise ConfigError(f"criterion: {self.criterion!r} is not one of the report's six {list(CRITERIA)}")


@dataclass
class RewardEvalConfig:
    """`python -m reward eval` settings."""

    model: str | None = field(default=None)  # reward-model checkpoint directory (`python -m reward train` output)
    reward_bench: str | None = field(default=None)  # local Reward Bench file (JSONL/JSON/parquet)
    eval_dataset_path: str | None = field(default=None)  # builders' held-out pairs (save_to_disk), optional
    preference_files: list[str] | None = field(default=None)  # local JSONL preference files, optional
    output_dir: str | None = field(default=None)  # where eval.json goes; default: the model directory
    batch_size: int = field(default=16)  # pairs per forward
    max_length: int = field(default=2048)  # longer inputs keep their last max_length tokens
    device: str = field(default="auto")  # stagekit.device: "auto" (accelerate's device), "cpu", "cuda:1", ...
    dtype: str = field(default="auto")  # "auto" (fp32 on CPU; on GPU the checkpoint's 16-bit dtype or bf16), ...

    def __post_init__(self):
        check_device_dtype(self.device, self.dtype)


@dataclass
class ServeConfig:
    """Reward service settings (YAML + command line through TrlParser)."""

    model_path: str | None = None  # `python -m reward train` output directory; required unless weights.rm is 0
    # Per-criterion reward models, {criterion: checkpoint dir} (criteria: reward.combine.CRITERIA); each needs a
    # weight of the same name. A JSON string on the command line.
    criterion_models: dict | str | None = None
    model_version: str | None = None  # part of every cache key; default: a hash of the checkpoints' files
    host: str = "127.0.0.1"  # interface to bind; loopback by default so nothing is exposed by accident
    port: int = 8765  # TCP port
    api_token: str | None = None  # if set, /v1/score and /metrics need `Authorization: Bearer <token>`
    # Weights of the reward components; our design default (the report gives none): a verified answer outranks any
    # reward-model preference, the model breaks ties. A JSON string on the command line: --weights '{"rm": 0.5, ...}'.
    weights: dict | str | None = field(default_factory=lambda: {"rm": 0.2, "verifier": 1.0})
    rm_shift: float = 0.0  # subtracted from every RM logit before tanh (recentres an RM trained without centring)
    rm_scale: float = 1.0  # RM logits are divided by this before tanh: the logit range that maps to (-1, 1)
    length_penalty: float = 0.0  # reward subtracted per 1,000 response characters beyond length_penalty_free_chars
    length_penalty_free_chars: int = 2000  # responses up to this many characters get no length penalty
    max_batch_size: int = 64  # most items in one reward-model forward
    max_wait_ms: float = 5.0  # longest an item waits for others to join its batch
    max_items_per_request: int = 256  # larger requests get 413; the client splits its calls to fit
    max_request_bytes: int = 16_000_000  # larger bodies get 413 before they are parsed
    max_pending_items: int = 8192  # admitted, unfinished items across requests; beyond -> 503 + Retry-After
    retry_after_s: int = 1  # the Retry-After a 503 carries
    cache_size: int = 65536  # LRU entries of item results (0 turns the cache and in-flight sharing off)
    verifier_workers: int = 4  # verifier worker processes (killable), and as many threads for thread_verifiers
    verifier_timeout_s: float = 30.0  # a verifier still running after this is killed: a "timeout" component
    verifier_memory_mb: int = 2048  # address-space limit of each verifier worker process (sympy on a huge number)
    # Verifier types run on threads instead of the killable processes: those whose untrusted part already runs in
    # a process of its own with a wall-clock kill (the sandbox), and whose own Python work is bounded.
    thread_verifiers: list[str] = field(default_factory=lambda: ["code", "instruction_code"])
    # Extra verifier types, {type: "module:function"} with function(response, reference) -> VerifierResult; they
    # are looked up before the `verifiers` registry. A JSON string on the command line.
    extra_verifiers: dict | str | None = None
    max_length: int = 2048  # longest RM input in tokens; longer ones keep their last max_length tokens
    device: str = "auto"  # stagekit.device: "auto" (accelerate's device: a GPU if any), "cpu", "cuda:1", ...
    dtype: str = "auto"  # RM weights: "auto" (fp32 on CPU; on GPU the checkpoint's 16-bit dtype or bf16), float32, ...
    torch_threads: int = 0  # intra-op CPU threads of the RM forward; 0 = torch's default (1 is fastest on busy CPUs)
    keep_alive_s: float = 75.0  # idle HTTP keep-alive; longer than GRPO's gaps between steps, so clients reuse sockets
    # A judge model grading each response against a rubric (reward/judge.py): {backend: hf | openai, the backend's
    # settings, rubric: <criterion or text>, weight, timeout_s, max_chars, max_batch_size}; None: no judge. A JSON
    # string on the command line. Checked here (ConfigError naming the key) and kept with its defaults filled in.
    judge: dict | str | None = None

    def __post_init__(self):
        self.criterion_models = parse_mapping(self.criterion_models, "criterion_models")
        self.extra_verifiers = parse_mapping(self.extra_verifiers, "extra_verifiers")
        self.weights = parse_weights(self.weights, criteria=tuple(self.criterion_models))
        judge = parse_judge(self.judge)
        self.judge = judge.as_config() if judge is not None else None
        if self.api_token is None:
            self.api_token = os.environ.get("REWARD_API_TOKEN") or None
        for key in ("max_batch_size", "max_items_per_request", "verifier_workers", "max_length", "max_pending_items",
                    "verifier_memory_mb"):  # fmt: skip
            if getattr(self, key) < 1:
                raise ConfigError(f"`{key}` must be >= 1, got {getattr(self, key)}")
        for key in ("cache_size", "max_request_bytes", "retry_after_s", "length_penalty", "length_penalty_free_chars",
                    "torch_threads", "keep_alive_s"):  # fmt: skip
            if getattr(self, key) < 0:
                raise ConfigError(f"`{key}` must be >= 0, got {getattr(self, key)}")
        if self.max_pending_items < self.max_items_per_request:
            raise ConfigError(
                f"`max_pending_items` ({self.max_pending_items}) must be >= `max_items_per_request` "
                f"({self.max_items_per_request}), or a full request could never be admitted"
            )
        if self.verifier_timeout_s <= 0:
            raise ConfigError(f"`verifier_timeout_s` must be > 0, got {self.verifier_timeout_s}")
        if self.rm_scale <= 0:
            raise ConfigError(f"`rm_scale` must be > 0, got {self.rm_scale}")
        check_device_dtype(self.device, self.dtype)
        if self.max_wait_ms < 0:
            raise ConfigError(f"`max_wait_ms` must be >= 0, got {self.max_wait_ms}")
        if self.weights["rm"] != 0 and not self.model_path:
            raise ConfigError("`model_path` is required when weights.rm != 0 (weights.rm: 0 serves verifiers only)")
        for name in self.criterion_models:
            if name not in CRITERIA:
                raise ConfigError(f"`criterion_models`: unknown criterion {name!r}; known: {list(CRITERIA)}")


def parse_mapping(value: dict | str | None, key: str) -> dict[str, str]:
    """A {name: string} config mapping from YAML or a JSON string on the command line; None -> {}."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"`{key}` is not valid JSON: {value!r}") from err
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"`{key}` must be a mapping of names to strings, got {value!r}")
    return dict(value)


def parse_weights(value: dict | str | None, *, criteria: Sequence[str] = ()) -> dict[str, float]:
    """`weights` from YAML (a mapping) or the command line (a JSON string) -> {"rm", "verifier", *criteria: float}."""
    expected = {"rm", "verifier", *criteria}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"`weights` is not valid JSON: {value!r}") from err
    if not isinstance(value, dict) or set(value) != expected:
        raise ConfigError(
            f"`weights` must have exactly the keys {sorted(expected)} (rm, verifier and one per criterion model), "
            f"got {value!r}"
        )
    try:
        return {key: float(weight) for key, weight in value.items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"`weights` values must be numbers, got {value!r}") from err
