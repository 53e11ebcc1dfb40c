"""`qwenpost pipeline`: the whole recipe, each stage a real process, on one experiment directory.

Order: build verified data -> make the base checkpoint (tokenizer + model) -> SFT -> reward model ->
start the reward service (a separate process on a loopback port) -> DPO -> score the RL queries' reward variance
with the DPO policy (`python -m online_rl score`, the GRPO query order) -> GRPO against the service ->
evaluate base, SFT, DPO and GRPO on held-out queries (and on the benchmark files named in `eval_suites`, with
`qwenpost eval`'s suites) -> stop the service -> print one table.

Every stage is launched exactly as a user would launch it (`accelerate launch -m <stage> --config ...`) with
the experiment's paths as command-line overrides, and every stage config is parsed up front, so a wrong key
or value stops the pipeline before any work starts. Stage output is streamed to the console and kept in
`<run_dir>/logs/<stage>.log`. `--from_stage S` skips the stages before S and reuses their outputs in run_dir
(e.g. `--from_stage score` reruns only the query scoring, GRPO and the evaluations).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from datasets import load_from_disk
from transformers import Qwen2Config

from evals.heldout import evaluate_checkpoint
from evals.suites import SUITES, evaluate_suite, load_suite, summary_line
from pipeline.plan import PLANNED_STAGES, plan_stage
from pipeline.stages import STAGES
from qwen25.model import load_preset, make_config
from qwen25.tokenizer import QWEN25_SPECIAL_TOKENS
from reward.client import RewardClient, RewardServiceError
from stagekit.atomic import write_atomic
from stagekit.config import ConfigError, cli_flags
from stagekit.device import DEVICE_HELP, DTYPE_HELP, check_device_dtype


@dataclass
class PipelineConfig:
    experiment: str = field(default="tiny", metadata={"help": "experiment name: wandb group and run_dir name"})
    run_dir: str = field(default="runs/tiny", metadata={"help": "where every stage writes"})
    accelerate_config: str = field(default="configs/accelerate/cpu.yaml", metadata={"help": "for every stage"})
    stage_accelerate_configs: dict | str | None = field(  # str: a JSON object on the command line
        default_factory=dict,
        metadata={"help": "per training stage accelerate config, e.g. {dpo: configs/accelerate/fsdp2.yaml}; "
                  "the others use accelerate_config"},
    )
    gpus: int | None = field(
        default=None, metadata={"help": "GPUs per training stage for the memory plans (default: each accelerate "
                                        "config's num_processes)"}
    )
    gpu_memory_gib: float = field(default=80.0, metadata={"help": "GiB per GPU for the memory plans"})
    dry_run: bool = field(
        default=False,
        metadata={"help": "check every key and path, print each stage's command and memory plan, load nothing"},
    )
    data_config: str = field(default="configs/data/tiny.yaml", metadata={"help": "data builder config"})
    model_config: str = field(default="tiny", metadata={"help": "model preset (configs/model/) of the base"})
    base_checkpoint: str | None = field(
        default=None, metadata={"help": "a real base checkpoint dir; if unset one is made (tokenizer + random init)"}
    )
    tokenizer_vocab_size: int = field(default=2048, metadata={"help": "regular tokens of the offline tokenizer"})
    sft_config: str = field(default="configs/sft/tiny.yaml", metadata={"help": "SFT stage config"})
    reward_config: str = field(default="configs/reward/tiny.yaml", metadata={"help": "reward-model training config"})
    serve_config: str = field(default="configs/reward/serve_tiny.yaml", metadata={"help": "reward service config"})
    dpo_config: str = field(default="configs/dpo/tiny.yaml", metadata={"help": "DPO stage config"})
    grpo_config: str = field(default="configs/grpo/tiny.yaml", metadata={"help": "GRPO stage config"})
    stage_overrides: dict | str | None = field(  # str: a JSON object on the command line
        default_factory=dict, metadata={"help": "per stage extra keys, e.g. {sft: {max_steps: 2}}"}
    )
    eval_max_new_tokens: int = field(default=64, metadata={"help": "greedy tokens per held-out answer"})
    eval_batch_size: int = field(default=32, metadata={"help": "held-out prompts per generate call"})
    eval_limit: int | None = field(default=None, metadata={"help": "evaluate only the first N held-out rows"})
    eval_device: str = field(default="auto", metadata={"help": DEVICE_HELP})
    eval_dtype: str = field(default="auto", metadata={"help": DTYPE_HELP})
    eval_suites: dict = field(
        default_factory=dict,
        metadata={"help": "benchmarks run on every checkpoint: {suite: local file} (qwenpost eval's suites; "
                  "tiny_heldout: null = this run's held-out split), e.g. {gsm8k: data/gsm8k_test.jsonl}"},
    )
    seed: int = field(default=0, metadata={"help": "seed for the data builder and the base model"})
    service_start_timeout_s: float = field(default=180.0, metadata={"help": "wait for the service's /healthz"})
    from_stage: str | None = field(
        default=None, metadata={"help": "skip the stages before this one (their outputs in run_dir are reused)"}
    )

    def __post_init__(self):
        if isinstance(self.stage_overrides, str):
            self.stage_overrides = json.loads(self.stage_overrides)
        if isinstance(self.eval_suites, str):
            self.eval_suites = json.loads(self.eval_suites)
        if isinstance(self.stage_accelerate_configs, str):
            self.stage_accelerate_configs = json.loads(self.stage_accelerate_configs)
        self.stage_accelerate_configs = dict(self.stage_accelerate_configs or {})
        wrong = sorted(set(self.stage_accelerate_configs) - set(TRAINING_STAGES))
        if wrong:
            raise ConfigError(f"stage_accelerate_configs: {wrong} are not training stages {list(TRAINING_STAGES)}")
        unknown_suites = sorted(set(self.eval_suites or {}) - set(SUITES))
        if unknown_suites:
            raise ConfigError(f"eval_suites: unknown suite(s) {unknown_suites}; suites are {list(SUITES)}")
        unknown = sorted(set(self.stage_overrides) - set(OVERRIDABLE))
        if unknown:
            raise ConfigError(f"stage_overrides: unknown stage(s) {unknown}; stages are {list(OVERRIDABLE)}")
        if self.from_stage is not None and self.from_stage not in RUN_ORDER:
            raise ConfigError(f"from_stage: unknown stage {self.from_stage!r}; stages are {list(RUN_ORDER)}")
        check_device_dtype(self.eval_device, self.eval_dtype, where="eval_device/eval_dtype")
        for key in ("eval_max_new_tokens", "eval_batch_size", "tokenizer_vocab_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")


OVERRIDABLE = ("data", "sft", "reward", "serve", "dpo", "grpo")  # keys of stage_overrides; "score" takes grpo's
RUN_ORDER = ("data", "base", "sft", "reward", "dpo", "score", "grpo")  # what runs, in order (serve: before dpo)
TRAINING_STAGES = PLANNED_STAGES  # launched by `accelerate launch`; each gets a memory plan
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))  # either set makes a loadable tokenizer


class Pipeline:
    """The stage commands of one experiment, checked before anything runs."""

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rd = self.run_dir
        self.paths = {
            "data": rd / "data",
            "base": Path(cfg.base_checkpoint) if cfg.base_checkpoint else rd / "base",
            "sft": rd / "sft",
            "reward": rd / "reward",
            "dpo": rd / "dpo",
            "grpo": rd / "grpo",
        }
        d, common = self.paths["data"], {"experiment": cfg.experiment}
        self.stage_args = {
            "data": ["--config", cfg.data_config,
                     *cli_flags({"output_dir": d, "seed": cfg.seed, **cfg.stage_overrides.get("data", {})})],
            "sft": self._args(
                cfg.sft_config, "sft", model_name_or_path=self.paths["base"], dataset_path=d / "sft", **common
            ),
            "reward": self._args(
                cfg.reward_config,
                "reward",
                model_name_or_path=self.paths["sft"],
                dataset_path=d / "preference",
                eval_dataset_path=d / "preference_eval",
                **common,
            ),
            "serve": ["--config", cfg.serve_config, *cli_flags({
                "model_path": self.paths["reward"], "port": self.port, **cfg.stage_overrides.get("serve", {}),
            })],  # fmt: skip
            "dpo": self._args(
                cfg.dpo_config,
                "dpo",
                model_name_or_path=self.paths["sft"],
                online_merging_base_model=self.paths["base"],  # the task vector is SFT - the base SFT started from
                dataset_path=d / "preference",
                eval_dataset_path=d / "preference_eval",
                **common,
            ),
            "grpo": self._args(
                cfg.grpo_config,
                "grpo",
                model_name_or_path=self.paths["dpo"],
                dataset_path=d / "rl_queries",
                scored_dataset_path=d / "rl_queries_scored",
                # a config that turns the held-out curve off (`heldout_dataset_path: null`, as ZeRO-3's) keeps it off
                **({} if _turned_off(cfg.grpo_config, "heldout_dataset_path")
                   else {"heldout_dataset_path": d / "heldout"}),
                reward_url=self.url,
                **common,
            ),
        }
        self.stage_args["base"] = cli_flags({
            "model_config": cfg.model_config, "corpus_path": d / "sft", "output_dir": self.paths["base"],
            "tokenizer_vocab_size": cfg.tokenizer_vocab_size, "seed": cfg.seed,
        })  # fmt: skip
        self.stage_args["score"] = self.stage_args["grpo"]  # the same config: the policy GRPO starts from

    def _args(self, config: str, stage: str, **paths) -> list[str]:
        values = {**paths, "output_dir": self.paths[stage], **self.cfg.stage_overrides.get(stage, {})}
        return ["--config", config, *cli_flags(values)]

    def accelerate_config(self, name: str) -> str:
        return self.cfg.stage_accelerate_configs.get(name, self.cfg.accelerate_config)

    def validate(self) -> None:
        """Parse every stage config with the pipeline's overrides: wrong keys or values stop here."""
        # bf16 configs parse only on a GPU machine or with use_cpu; a CPU dry run of GPU configs checks them so
        cpu_parse = [] if torch.cuda.is_available() else ["--use_cpu", "true"]
        for name in OVERRIDABLE:  # "score" parses grpo's arguments: checked with them
            STAGES[name].parse(self.stage_args[name] + (cpu_parse if name in TRAINING_STAGES else []))
        skipped = RUN_ORDER[: RUN_ORDER.index(self.cfg.from_stage)] if self.cfg.from_stage else ()
        needed = {"data": self.paths["data"] / "rl_queries", "base": self.paths["base"] / "config.json",
                  "sft": self.paths["sft"] / "config.json", "reward": self.paths["reward"] / "config.json",
                  "dpo": self.paths["dpo"] / "config.json", "score": self.paths["data"] / "rl_queries_scored"}
        for name in skipped:
            if not needed[name].exists():
                raise ConfigError(
                    f"from_stage {self.cfg.from_stage}: stage {name} is skipped but {needed[name]} is missing"
                )
        if self.cfg.base_checkpoint:
            base = Path(self.cfg.base_checkpoint)
            if not (base / "config.json").is_file():
                raise ConfigError(f"base_checkpoint: {base} is not an HF checkpoint directory (no config.json)")
            if not any(all((base / f).is_file() for f in files) for files in TOKENIZER_FILES):
                raise ConfigError(f"base_checkpoint: {base} has no tokenizer (tokenizer.json, or vocab.json + "
                                  "merges.txt)")  # fmt: skip
        for suite, data in self.cfg.eval_suites.items():
            if suite != "tiny_heldout" or data is not None:  # a run's own held-out split does not exist yet
                load_suite(suite, data, limit=1)
        for name in TRAINING_STAGES:
            path = Path(self.accelerate_config(name))
            if not path.is_file():
                key = "accelerate_config" if name not in self.cfg.stage_accelerate_configs else \
                    f"stage_accelerate_configs.{name}"
                raise ConfigError(f"{key}: {path} not found")

    def command(self, name: str) -> list[str]:
        """The command a user would type for stage `name` (training stages: accelerate launch with the stage's
        accelerate config)."""
        return STAGES[name].command(self.stage_args[name], accelerate_config=self.accelerate_config(name))


