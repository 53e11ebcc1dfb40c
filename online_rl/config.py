"""Online RL (GRPO) stage config: TRL's `GRPOConfig` plus the policy, the queries, the reward service, the
variance-scoring pass (`python -m online_rl score`), provenance and the held-out reward curve."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from online_rl.rollout import ENGINES
from qwen25.attention.dca import parse_dca
from qwen25.memory_plan import MemoryCheckArguments
from qwen25.ops.fused_lm_head import FusedLinearCEArguments
from stagekit.config import ConfigError
from stagekit.device import DEVICE_HELP, DTYPE_HELP, check_device_dtype
from stagekit.lora import LoraArguments
from stagekit.tracking import ExperimentArguments

QUERY_ORDERS = ("variance", "dataset")


@dataclass
class GRPOStageConfig(GRPOConfig, LoraArguments, FusedLinearCEArguments, MemoryCheckArguments, ExperimentArguments):
    model_name_or_path: str = field(default="runs/tiny/dpo", metadata={"help": "policy to start from (DPO ckpt)"})
    dataset_path: str = field(
        default="runs/tiny/data/rl_queries", metadata={"help": "RL query rows: id, prompt, reference"}
    )
    reward_url: str = field(
        default="http://127.0.0.1:8765",
        metadata={"help": "base URL of `python -m reward serve`; several replicas: comma-separated"},
    )
    reward_timeout_s: float = field(default=120.0, metadata={"help": "per request to the reward service"})
    reward_retry_budget_s: float = field(
        default=120.0,
        metadata={"help": "a reward call retries connection errors, timeouts and 5xx for this long (rides out a "
                          "service restart); then the step fails naming the URLs"},
    )  # fmt: skip
    reward_retries: int | None = field(
        default=None, metadata={"help": "optional cap on retries per call, on top of reward_retry_budget_s"}
    )
    reward_backoff_s: float = field(
        default=1.0, metadata={"help": "first back-off after every replica failed; doubles (jittered), at most 10 s"}
    )
    reward_ready_timeout_s: float = field(
        default=60.0, metadata={"help": "how long to wait at start for the service's /healthz"}
    )
    reward_api_token: str | None = field(default=None, metadata={"help": "bearer token, if the service needs one"})
    # query ordering (report: queries ordered by the variance of their reward scores, highest first)
    min_reward_variance: float | None = field(
        default=None,
        metadata={
            "help": "train only on queries whose scoring-pass reward variance exceeds this (e.g. 0.0: drop groups "
            "that would all score alike and give zero advantage, as DAPO's dynamic sampling); unset: keep all"
        },
    )
    query_order: str = field(
        default="variance",
        metadata={"help": "'variance': train on scored_dataset_path, highest reward variance first, no shuffle; "
                  "'dataset': dataset_path as is (TRL's shuffle_dataset applies)"},
    )
    scored_dataset_path: str | None = field(
        default=None,
        metadata={"help": "where `python -m online_rl score` writes the queries with reward_variance and where "
                  "training reads them (default: <dataset_path>_scored)"},
    )
    score_samples: int = field(default=8, metadata={"help": "k: responses sampled per query by the scoring pass"})
    score_batch_size: int = field(default=32, metadata={"help": "queries per generate call in the scoring pass"})
    score_device: str = field(default="auto", metadata={"help": "the scoring pass's device: " + DEVICE_HELP})
    score_dtype: str = field(default="auto", metadata={"help": "the scoring pass's " + DTYPE_HELP})
    # per-sample provenance
    provenance_file: str | None = field(
        default=None, metadata={"help": "JSONL of every scored sample (default: <output_dir>/provenance.jsonl)"}
    )
    provenance_table_rows: int = field(
        default=64, metadata={"help": "rows of the provenance log sampled into a wandb table at the end (0 = none)"}
    )
    # held-out reward curve
    heldout_dataset_path: str | None = field(
        default=None, metadata={"help": "RL-query rows evaluated during training (none: no curve)"}
    )
    heldout_eval_steps: int = field(default=10, metadata={"help": "evaluate held-out queries every N steps"})
    heldout_limit: int | None = field(default=None, metadata={"help": "only the first N held-out rows"})
    heldout_max_new_tokens: int = field(default=64, metadata={"help": "greedy tokens per held-out answer"})
    heldout_samples: int = field(
        default=0,
        metadata={"help": "also sample k answers per held-out query at `temperature` (fixed seed, training RNG "
                  "untouched) and record their mean verifier reward, GRPO's objective; 0: greedy only"},
    )

    # sampling past the trained length
    dca: dict | str | None = field(  # str: a JSON object or "CHUNK_SIZE,LOCAL_SIZE" on the command line
        default=None,
        metadata={
            "help": "Dual Chunk Attention for generation and training, e.g. {chunk_size: 32768, local_size: 1024} "
            "or 32768,1024; 'off' disables it on a checkpoint whose config turns it on; unset: the checkpoint decides"
        },
    )

    # rollouts: our engine (online_rl/rollout.py), asynchronous with a staleness bound; DAPO's dynamic sampling
    rollout_engine: str = field(
        default="trl",
        metadata={"help": "'trl': TRL's own generation (or its vLLM path with use_vllm); 'inline': our sampler in the "
                  "trainer, seeded per step, returning per-token log-probs (TRL's vllm_importance_sampling_* "
                  "correction then applies); 'worker': the same sampler in a worker process that generates ahead"},
    )  # fmt: skip
    max_staleness: int = field(
        default=0,
        metadata={"help": "worker only: batch b is sampled from policy version max(0, b - k); 0 = synchronous, "
                  "1 = one-step-off (generation of the next batch overlaps this step's update)"},
    )  # fmt: skip
    rollout_timeout_s: float = field(
        default=600.0, metadata={"help": "a worker that makes no batch for this long is called hung and restarted"}
    )
    rollout_max_restarts: int = field(default=3, metadata={"help": "worker restarts allowed in a run, then stop"})
    rollout_worker_threads: int | None = field(
        default=None, metadata={"help": "torch threads of the worker process (CPU); unset: torch's default"}
    )
    rollout_worker_device: str = field(default="auto", metadata={"help": "the worker's device: " + DEVICE_HELP})
    dynamic_sampling: bool = field(
        default=False,
        metadata={"help": "DAPO: drop groups whose rewards are all equal and sample further queries until the batch "
                  "is full (online_rl/trainer.py)"},
    )  # fmt: skip
    max_resample_rounds: int = field(
        default=3, metadata={"help": "dynamic sampling: refill rounds per step before training on a short batch"}
    )
    # multi-turn tool use (online_rl/tools.py; with rollout_engine inline; TRL's max_tool_calling_iterations applies)
    tools_file: str | None = field(
        default=None,
        metadata={"help": "JSON toolbox {tools: [function specs], implementation: Python source}: tool calls in "
                  "episodes run in the sandbox and their results come back as tool turns (masked out of the loss)"},
    )  # fmt: skip
    tool_timeout_s: float = field(default=5.0, metadata={"help": "sandbox time limit of one tool call"})
    tool_result_max_chars: int = field(
        default=2000, metadata={"help": "a tool message (result or error) longer than this is cut, saying so"}
    )
    padding_free: bool = field(
        default=False,
        metadata={"help": "old-policy, reference and update log-prob passes on packed sequences "
                          "(online_rl/packed.py)"},
    )

    def __post_init__(self):
        if self.loss_type == "gspo":  # GSPO (Zheng et al. 2025): sequence-level ratios under GRPO's per-sequence loss
            self.loss_type, self.importance_sampling_level = "grpo", "sequence"
        super().__post_init__()
        self.check_lora()
        self.check_rollouts()
        self.dca = parse_dca(self.dca, key="dca")
        if self.query_order not in QUERY_ORDERS:
            raise ConfigError(f"query_order must be one of {QUERY_ORDERS}, got {self.query_order!r}")
        if self.min_reward_variance is not None and self.query_order != "variance":
            raise ConfigError("min_reward_variance needs query_order: variance (the scoring pass measures it)")
        if self.query_order == "variance":
            self.shuffle_dataset = False  # the order is the point: TRL's RepeatSampler walks the sorted rows
        if self.scored_dataset_path is None:
            self.scored_dataset_path = self.dataset_path.rstrip("/") + "_scored"
        check_device_dtype(self.score_device, self.score_dtype, where="score_device/score_dtype")
        for key in ("score_samples", "score_batch_size", "heldout_eval_steps", "heldout_max_new_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.score_samples < 2:
            raise ConfigError(f"score_samples must be >= 2 to measure a variance, got {self.score_samples}")
        if self.heldout_samples < 0:
            raise ConfigError(f"heldout_samples must be >= 0, got {self.heldout_samples}")
        if self.provenance_table_rows < 0:
            raise ConfigError(f"provenance_table_rows must be >= 0, got {self.provenance_table_rows}")


    def check_rollouts(self) -> None:
        if self.rollout_engine not in ENGINES:
            raise ConfigError(f"rollout_engine must be one of {ENGINES}, got {self.rollout_engine!r}")
        if self.max_staleness < 0:
            raise ConfigError(f"max_staleness must be >= 0, got {self.max_staleness}")
        if self.max_staleness and self.rollout_engine != "worker":
            raise ConfigError("max_staleness > 0 needs rollout_engine: worker (the inline engine is synchronous)")
        if self.rollout_engine != "trl":
            clash = [key for key in ("use_vllm", "use_transformers_continuous_batching") if getattr(self, key, False)]
            if clash:
                raise ConfigError(f"rollout_engine {self.rollout_engine!r} generates itself: unset {clash} "
                                  "(or use rollout_engine: trl)")  # fmt: skip
            if self.num_iterations != 1 or self.steps_per_generation != self.gradient_accumulation_steps:
                raise ConfigError(
                    f"rollout_engine {self.rollout_engine!r} needs one generation batch per optimizer step "
                    f"(num_iterations 1, steps_per_generation = gradient_accumulation_steps); got num_iterations "
                    f"{self.num_iterations}, steps_per_generation {self.steps_per_generation}"
                )
        if self.tools_file and self.rollout_engine != "inline":
            raise ConfigError("tools_file (multi-turn tool episodes) needs rollout_engine: inline")
        if self.tools_file and getattr(self, "tools", None):
            raise ConfigError("set tools_file (sandboxed tool episodes) or TRL's tools, not both")
        if not 0 < self.tool_timeout_s <= 30:
            raise ConfigError(f"tool_timeout_s must be in (0, 30], got {self.tool_timeout_s}")
        if self.tool_result_max_chars < 64:
            raise ConfigError(f"tool_result_max_chars must be >= 64, got {self.tool_result_max_chars}")
        if self.rollout_engine == "worker" and self.use_peft:
            raise ConfigError("rollout_engine: worker publishes full weights; with use_peft use rollout_engine inline")
        check_device_dtype(self.rollout_worker_device, "auto", where="rollout_worker_device")
        for key in ("rollout_timeout_s",):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        for key in ("rollout_max_restarts", "max_resample_rounds"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.dynamic_sampling and self.steps_per_generation != 1:
            raise ConfigError("dynamic_sampling trains on a batch whose size varies: it needs steps_per_generation 1 "
                              f"(gradient_accumulation_steps 1), got {self.steps_per_generation}")  # fmt: skip
