"""GRPO's rollout engine: our sampler with per-token log-probs, run in the trainer ("inline") or in a worker process
that generates the next batches while the trainer updates on the current one ("worker", `max_staleness` k).

Why hand-written. TRL's `experimental/async_grpo` overlaps generation and training only against a vLLM server
with NCCL weight transfer (CUDA only), and its plain `GRPOTrainer` generates in the training loop. What we take
from TRL: its `rollout_func` hook (the trainer calls it for each generation batch and accepts per-token log-probs
back) and its importance-sampling correction (`vllm_importance_sampling_correction/_mode/_clip_min/_clip_max`,
TRL's names, applied here to our generator too: the engine presents itself to TRL as its generation backend, so
TRL computes the old-policy log-probs and the truncated or masked weights exactly as on its vLLM path). What we
add, because nothing in TRL does it without CUDA: the worker process, the weight hand-off through safetensors
files on local disk (one machine, CPU or GPU), the staleness bound, persistence of in-flight rollouts for resume,
and the detection and restart of a dead or hung worker.

Determinism. Batch b (= the optimizer step that trains on it; one generation batch per step) is sampled with a
seed derived from (seed, b, refill round) and, with the worker, from policy version exactly max(0, b - k). So a
run does not depend on timing: `max_staleness: 0` through the worker equals the inline engine step for step
(fp32, same thread count), a killed run resumes to the same weights, and every rollout records its version.

Files under `<output_dir>/rollouts/`:
  weights/v<version>.safetensors   policy after <version> updates (written by the trainer, then renamed)
  batches/b<batch>.pt              a finished rollout: prompt and completion ids, per-token log-probs, version
  schedule.pt, worker.json         the prompt ids of every batch (TRL's own sampler) and the worker's settings
  rollouts.jsonl                   one row per trained batch: version, staleness, wait, restarts, reused
  worker.log                       the worker's output
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_model
from transformers import LogitsProcessor, LogitsProcessorList, TopKLogitsWarper, TopPLogitsWarper, TrainerCallback
from trl.models import unwrap_model_for_generation

from online_rl.tools import Episode, Toolbox, run_episodes
from stagekit.atomic import staged_file, write_atomic, write_json
from stagekit.config import ConfigError

ENGINES = ("trl", "inline", "worker")


class RolloutError(RuntimeError):
    """The rollout worker failed beyond its restart budget, or a rollout does not match the trainer's batch."""


def batch_seed(seed: int, batch: int, round_: int = 0) -> int:
    """The sampling seed of generation batch `batch` (refill round `round_` of dynamic sampling)."""
    return (seed * 1_000_003 + batch * 1_009 + round_) % (2**63 - 1)


class _LogprobRecorder(LogitsProcessor):
    """Turns the raw logits into the sampling distribution (temperature, then top-k / top-p) and records the
    log-probability of each token the sampler then draws: the token drawn at step t is read from `input_ids` at
    step t + 1 (and at the end from the sequences), so only one step's (batch, vocab) log-softmax is held."""

    def __init__(self, temperature: float, top_k: int, top_p: float):
        self.temperature = temperature
        self.warpers = [w for w in (TopKLogitsWarper(top_k) if top_k else None,
                                    TopPLogitsWarper(top_p) if top_p < 1.0 else None) if w is not None]  # fmt: skip
        self.previous: torch.Tensor | None = None
        self.logps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.previous is not None:
            self.logps.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1))
        scores = scores.float() / self.temperature
        for warper in self.warpers:
            scores = warper(input_ids, scores)
        self.previous = torch.log_softmax(scores, dim=-1)
        return scores

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        self.logps.append(self.previous.gather(1, last_tokens[:, None]).squeeze(1))
        return torch.stack(self.logps, dim=1)


