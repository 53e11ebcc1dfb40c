"""Our rollout engine (online_rl/rollout.py) and trainer additions (online_rl/trainer.py): the sampler's per-token
log-probs against a full forward, importance weights computed by hand for a generator at another temperature,
dynamic sampling with scripted rewards, and real stage runs: the worker at staleness 0 equals the inline engine, at
staleness 1 no rollout is older than one version, a killed worker (SIGKILL) or a hung one (SIGSTOP) is restarted
and the run equals a run without faults, and a SIGKILLed asynchronous run resumes to the same weights."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from online_rl.rollout import batch_seed, sample_with_logprobs
from online_rl.trainer import flat_groups, join_outputs

ROOT = Path(__file__).resolve().parents[2]


def _prompt(i: int) -> list[dict]:
    return [{"role": "user", "content": "What is " + " + ".join(["1"] * (1 + i % 5)) + "?"}]


@pytest.fixture(scope="module")
def micro(micro_base):
    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer

    return load_model(micro_base).eval(), load_tokenizer(micro_base)


def _full_forward_logps(model, prompt_ids, completions, temperature):
    out = []
    for p, c in zip(prompt_ids, completions, strict=True):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logits = model(ids).logits[0, len(p) - 1 : -1].float()
        out.append(torch.log_softmax(logits / temperature, -1).gather(1, torch.tensor(c)[:, None]).squeeze(1))
    return out


def test_sampler_logprobs_equal_a_full_forward_at_the_sampling_temperature(micro):
    model, tok = micro
    texts = [tok.apply_chat_template(_prompt(i), add_generation_prompt=True, tokenize=False) for i in range(4)]
    prompt_ids = [tok(text, add_special_tokens=False)["input_ids"] for text in texts]
    assert len({len(p) for p in prompt_ids}) > 1  # ragged: left padding is exercised
    eos = [tok.eos_token_id]
    comps, logps = sample_with_logprobs(model, prompt_ids, pad_token_id=tok.pad_token_id, eos_token_ids=eos,
                                        max_new_tokens=12, temperature=0.7, seed=5)  # fmt: skip
    again, _ = sample_with_logprobs(model, prompt_ids, pad_token_id=tok.pad_token_id, eos_token_ids=eos,
                                    max_new_tokens=12, temperature=0.7, seed=5)  # fmt: skip
    assert comps == again  # seeded
    for got, want, c in zip(logps, _full_forward_logps(model, prompt_ids, comps, 0.7), comps, strict=True):
        assert len(got) == len(c) and torch.allclose(torch.tensor(got), want, atol=1e-5)
    # top-k: the log-prob is the one of the renormalised top-k distribution the token was drawn from
    comps, logps = sample_with_logprobs(model, prompt_ids, pad_token_id=tok.pad_token_id, eos_token_ids=eos,
                                        max_new_tokens=6, temperature=1.0, top_k=5, seed=1)  # fmt: skip
    for p, c, got in zip(prompt_ids, comps, logps, strict=True):
        with torch.no_grad():
            logits = model(torch.tensor([p + c])).logits[0, len(p) - 1 : -1].float()
        top = logits.topk(5, dim=-1)
        for t, token in enumerate(c):
            assert token in top.indices[t].tolist()
            want = torch.log_softmax(top.values[t], -1)[top.indices[t].tolist().index(token)]
            assert got[t] == pytest.approx(float(want), abs=1e-5)
    assert batch_seed(0, 3) != batch_seed(0, 4) != batch_seed(1, 3) and batch_seed(0, 3, 1) != batch_seed(0, 3)


# ---------------------------------------------------------------- trainer with scripted rewards


def _trainer(micro_base, tmp_path, *, rewards, engine_temperature=None, **overrides):
    """QwenGRPOTrainer on the micro model with the inline engine; `rewards(prompts, completions)` scripted."""
    from online_rl.config import GRPOStageConfig
    from online_rl.rollout import RolloutEngine
    from online_rl.trainer import QwenGRPOTrainer
    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer

    rows = Dataset.from_list([{"id": f"q{i}", "prompt": _prompt(i), "reference": "{}"} for i in range(8)])
    settings = dict(output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=8, report_to="none",
                    bf16=False, max_completion_length=6, seed=0, query_order="dataset", shuffle_dataset=False,
                    rollout_engine="inline", beta=0.0, logging_steps=1)  # fmt: skip
    cfg = GRPOStageConfig(**{**settings, **overrides})

    class Engine(RolloutEngine):  # a generator at another temperature than the trainer's: a known mismatch
        def _sample(self, model, prompt_ids, seed):
            if engine_temperature is None:
                return super()._sample(model, prompt_ids, seed)
            t = self.trainer
            return sample_with_logprobs(model, prompt_ids, pad_token_id=t._tokenizer.pad_token_id,
                                        eos_token_ids=t.eos_token_ids, max_new_tokens=t.max_completion_length,
                                        temperature=engine_temperature, seed=seed)  # fmt: skip

    def reward(prompts, completions, **kwargs):
        return rewards(prompts, completions)

    tok = load_tokenizer(micro_base)
    tok.padding_side = "left"
    return QwenGRPOTrainer(model=load_model(micro_base), reward_funcs=[reward], args=cfg, train_dataset=rows,
                           processing_class=tok, rollout_engine=Engine(cfg, engine="inline"))  # fmt: skip


def _inputs(trainer, queries: list[int]) -> list[dict]:
    return [dict(trainer.train_dataset[q]) for q in queries for _ in range(trainer.num_generations)]


@pytest.mark.parametrize("mode", ["sequence_mask", "token_truncate", "token_mask"])
def test_importance_weights_by_hand_for_a_generator_at_another_temperature(micro_base, tmp_path, mode):
    """Generator samples at T=0.7 and reports its log-probs; the trainer scores at T=1.0. The weight of each token
    is p_1.0(token) / p_0.7(token), from a full forward by hand; truncated or masked at the caps as configured."""
    cap_max, cap_min = (1.02, 0.98) if mode != "sequence_mask" else (1.08, None)  # bite on some tokens, not all
    trainer = _trainer(
        micro_base, tmp_path, rewards=lambda p, c: [float(len(x[0]["content"]) % 3) for x in c],
        engine_temperature=0.7, temperature=1.0, vllm_importance_sampling_mode=mode,
        vllm_importance_sampling_clip_max=cap_max, vllm_importance_sampling_clip_min=cap_min,
    )  # fmt: skip
    trainer.model.train()
    out = trainer._generate_and_score_completions(_inputs(trainer, [0, 1]))
    model = trainer.model
    ratio, mask = out["importance_sampling_ratio"], out["completion_mask"].bool()
    hand_ratios, hand_kl, clipped = [], [], []
    for row in range(out["completion_ids"].shape[0]):
        prompt = out["prompt_ids"][row][out["prompt_mask"][row].bool()].tolist()
        completion = out["completion_ids"][row][mask[row]].tolist()
        train = _full_forward_logps(model, [prompt], [completion], 1.0)[0]
        gen = _full_forward_logps(model, [prompt], [completion], 0.7)[0]
        log_w = train - gen
        hand_kl.extend((-log_w).tolist())
        if mode.startswith("sequence"):
            w = math.exp(float(log_w.sum()))
            clipped.append(w > cap_max)
            assert float(ratio[row, 0]) == pytest.approx(0.0 if w > cap_max else w, rel=1e-4, abs=1e-6)
            hand_ratios.append(w)
        else:
            w = torch.exp(log_w)
            want = w.clamp(cap_min, cap_max) if mode == "token_truncate" else torch.where(
                (w < cap_min) | (w > cap_max), torch.zeros_like(w), w)  # fmt: skip
            clipped.extend(((w < cap_min) | (w > cap_max)).tolist())
            assert torch.allclose(ratio[row][mask[row]], want, rtol=1e-4, atol=1e-6)
    assert any(clipped) and not all(clipped)  # the caps bite on some and not all: the case tests both branches
    metrics = trainer._metrics["train"]
    assert metrics["mismatch/kl"][-1] == pytest.approx(sum(hand_kl) / len(hand_kl), rel=1e-3, abs=1e-6)
    assert metrics["mismatch/clipped_frac"][-1] == pytest.approx(sum(clipped) / len(clipped))
    assert metrics["rollout/staleness"][-1] == 0.0


def test_same_temperature_inline_engine_has_no_mismatch(micro_base, tmp_path):
    trainer = _trainer(micro_base, tmp_path, rewards=lambda p, c: [0.0] * len(c))
    trainer.model.train()
    out = trainer._generate_and_score_completions(_inputs(trainer, [0, 1]))
    mask = out["completion_mask"].bool()
    assert torch.allclose(out["old_per_token_logps"][mask], out["sampling_per_token_logps"][mask], atol=1e-5)
    assert abs(trainer._metrics["train"]["mismatch/kl"][-1]) < 1e-5
    assert trainer._metrics["train"]["mismatch/clipped_frac"][-1] == 0.0


def test_flat_groups_and_join_outputs():
    assert flat_groups(torch.tensor([1.0, 1, 1, 0, 1, 0.5, 2, 2]), 2).tolist() == [True, False, False, True]
    a = {"prompt_ids": torch.tensor([[0, 5, 6], [7, 8, 9]]), "prompt_mask": torch.tensor([[0, 1, 1], [1, 1, 1]]),
         "completion_ids": torch.tensor([[1, 0], [2, 3]]), "completion_mask": torch.tensor([[1, 0], [1, 1]]),
         "advantages": torch.tensor([0.5, -0.5]), "num_items_in_batch": torch.tensor(3)}  # fmt: skip
    b = {"prompt_ids": torch.tensor([[4]]), "prompt_mask": torch.tensor([[1]]),
         "completion_ids": torch.tensor([[7, 7, 7]]), "completion_mask": torch.tensor([[1, 1, 1]]),
         "advantages": torch.tensor([1.0]), "num_items_in_batch": torch.tensor(3)}  # fmt: skip
    out = join_outputs([(a, torch.tensor([0])), (b, torch.tensor([0]))], pad_token_id=0)
    assert out["prompt_ids"].tolist() == [[0, 5, 6], [0, 0, 4]]
    assert out["prompt_mask"].tolist() == [[0, 1, 1], [0, 0, 1]]
    assert out["completion_ids"].tolist() == [[1, 0, 0], [7, 7, 7]]
    assert out["completion_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    assert out["advantages"].tolist() == [0.5, 1.0] and int(out["num_items_in_batch"]) == 4
    with pytest.raises(ValueError, match="pixel_values"):
        join_outputs([({**a, "pixel_values": torch.zeros(2, 1)}, torch.tensor([0]))], pad_token_id=0)


def test_dynamic_sampling_drops_flat_groups_and_refills_from_the_next_queries(micro_base, tmp_path):
    """Queries q0, q2, q4, q6 score all alike (flat); the others vary with the sample. A step's batch is q0, q1 (one
    flat group): q0 is dropped (dropped_frac 0.5) and the first refill round's query, q2 (flat), then q3 fill it."""
    def rewards(prompts, completions):
        ids = [int(p[-1]["content"].count("1")) - 1 for p in prompts]  # _prompt(i) has 1 + i % 5 ones
        return [1.0 if i % 2 == 0 else float(len(c[0]["content"]) + j) for j, (i, c) in
                enumerate(zip(ids, completions, strict=True))]  # fmt: skip

    trainer = _trainer(micro_base, tmp_path, rewards=rewards, dynamic_sampling=True, max_resample_rounds=3,
                       per_device_train_batch_size=8)  # fmt: skip
    trainer.model.train()
    out = trainer._generate_and_score_completions(_inputs(trainer, [0, 1]))
    metrics = trainer._metrics["train"]
    assert metrics["dynamic_sampling/dropped_frac"][-1] == 0.5
    assert metrics["dynamic_sampling/kept_groups"][-1] == 2.0 and metrics["dynamic_sampling/short_batch"][-1] == 0
    assert out["completion_ids"].shape[0] == 8 and out["advantages"].shape == (8,)
    assert all(out["advantages"].view(-1, 4).abs().amax(dim=1) > 0)  # every group kept has signal
    assert int(out["num_items_in_batch"]) == int(out["completion_mask"].sum())
    assert metrics["dynamic_sampling/rounds"][-1] == 2  # round 1 drew q2 (flat again), round 2 drew q3

    # every query flat: max_resample_rounds rounds, then the step's own batch as it is, and the log says so
    trainer = _trainer(micro_base, tmp_path, rewards=lambda p, c: [1.0] * len(c), dynamic_sampling=True,
                       max_resample_rounds=2)  # fmt: skip
    trainer.model.train()
    out = trainer._generate_and_score_completions(_inputs(trainer, [0, 1]))
    metrics = trainer._metrics["train"]
    assert metrics["dynamic_sampling/rounds"][-1] == 2 and metrics["dynamic_sampling/short_batch"][-1] == 1
    assert metrics["dynamic_sampling/dropped_frac"][-1] == 1.0 and out["completion_ids"].shape[0] == 8