def _turned_off(config: str, key: str) -> bool:
    """Whether the YAML `config` sets `key` to null explicitly."""
    try:
        values = yaml.safe_load(Path(config).read_text()) or {}
    except OSError:
        return False  # a missing file is reported by validate(), naming the stage
    return key in values and values[key] is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StageFailed(RuntimeError):
    pass


def run_logged(name: str, cmd: Sequence[str], log_dir: Path, env: dict | None = None) -> None:
    """Run a stage command, streaming its output to the console and to `<log_dir>/<name>.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    print(f"$ {shlex.join(str(c) for c in cmd)}", flush=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            log.write(chunk)
        code = proc.wait()
    if code != 0:
        raise StageFailed(f"stage {name} failed with exit code {code}; its log: {log_path}")


def start_service(cmd: Sequence[str], log_path: Path, url: str, timeout_s: float, env: dict) -> subprocess.Popen:
    """Start the reward service as its own process group and wait until /healthz answers."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {shlex.join(str(c) for c in cmd)} &", flush=True)
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the service
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    client = RewardClient(url, timeout=10, retries=0)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise StageFailed(f"reward service exited with code {proc.returncode}; its log: {log_path}")
            try:
                health = client.healthz()
                print(f"reward service up at {url}: {health}", flush=True)
                return proc
            except RewardServiceError:
                time.sleep(0.5)
        stop_service(proc)
        raise StageFailed(f"reward service did not answer {url}/healthz within {timeout_s:.0f} s; log: {log_path}")
    finally:
        client.close()