@torch.no_grad()
def sample_with_logprobs(
    model, prompt_ids: Sequence[Sequence[int]], *, pad_token_id: int, eos_token_ids: Sequence[int],
    max_new_tokens: int, temperature: float, top_k: int = 0, top_p: float = 1.0, seed: int, greedy: bool = False,
) -> tuple[list[list[int]], list[list[float]]]:
    """Sample one completion per prompt (left-padded batch, transformers' generate with a KV cache) and return the
    completion ids, cut after the first EOS as TRL cuts them, with each token's log-probability under the
    distribution it was drawn from (log_softmax(logits / temperature), after top-k/top-p when set). The global torch
    RNG is reseeded with `seed` inside `fork_rng`, so the caller's RNG stream is untouched. `greedy`: the most
    likely token at each step (evaluation), its log-probability recorded the same way."""
    device = next(model.parameters()).device
    width = max(len(p) for p in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids):] = 1
    recorder = _LogprobRecorder(temperature, top_k, top_p)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        sequences = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), do_sample=not greedy,
            max_new_tokens=max_new_tokens, temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0,
            logits_processor=LogitsProcessorList([recorder]), pad_token_id=pad_token_id,
            eos_token_id=list(eos_token_ids),
        )  # fmt: skip
    completion = sequences[:, width:].cpu()
    logps = recorder.finish(completion[:, -1].to(recorder.previous.device)).float().cpu()
    eos = torch.isin(completion, torch.tensor(list(eos_token_ids)))
    completions, logprobs = [], []
    for row in range(completion.shape[0]):
        hits = eos[row].nonzero()
        end = int(hits[0]) + 1 if len(hits) else completion.shape[1]
        completions.append(completion[row, :end].tolist())
        logprobs.append(logps[row, :end].tolist())
    return completions, logprobs


def train_schedule(trainer, num_batches: int) -> list[list[int]]:
    """The dataset rows of each generation batch, from a fresh copy of TRL's own sampler (same seed, so the same
    order as the trainer's dataloader, epoch after epoch)."""
    size = trainer.args.generation_batch_size
    chunk = size * trainer.num_iterations * trainer.args.steps_per_generation
    sampler = trainer._get_train_sampler()
    batches: list[list[int]] = []
    while len(batches) < num_batches:
        flat = list(sampler)
        if len(flat) < chunk:
            raise ConfigError(f"the training set gives no full generation batch of {size} samples")
        batches.extend(flat[i : i + size] for i in range(0, len(flat) - chunk + 1, chunk))
    return batches[:num_batches]