# ---------------------------------------------------------------- stage runs (worker process)


def _run(micro_base, rl_data, url, out: Path, *extra, background=False):
    from tests.online_rl.test_grpo import _argv

    argv = _argv(micro_base, rl_data, out, url, "--query_order", "dataset", "--save_strategy", "steps",
                 "--save_steps", "2", "--beta", "0.0", "--max_completion_length", "6", *extra)  # fmt: skip
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
           "WANDB_MODE": "disabled"}  # fmt: skip
    log = open(out.parent / f"{out.name}.log", "a")  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen([sys.executable, "-m", "online_rl", *argv], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    if background:
        return proc
    assert proc.wait(timeout=900) == 0, (out.parent / f"{out.name}.log").read_text()[-3000:]
    return proc


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def _rollouts(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "rollouts" / "rollouts.jsonl").read_text().splitlines()]


def _worker_wrote(out: Path, batch: int) -> bool:
    log = out / "rollouts" / "worker.log"
    return log.exists() and f"batch {batch} from version" in log.read_text()


def _wait_until(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before the moment the test waits for"
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _worker_pids(out: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"online_rl.rollout_worker {out / 'rollouts'}"], capture_output=True,
                           text=True).stdout.split()  # fmt: skip
    return [int(pid) for pid in found]