def stop_service(proc: subprocess.Popen) -> None:
    """SIGTERM the service's process group, SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _stage_env() -> dict:
    env = dict(os.environ)
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def dry_run(cfg: PipelineConfig) -> int:
    """`--dry_run`: check every key and path, print each stage's command and each training stage's memory plan;
    load no weights, start nothing. Returns the exit code: 0 when every config parses and every plan fits, 1 when
    a plan does not fit (ConfigError, exit 2, when a key or path is wrong)."""
    pipe = Pipeline(cfg)
    print(f"[qwenpost] dry run of {cfg.experiment}: checking the configs of every stage ...", flush=True)
    pipe.validate()
    base = Path(cfg.base_checkpoint) if cfg.base_checkpoint else None
    model_config = str(base) if base else _model_preset(cfg)
    provide = []
    if base is not None and not any(base.glob("*.safetensors")) and not any(base.glob("*.bin")):
        provide.append(f"{base}: no weight files (*.safetensors): the SFT stage loads them")
    data = {**(yaml.safe_load(Path(cfg.data_config).read_text()) or {}), **cfg.stage_overrides.get("data", {})}
    for area, spec in (data.get("areas") or {}).items():
        provide += [f"data area {area}: seed file {f} is missing" for f in (spec or {}).get("seed_files", [])
                    if not Path(f).is_file()]  # fmt: skip
    generator = data.get("generator") or {}
    services = []
    if generator.get("backend") == "openai":
        services.append(f"the data generator: an OpenAI-compatible server (vLLM) at {generator.get('base_url')} "
                        f"serving {generator.get('model')!r} (`vllm serve ...`)")  # fmt: skip
    grpo = {**(yaml.safe_load(Path(cfg.grpo_config).read_text()) or {}), **cfg.stage_overrides.get("grpo", {})}
    if grpo.get("use_vllm") and grpo.get("vllm_mode", "server") == "server":
        services.append(f"the GRPO rollout server after DPO: `trl vllm-serve --model {pipe.paths['dpo']} --port "
                        f"{grpo.get('vllm_server_port', 8000)}` on GPUs of its own (docs/grpo.md)")  # fmt: skip
    fits = True
    for name in ("data", *(() if base else ("base",)), "sft", "reward", "serve", "dpo", "score", "grpo"):
        cmd = pipe.command(name)
        print(f"\n[qwenpost] === {name} ===\n$ {shlex.join(str(c) for c in cmd)}" + (" &" if name == "serve" else ""))
        if name in TRAINING_STAGES:
            config = {"sft": cfg.sft_config, "reward": cfg.reward_config, "dpo": cfg.dpo_config,
                      "grpo": cfg.grpo_config}[name]  # fmt: skip
            result = plan_stage(
                config, stage=name, accelerate_config=pipe.accelerate_config(name), gpus=cfg.gpus,
                gpu_memory=cfg.gpu_memory_gib, model_config=model_config, overrides=cfg.stage_overrides.get(name),
            )  # fmt: skip
            print(result.render())
            fits &= result.fits
    if services:
        print("\n[qwenpost] servers the stages expect (start them yourself):")
        print("\n".join(f"  - {s}" for s in services))
    if provide:
        print("\n[qwenpost] to provide before launch:")
        print("\n".join(f"  - {p}" for p in provide))
    verdict = "every memory plan fits" if fits else "a memory plan DOES NOT FIT (see above)"
    print(f"\n[qwenpost] dry run done: every config parses, {verdict}; nothing was loaded or started", flush=True)
    return 0 if fits else 1


def _model_preset(cfg: PipelineConfig) -> Qwen2Config:
    """The config of the base the pipeline makes, as qwen25.init makes it: the preset, and when the preset leaves
    the vocabulary to the tokenizer, the tokenizer's size (its regular tokens plus Qwen2.5's control tokens)."""
    return make_config(load_preset(cfg.model_config), vocab_size=cfg.tokenizer_vocab_size + len(QWEN25_SPECIAL_TOKENS))


def run_pipeline(cfg: PipelineConfig) -> dict:
    """Run every stage; return and print the results table. Raises StageFailed naming the stage and its log."""
    pipe = Pipeline(cfg)
    print(f"[qwenpost] checking the configs of every stage ({cfg.experiment}) ...", flush=True)
    pipe.validate()
    run_dir, logs, env = pipe.run_dir, pipe.run_dir / "logs", _stage_env()
    run_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.monotonic()

    skipped = set(RUN_ORDER[: RUN_ORDER.index(cfg.from_stage)]) if cfg.from_stage else set()

    def stage(name: str, cmd: list[str]) -> None:
        if name in skipped:
            print(f"[qwenpost] skipping {name} (from_stage {cfg.from_stage}): reusing its output", flush=True)
            return
        print(f"\n[qwenpost] === {name} === ({time.monotonic() - t_all:.0f} s elapsed)", flush=True)
        t = time.monotonic()
        run_logged(name, cmd, logs, env)
        timings[name] = time.monotonic() - t

    stage("data", pipe.command("data"))
    if not cfg.base_checkpoint:
        stage("base", pipe.command("base"))
    stage("sft", pipe.command("sft"))
    stage("reward", pipe.command("reward"))

    print(f"\n[qwenpost] === serve === ({time.monotonic() - t_all:.0f} s elapsed)", flush=True)
    service = start_service(
        pipe.command("serve"),
        logs / "serve.log",
        pipe.url,
        cfg.service_start_timeout_s,
        env,
    )
    try:
        stage("dpo", pipe.command("dpo"))
        stage("score", pipe.command("score"))
        stage("grpo", pipe.command("grpo"))
        print(f"\n[qwenpost] === eval === ({time.monotonic() - t_all:.0f} s elapsed)", flush=True)
        t = time.monotonic()
        evaluations = evaluate_all(pipe, cfg)
        timings["eval"] = time.monotonic() - t
    finally:
        stop_service(service)
        print("[qwenpost] reward service stopped", flush=True)

    if cfg.eval_suites:
        print(f"\n[qwenpost] === eval suites === ({time.monotonic() - t_all:.0f} s elapsed)", flush=True)
        t = time.monotonic()
        suites = evaluate_suites(pipe, cfg)
        timings["eval_suites"] = time.monotonic() - t
    results = {
        "experiment": cfg.experiment,
        "wall_time_s": time.monotonic() - t_all,
        "stage_time_s": timings,
        "evaluations": evaluations,
        **({"suites": suites} if cfg.eval_suites else {}),
        "stage_summaries": {
            name: _read_json(pipe.paths[name] / "summary.json") for name in ("sft", "reward", "dpo", "grpo")
        },
    }
    table = format_table(results)
    print("\n" + table, flush=True)
    write_atomic(run_dir / "results.json", json.dumps(results, indent=2, default=float))
    write_atomic(run_dir / "results.md", table + "\n")
    return results


def evaluate_all(pipe: Pipeline, cfg: PipelineConfig) -> dict:
    rows = list(load_from_disk(str(pipe.paths["data"] / "heldout")))
    if cfg.eval_limit:
        rows = rows[: cfg.eval_limit]
    out = {}
    with RewardClient(pipe.url, timeout=120, retries=2) as client:
        for name in ("base", "sft", "dpo", "grpo"):
            result = evaluate_checkpoint(
                pipe.paths[name],
                rows,
                reward_client=client,
                max_new_tokens=cfg.eval_max_new_tokens,
                batch_size=cfg.eval_batch_size,
                label=f"eval {name}",
                device=cfg.eval_device,
                dtype=cfg.eval_dtype,
            )
            out[name] = result.as_dict()
            print(
                f"  {name:5s} accuracy {result.accuracy:.3f}  format {result.format_rate:.3f}  "
                f"reward {result.mean_reward:.3f}  e.g. {result.samples[0]['response'][:70]!r}",
                flush=True,
            )
    return out


def evaluate_suites(pipe: Pipeline, cfg: PipelineConfig) -> dict:
    """`qwenpost eval`'s suites on every checkpoint: {checkpoint: {suite: metrics}}; files in <run_dir>/eval/."""
    out: dict = {}
    for name in ("base", "sft", "dpo", "grpo"):
        for suite, data in cfg.eval_suites.items():
            if suite == "tiny_heldout" and data is None:
                data = pipe.paths["data"] / "heldout"
            result = evaluate_suite(
                pipe.paths[name], suite, data=data, limit=cfg.eval_limit, batch_size=cfg.eval_batch_size,
                max_new_tokens=cfg.eval_max_new_tokens if suite == "tiny_heldout" else None,  # else: the suite's
                out=pipe.run_dir / "eval" / name, experiment=cfg.experiment, device=cfg.eval_device,
                dtype=cfg.eval_dtype,
            )  # fmt: skip
            out.setdefault(name, {})[suite] = result["metrics"]
            print(f"  {name:5s} {summary_line(result)}", flush=True)
    return out