class RolloutEngine(TrainerCallback):
    """TRL's `rollout_func` (the trainer calls it for each generation batch) and, to TRL, its generation backend:
    `sync_weights()` is called when the policy changed, so the worker gets the new weights. Inline: samples with the
    trainer's model. Worker: reads the batch the worker finished, restarting a dead or hung worker."""

    def __init__(self, cfg, *, engine: str, max_staleness: int = 0, toolbox: Toolbox | None = None):
        if engine not in ("inline", "worker"):
            raise ConfigError(f"rollout_engine: {engine!r} is not one of ('inline', 'worker')")
        self.cfg, self.engine, self.k = cfg, engine, max_staleness
        self.toolbox = toolbox
        if toolbox is not None and engine != "inline":
            raise ConfigError("tools_file (multi-turn tool episodes) needs rollout_engine: inline")
        self.root = Path(cfg.output_dir) / "rollouts"
        self.trainer = None
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self.round = 0  # dynamic sampling's refill round within a step (the trainer sets it)
        self.last_saved_step = 0
        self.persisted: set[int] = set()  # batches already on disk when this process started (a resume reuses them)

    # ---------------------------------------------------------------- set-up
    def attach(self, trainer) -> None:
        """Make TRL treat this engine as its generation backend (turns on its importance-sampling correction)."""
        self.trainer = trainer
        trainer.rollout_func = self
        trainer.use_vllm = True  # TRL gates old-policy log-probs and the IS weights on it; generation is ours
        trainer.vllm_generation = self
        trainer._last_loaded_step = -1  # the first batch publishes the starting (or resumed) weights
        trainer.add_callback(self)

    @property
    def weights_dir(self) -> Path:
        return self.root / "weights"

    @property
    def batches_dir(self) -> Path:
        return self.root / "batches"

    def on_train_begin(self, args, state, control, **kwargs):
        self.start(state.global_step, state.max_steps)

    def on_save(self, args, state, control, **kwargs):
        self.last_saved_step = state.global_step

    def on_train_end(self, args, state, control, **kwargs):
        self.stop()

    def start(self, step: int, max_steps: int) -> None:
        """Prune what a resumed run must not reuse, then (worker) write the schedule and start the worker."""
        self.last_saved_step = step
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / "rollouts.jsonl"
        if log.exists():  # rows of batches after the checkpoint: those batches are trained again
            rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            write_atomic(log, "".join(json.dumps(r) + "\n" for r in rows if r["batch"] < step))
        if self.engine != "worker":
            return
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        self.batches_dir.mkdir(parents=True, exist_ok=True)
        for path in self.weights_dir.glob("v*.safetensors"):
            if int(path.stem[1:]) > step:  # weights of a lineage the resumed run does not continue
                path.unlink()
        for path in self.batches_dir.glob("b*.pt"):
            b = int(path.stem[1:])
            if b < step or max(0, b - self.k) > step:  # consumed, or sampled from weights that no longer exist
                path.unlink()
        self.persisted = {int(path.stem[1:]) for path in self.batches_dir.glob("b*.pt")}
        trainer = self.trainer
        rows = train_schedule(trainer, max_steps)
        prompts = [[trainer.train_dataset[i]["prompt"] for i in batch] for batch in rows]
        schedule = [trainer._tokenize_prompts(batch)[0] for batch in prompts]
        with staged_file(self.root / "schedule.pt") as tmp:
            torch.save({"prompt_ids": schedule}, tmp)
        tok = trainer._tokenizer
        write_json(self.root / "worker.json", {
            "model_name_or_path": self.cfg.model_name_or_path, "dca": self.cfg.dca,
            "max_new_tokens": self.cfg.max_completion_length, "temperature": self.cfg.temperature,
            "top_k": self.cfg.top_k or 0, "top_p": self.cfg.top_p, "seed": self.cfg.seed, "max_staleness": self.k,
            "pad_token_id": tok.pad_token_id, "eos_token_ids": list(trainer.eos_token_ids),
            "threads": self.cfg.rollout_worker_threads, "device": self.cfg.rollout_worker_device,
            "parent_pid": os.getpid(),
        })  # fmt: skip
        self._spawn(step)

    def _spawn(self, start_batch: int) -> None:
        env = dict(os.environ)
        if self.cfg.rollout_worker_threads:
            env["OMP_NUM_THREADS"] = str(self.cfg.rollout_worker_threads)
        log = open(self.root / "worker.log", "a")  # noqa: SIM115 - the worker writes it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "online_rl.rollout_worker", str(self.root), "--start", str(start_batch)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None

    def __del__(self):
        self.stop()

    # ---------------------------------------------------------------- weights
    def sync_weights(self) -> None:
        """TRL calls this when the policy changed: publish version = global_step for the worker."""
        if self.engine != "worker":
            return
        step = self.trainer.state.global_step
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        path = self.weights_dir / f"v{step:08d}.safetensors"
        with staged_file(path) as tmp:
            save_model(model, str(tmp))
        keep_from = min(step, self.last_saved_step) - self.k  # a resume from the last checkpoint still needs these
        for old in self.weights_dir.glob("v*.safetensors"):
            if int(old.stem[1:]) < keep_from:
                old.unlink(missing_ok=True)

    # ---------------------------------------------------------------- rollouts
    def __call__(self, prompts: list, trainer) -> dict:
        step = trainer.state.global_step
        prompt_ids = trainer._tokenize_prompts(prompts)[0]
        started = time.monotonic()
        reused = False
        extra: dict = {}
        if self.toolbox is not None:
            episodes = self._episodes(trainer.model_wrapped, prompt_ids, batch_seed(trainer.args.seed, step,
                                                                                    self.round))
            completions = [e.completion_ids for e in episodes]
            logprobs = [e.logprobs for e in episodes]
            extra = {"env_mask": [e.env_mask for e in episodes], "final_response": [e.final_turn for e in episodes]}
            calls = sum(e.tool_calls for e in episodes)
            trainer._metrics["train"]["tools/calls_per_episode"].append(calls / len(episodes))
            trainer._metrics["train"]["tools/error_frac"].append(
                sum(e.tool_errors for e in episodes) / calls if calls else 0.0)
            version = step
        elif self.engine == "inline" or self.round > 0:  # dynamic sampling's refills: sampled with current weights
            completions, logprobs = self._sample(trainer.model_wrapped, prompt_ids, batch_seed(trainer.args.seed,
                                                                                               step, self.round))
            version = step
        else:
            rollout, reused = self._wait_for(step)
            if rollout["prompt_ids"] != prompt_ids:
                raise RolloutError(
                    f"rollout batch {step} was sampled for other prompts than the trainer's batch: the schedule in "
                    f"{self.root / 'schedule.pt'} does not follow TRL's sampler (delete {self.root} and rerun)"
                )
            completions, logprobs, version = rollout["completion_ids"], rollout["logprobs"], rollout["version"]
            if step - version > self.k:
                raise RolloutError(f"rollout batch {step} is from policy version {version}: staleness "
                                   f"{step - version} > max_staleness {self.k}")  # fmt: skip
        waited = time.monotonic() - started
        row = {"batch": step, "round": self.round, "version": version, "trained_at": step,
               "staleness": step - version, "wait_s": round(waited, 4), "restarts": self.restarts,
               "reused": reused, "engine": self.engine}  # fmt: skip
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "rollouts.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        metrics = trainer._metrics["train"]
        metrics["rollout/staleness"].append(float(step - version))
        metrics["rollout/wait_s"].append(waited)
        metrics["rollout/worker_restarts"].append(float(self.restarts))
        return {"prompt_ids": prompt_ids, "completion_ids": completions, "logprobs": logprobs,
                "policy_version": [version] * len(prompt_ids), **extra}  # fmt: skip

    def _sample(self, model, prompt_ids, seed, max_new_tokens: int | None = None):
        trainer = self.trainer
        with unwrap_model_for_generation(
            model, trainer.accelerator, gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as unwrapped:  # fmt: skip
            return sample_with_logprobs(
                unwrapped, prompt_ids, pad_token_id=trainer._tokenizer.pad_token_id,
                eos_token_ids=trainer.eos_token_ids, max_new_tokens=max_new_tokens or trainer.max_completion_length,
                temperature=trainer.temperature, top_k=trainer.args.top_k or 0, top_p=trainer.args.top_p, seed=seed,
            )  # fmt: skip

    def _episodes(self, model, prompt_ids, seed) -> list[Episode]:
        trainer = self.trainer
        iterations = trainer.args.max_tool_calling_iterations
        return run_episodes(
            lambda ids, budget, s: self._sample(model, ids, s, budget), trainer._tokenizer, self.toolbox, prompt_ids,
            max_new_tokens=trainer.max_completion_length, seed=seed,
            max_iterations=trainer.max_completion_length if iterations is None else iterations,
        )  # fmt: skip

    def _wait_for(self, batch: int) -> tuple[dict, bool]:
        """The worker's batch `batch`; a worker that exited or made no batch within rollout_timeout_s is killed and
        restarted (from the weights on disk), at most rollout_max_restarts times in the run."""
        path = self.batches_dir / f"b{batch:08d}.pt"
        reused = batch in self.persisted
        deadline = time.monotonic() + self.cfg.rollout_timeout_s
        while not path.exists():
            code = self.proc.poll() if self.proc is not None else -1
            if code is not None or time.monotonic() > deadline:
                reason = (f"exited with code {code}" if code is not None
                          else f"made no batch in {self.cfg.rollout_timeout_s:g} s (hung)")  # fmt: skip
                self.restarts += 1
                if self.restarts > self.cfg.rollout_max_restarts:
                    raise RolloutError(f"rollout worker {reason} waiting for batch {batch}; restarted "
                                       f"{self.restarts - 1} times already (rollout_max_restarts); see "
                                       f"{self.root / 'worker.log'}")  # fmt: skip
                print(f"[online_rl] rollout worker {reason} at batch {batch}: restarting it "
                      f"({self.restarts}/{self.cfg.rollout_max_restarts})", flush=True)  # fmt: skip
                self.stop()
                self._spawn(batch)
                deadline = time.monotonic() + self.cfg.rollout_timeout_s
            time.sleep(0.01)
        rollout = torch.load(path, weights_only=True)
        path.unlink()
        return rollout, reused