@pytest.fixture(scope="module")
def live_service():
    from tests.online_rl.test_grpo import LiveService

    svc = LiveService().start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def grpo_data(tmp_path_factory):
    from tests.online_rl.test_grpo import _prompt as apples

    root = tmp_path_factory.mktemp("rollout_data")
    rows = [{"id": f"add-{a}-{b}", "prompt": apples(a, b), "reference": json.dumps({"type": "math",
             "answer": str(a + b)})} for a in range(4) for b in range(4)]  # fmt: skip
    Dataset.from_list(rows).save_to_disk(str(root / "rl_queries"))
    return root


@pytest.mark.e2e
def test_worker_at_staleness_zero_equals_the_inline_engine(micro_base, grpo_data, live_service, tmp_path):
    inline, worker = tmp_path / "inline", tmp_path / "worker0"
    _run(micro_base, grpo_data, live_service.url, inline, "--rollout_engine", "inline", "--max_steps", "3")
    _run(micro_base, grpo_data, live_service.url, worker, "--rollout_engine", "worker", "--max_staleness", "0",
         "--max_steps", "3", "--rollout_worker_threads", "1")  # fmt: skip
    a, b = _weights(inline), _weights(worker)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = _rollouts(worker)
    assert [(r["batch"], r["version"], r["staleness"]) for r in rows] == [(0, 0, 0), (1, 1, 0), (2, 2, 0)]
    assert [r["version"] for r in _rollouts(inline)] == [0, 1, 2]