def format_table(results: dict) -> str:
    """The pipeline's one table: held-out metrics per checkpoint, plus what each stage reported."""
    evals, summaries = results["evaluations"], results["stage_summaries"]
    n = next(iter(evals.values()))["n"]
    notes = {
        "base": "random init",
        "sft": _note(summaries.get("sft"), "loss {first_loss:.2f} -> {last_loss:.2f}, {steps} steps"),
        "dpo": _note(summaries.get("dpo"), "eval pair accuracy {eval_reward_accuracy:.2f}, {steps} steps"),
        "grpo": _grpo_note(summaries.get("grpo")),
    }
    lines = [
        f"Experiment {results['experiment']}: held-out math ({n} queries, greedy); "
        f"wall time {results['wall_time_s'] / 60:.1f} min",
        "",
        "| checkpoint | accuracy | format-correct | mean reward | stage |",
        "|---|---|---|---|---|",
    ]
    for name, e in evals.items():
        lines.append(
            f"| {name} | {e['accuracy']:.3f} | {e['format_rate']:.3f} | {e['mean_reward']:.3f} | {notes[name]} |"
        )
    rm = summaries.get("reward") or {}
    if rm:
        acc = rm.get("eval_accuracy", rm.get("accuracy"))
        lines.append("")
        lines.append(f"Reward model: held-out pairwise accuracy {acc if acc is not None else 'n/a'}")
    for name, suites in results.get("suites", {}).items():
        cells = "; ".join(
            f"{suite} " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k != "n")
            for suite, metrics in suites.items()
        )
        lines.append(f"Benchmarks, {name}: {cells}")
    times = ", ".join(f"{k} {v:.0f}s" for k, v in results["stage_time_s"].items())
    lines.append(f"Stage times: {times}")
    return "\n".join(lines)


def _grpo_note(summary: dict | None) -> str:
    """The fullest of: train reward + held-out greedy and sampled verifier reward; + greedy only; train only."""
    train = "train reward {first_reward:.2f} -> {last_reward:.2f}, "
    heldout = "held-out verifier reward {heldout_verifier_first:.3f} -> {heldout_verifier_last:.3f}"
    sampled = " greedy, {heldout_sampled_verifier_first:.3f} -> {heldout_sampled_verifier_last:.3f} sampled"
    for fmt in (train + heldout + sampled + ", ", train + heldout + ", ", train):
        if note := _note(summary, fmt + "{steps} steps"):
            return note
    return ""


def _note(summary: dict | None, fmt: str) -> str:
    if not summary:
        return ""
    try:
        return fmt.format(**summary)
    except (KeyError, TypeError, ValueError):
        return ""


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None