@pytest.mark.slow
def test_staleness_bound_faults_and_resume(micro_base, grpo_data, live_service, tmp_path):
    """max_staleness 1, 4 steps: (a) straight; (b) its worker SIGKILLed once batch 1 is on disk and SIGSTOPped
    (hung) once batch 2 is: restarted each time, and the run's weights equal (a)'s; (c) the trainer SIGKILLed after
    the step-2 checkpoint with batch 3 on disk, then resumed: the same weights again, every batch trained once, the
    persisted one reused."""
    url = live_service.url
    common = ("--rollout_engine", "worker", "--max_staleness", "1", "--max_steps", "4",
              "--rollout_worker_threads", "1", "--rollout_timeout_s", "20")  # fmt: skip
    straight = tmp_path / "straight"
    _run(micro_base, grpo_data, url, straight, *common)
    rows = _rollouts(straight)
    assert [r["batch"] for r in rows] == list(range(4))
    assert [r["version"] for r in rows] == [0, 0, 1, 2]  # version b - 1: one-step-off
    assert all(r["staleness"] <= 1 for r in rows)
    provenance = [json.loads(line) for line in (straight / "provenance.jsonl").read_text().splitlines()]
    assert {(p["policy_step"], p["policy_version"]) for p in provenance} == {(0, 0), (1, 0), (2, 1), (3, 2)}
    reference = _weights(straight)

    faulty = tmp_path / "faulty"
    proc = _run(micro_base, grpo_data, url, faulty, *common, background=True)
    for batch, sig in ((1, signal.SIGKILL), (2, signal.SIGSTOP)):  # the worker's log, not the batch files: a
        _wait_until(lambda b=batch: _worker_wrote(faulty, b), proc)  # batch can be trained on and gone in a blink
        for pid in _worker_pids(faulty):
            os.kill(pid, sig)
    assert proc.wait(timeout=900) == 0, (tmp_path / "faulty.log").read_text()[-3000:]
    log = (tmp_path / "faulty.log").read_text()
    assert "rollout worker exited with code" in log and "(hung)" in log
    summary = json.loads((faulty / "summary.json").read_text())
    assert summary["rollout_worker_restarts"] >= 2  # the kill and the hang (a slow start may add one)
    assert [r["batch"] for r in _rollouts(faulty)] == list(range(4))
    got = _weights(faulty)
    assert all(torch.equal(got[k], reference[k]) for k in reference)

    killed = tmp_path / "killed"
    proc = _run(micro_base, grpo_data, url, killed, *common, background=True)
    _wait_until(lambda: (killed / "checkpoint-2" / "trainer_state.json").is_file() and _worker_wrote(killed, 3), proc)
    in_flight = (killed / "rollouts" / "batches" / "b00000003.pt").exists()  # normally: made while step 2 trains
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for pid in _worker_pids(killed):  # the orphaned worker notices its parent is gone; make sure
        os.kill(pid, signal.SIGKILL)
    _run(micro_base, grpo_data, url, killed, *common, "--resume_from_checkpoint", "auto")
    rows = _rollouts(killed)
    assert [r["batch"] for r in rows] == list(range(4))  # each batch trained once in the final run
    assert [r["version"] for r in rows] == [0, 0, 1, 2]
    assert [r["reused"] for r in rows][2:] == [False, in_flight]  # the in-flight rollout persisted and reused
    got = _weights(killed)
    assert all(torch.equal(got[k], reference[k]) for k in reference)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rollout_engine": "vllm"}, "rollout_engine must be one of"),
        ({"max_staleness": 1}, "max_staleness > 0 needs rollout_engine: worker"),
        ({"rollout_engine": "worker", "max_staleness": -1}, "max_staleness must be >= 0"),
        ({"rollout_engine": "inline", "num_iterations": 2}, "one generation batch per optimizer step"),
        ({"rollout_engine": "worker", "use_peft": True}, "with use_peft use rollout_engine inline"),
        ({"tools_file": "t.json"}, "tools_file .* needs rollout_engine: inline"),
        ({"rollout_engine": "inline", "tools_file": "t.json", "tool_timeout_s": 60}, "tool_timeout_s"),
        ({"dynamic_sampling": True, "gradient_accumulation_steps": 2}, "needs steps_per_generation 1"),
        ({"rollout_engine": "worker", "rollout_timeout_s": 0}, "rollout_timeout_s must be > 0"),
    ],
)
def test_rollout_settings_are_checked_before_anything_loads(tmp_path, overrides, message):
    from online_rl.config import GRPOStageConfig
    from stagekit.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        GRPOStageConfig(output_dir=str(tmp_path), report_to="none", bf16=False, **overrides)


def test_gspo_is_grpo_with_sequence_level_ratios(tmp_path):
    from online_rl.config import GRPOStageConfig

    cfg = GRPOStageConfig(output_dir=str(tmp_path), report_to="none", bf16=False, loss_type="gspo")
    assert (cfg.loss_type, cfg.importance_sampling_level) == ("grpo", "sequence")
