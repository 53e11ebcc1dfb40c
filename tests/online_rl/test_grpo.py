"""GRPO stage: variance ordering, the reward function against a live (restartable) service and broken stubs,
provenance rows, and short real runs on the micro model (held-out curve, metrics, exact resume after SIGKILL)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from datasets import Dataset, load_from_disk

from online_rl.ordering import order_by_variance, reward_variance, variance_order
from online_rl.rewards import ProvenanceLog, ServiceReward, component_stats, connect
from reward.client import RewardServiceError
from stagekit.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CPU = ["--bf16", "false", "--gradient_checkpointing", "false", "--report_to", "none", "--logging_steps", "1"]


# ---------------------------------------------------------------- services


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveService:
    """The real reward-service app (verifier + a length-based stand-in RM) on uvicorn in a thread; stoppable and
    restartable on the same port, as a service restart looks to a client."""

    def __init__(self, port: int | None = None):
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = self.thread = None

    def start(self) -> LiveService:
        import uvicorn

        from reward.app import create_app
        from reward.config import ServeConfig

        def rm(pairs):  # stand-in reward model: logits from the response length, deterministic
            return [len(response) / 50.0 for _, response in pairs]

        config = ServeConfig(
            model_path="stand-in", weights={"rm": 0.2, "verifier": 1.0}, cache_size=0, verifier_workers=2
        )
        app = create_app(config, rm)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def service():
    svc = LiveService().start()
    yield svc
    svc.stop()


@contextmanager
def stub(mode: str):
    """A broken reward service: /healthz is fine, /v1/score is slow ("slow"), not JSON ("garbage"), has the wrong
    number of results ("short") or a non-numeric reward ("nan")."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code: int, body: str, ctype: str = "application/json"):
            data = body.encode()
            self.send_response(code)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, json.dumps({"status": "ok"}))

        def do_POST(self):
            items = json.loads(self.rfile.read(int(self.headers["content-length"])))["items"]
            result = {"reward": 1.0, "components": {"rm": 0.0, "verifier": None}}
            if mode == "slow":
                time.sleep(1.5)
                self._send(200, json.dumps({"results": [result] * len(items)}))
            elif mode == "garbage":
                self._send(200, "<html>proxy error</html>", "text/html")
            elif mode == "short":
                self._send(200, json.dumps({"results": [result] * (len(items) - 1)}))
            elif mode == "nan":
                self._send(200, json.dumps({"results": [{**result, "reward": "high"}] * len(items)}))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _prompt(a: int, b: int) -> list[dict]:
    return [{"role": "user", "content": f"Sam has {a} apples and gets {b} more. How many apples does he have?"}]


def _call(reward: ServiceReward, completions: list[str], *, step: int = 0, qids=None, metrics=None) -> list[float]:
    n = len(completions)
    state = type("State", (), {"global_step": step})()
    return asyncio.run(
        reward(
            prompts=[_prompt(2, 3)] * n, completions=completions,
            reference=[json.dumps({"type": "math", "answer": "5"})] * n,
            id=qids or ["q0"] * n, trainer_state=state,
            log_metric=(lambda k, v: metrics.setdefault(k, []).append(v)) if metrics is not None else None,
        )
    )  # fmt: skip


RIGHT, WRONG = "2 + 3 = 5. The answer is \\boxed{5}.", "2 + 3 = 6. The answer is \\boxed{6}."


# ---------------------------------------------------------------- ordering


def test_reward_variance_by_hand():
    assert reward_variance([1, 1, 1, 1]) == 0.0
    assert reward_variance([0, 1]) == 0.25  # mean 0.5, deviations 0.5^2
    assert reward_variance([1, 0, 0, 0]) == pytest.approx(3 / 16)  # p(1-p), p = 1/4
    assert reward_variance([3.0]) == 0.0


def test_variance_order_is_descending_and_stable():
    assert variance_order([0.0, 0.25, 0.1875, 0.25, 0.0]) == [1, 3, 2, 0, 4]
    with pytest.raises(ConfigError, match="online_rl score"):
        variance_order([0.1, None])
    ds = Dataset.from_list([{"id": f"q{i}", "reward_variance": v} for i, v in enumerate([0.0, 0.2, 0.1])])
    assert order_by_variance(ds)["id"] == ["q1", "q2", "q0"]


@pytest.mark.e2e  # the reward service on uvicorn, or the trainer
def test_trainer_consumes_queries_in_variance_order_with_trl_repeats(micro_base, tmp_path):
    """TRL's own sampler on the sorted rows, unshuffled: each query num_generations times, highest variance first."""
    from trl import GRPOTrainer

    from online_rl.config import GRPOStageConfig
    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer

    variances = [0.0, 0.25, 0.1, 0.2, 0.05, 0.15]
    rows = Dataset.from_list(
        [{"id": f"q{i}", "prompt": _prompt(i, 1), "reference": "{}", "reward_variance": v}
         for i, v in enumerate(variances)]
    )  # fmt: skip
    cfg = GRPOStageConfig(
        output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=8, report_to="none", bf16=False,
        max_completion_length=4, seed=123,
    )  # fmt: skip
    assert cfg.shuffle_dataset is False  # query_order "variance" turns TRL's shuffle off
    ordered = order_by_variance(rows)
    trainer = GRPOTrainer(
        model=load_model(micro_base), reward_funcs=[lambda completions, **kw: [0.0] * len(completions)], args=cfg,
        train_dataset=ordered, processing_class=load_tokenizer(micro_base),
    )  # fmt: skip
    seen = [ordered[i]["id"] for i in trainer._get_train_sampler()]
    expected = ["q1", "q3", "q5", "q2", "q4", "q0"]  # variances 0.25, 0.2, 0.15, 0.1, 0.05, 0.0
    assert seen == [q for q in expected for _ in range(4)]
    first_batch = next(iter(trainer.get_train_dataloader()))
    assert [row["id"] for row in first_batch] == ["q1"] * 4 + ["q3"] * 4


# ---------------------------------------------------------------- reward function


@pytest.mark.e2e  # HTTP stubs that answer slowly or wrongly
def test_service_down_at_start_is_a_config_error_naming_the_url():
    from online_rl.config import GRPOStageConfig

    port = _free_port()
    cfg = GRPOStageConfig(output_dir="/tmp/unused", reward_url=f"http://127.0.0.1:{port}", reward_ready_timeout_s=1,
                          bf16=False, report_to="none")  # fmt: skip
    with pytest.raises(ConfigError, match=rf"reward_url: .*127\.0\.0\.1:{port}.*not ready"):
        connect(cfg)


@pytest.mark.e2e  # the reward service on uvicorn, or the trainer
def test_reward_function_survives_a_service_restart(service):
    reward = ServiceReward([service.url], timeout=10, retries=6, backoff_s=0.3, num_generations=2)
    expected = [1.0 + 0.2 * math.tanh(len(RIGHT) / 50), 0.2 * math.tanh(len(WRONG) / 50)]  # verifier + 0.2 rm
    assert _call(reward, [RIGHT, WRONG]) == pytest.approx(expected)
    service.stop()
    restarter = threading.Timer(1.0, service.start)  # down for about a second, then back on the same port
    restarter.start()
    try:
        assert _call(reward, [RIGHT, WRONG])[0] > 1.0  # retried with back-off until the new process answered
    finally:
        restarter.join()


@pytest.mark.e2e  # the reward service on uvicorn, or the trainer
def test_reward_function_gives_up_with_a_clear_error_when_the_service_stays_down(service):
    reward = ServiceReward([service.url], timeout=5, retries=2, backoff_s=0.05, num_generations=2)
    service.stop()
    with pytest.raises(RewardServiceError, match=r"/v1/score failed after 3 attempt\(s\).*cannot connect.*serve"):
        _call(reward, [RIGHT, WRONG])
    service.start()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("slow", r"timed out \(ReadTimeout, limit 0.5 s\)"),
        ("garbage", r"reply is not JSON: '<html>proxy error"),
        ("short", r"1 results for 2 items"),
        ("nan", r"results\[0\]\.reward is 'high', not a number"),
    ],
)
@pytest.mark.e2e  # HTTP stubs that answer slowly or wrongly
def test_reward_function_timeout_and_bad_replies_are_clear_errors(mode, message):
    with stub(mode) as url:
        reward = ServiceReward([url], timeout=0.5, retries=1, backoff_s=0.0, num_generations=2)
        with pytest.raises(RewardServiceError, match=message):
            _call(reward, [RIGHT, WRONG])


# ---------------------------------------------------------------- provenance and metrics


@pytest.mark.e2e  # the reward service on uvicorn, or the trainer
def test_provenance_rows_and_component_metrics(service, tmp_path):
    log = ProvenanceLog(tmp_path / "provenance.jsonl")
    reward = ServiceReward([service.url], timeout=10, retries=1, num_generations=2, provenance=log, process_index=1)
    metrics: dict = {}
    totals = _call(reward, [RIGHT, WRONG, WRONG, WRONG], step=7, qids=["qa", "qa", "qb", "qb"], metrics=metrics)
    rows = log.rows()
    assert [(r["query_id"], r["sample_index"], r["policy_step"]) for r in rows] == [
        ("qa", 0, 7), ("qa", 1, 7), ("qb", 0, 7), ("qb", 1, 7)
    ]  # fmt: skip
    assert [r["reward"] for r in rows] == totals
    assert rows[0]["completion"] == RIGHT and "apples" in rows[0]["prompt"]
    assert rows[0]["components"] == {"rm": pytest.approx(math.tanh(len(RIGHT) / 50)), "verifier": 1.0}
    assert rows[0]["verifier"]["passed"] is True and rows[1]["verifier"]["passed"] is False
    assert rows[1]["verifier"]["details"]  # the verifier's own account (expected/got answers)
    # per-component metrics: verifier scores 1, 0, 0, 0 -> mean 0.25, population std sqrt(3)/4
    assert metrics["rewards/verifier/mean"] == [0.25]
    assert metrics["rewards/verifier/std"] == [pytest.approx(math.sqrt(3) / 4)]
    assert metrics["rewards/rm/mean"][0] == pytest.approx(
        sum(math.tanh(len(c) / 50) for c in [RIGHT, WRONG, WRONG, WRONG]) / 4
    )
    # a resume from step 7 drops the rows sampled at step 7 (they are sampled again)
    _call(reward, [RIGHT, WRONG], step=8)
    log.keep_before(8)
    assert {r["policy_step"] for r in log.rows()} == {7}
    log.keep_before(7)
    assert log.rows() == []


def test_component_stats_include_criteria_and_skip_missing():
    results = [
        {"reward": 1.0, "components": {"rm": 0.5, "verifier": None, "criteria": {"helpfulness": 1.0}}},
        {"reward": 0.0, "components": {"rm": -0.5, "verifier": None, "criteria": {"helpfulness": 0.0}}},
    ]
    stats = component_stats(results)
    assert stats == {
        "rewards/rm/mean": 0.0, "rewards/rm/std": 0.5,
        "rewards/criterion_helpfulness/mean": 0.5, "rewards/criterion_helpfulness/std": 0.5,
    }  # fmt: skip


# ---------------------------------------------------------------- the stage, end to end


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("grpo_data")
    rows = [
        {"id": f"add-{a}-{b}", "category": "math", "prompt": _prompt(a, b),
         "reference": json.dumps({"type": "math", "answer": str(a + b)}), "reward_variance": None}
        for a in range(4) for b in range(4)
    ]  # fmt: skip
    Dataset.from_list(rows).save_to_disk(str(root / "rl_queries"))
    Dataset.from_list(rows[:4]).save_to_disk(str(root / "heldout"))
    return root


def _argv(micro_base, rl_data, out, url, *extra) -> list[str]:
    return [
        "--config", "configs/grpo/tiny.yaml", "--model_name_or_path", str(micro_base),
        "--dataset_path", str(rl_data / "rl_queries"), "--scored_dataset_path", str(out / "scored"),
        "--output_dir", str(out), "--reward_url", url, "--num_generations", "4",
        "--per_device_train_batch_size", "8", "--max_completion_length", "8", "--score_samples", "4",
        "--heldout_dataset_path", "", *CPU, *extra,
    ]  # fmt: skip


@pytest.mark.slow  # about 40 s on the shared CPU: over the default suite's budget
def test_score_then_train_writes_order_provenance_metrics_and_curve(micro_base, rl_data, service, tmp_path):
    from online_rl.__main__ import main
    from online_rl.ordering import main as score

    argv = _argv(micro_base, rl_data, tmp_path, service.url, "--max_steps", "2",
                 "--heldout_dataset_path", str(rl_data / "heldout"), "--heldout_eval_steps", "1",
                 "--heldout_max_new_tokens", "8")  # fmt: skip
    summary = score(argv)
    scored = load_from_disk(str(tmp_path / "scored"))
    assert summary["queries"] == len(scored) == 16
    assert scored["reward_variance"] == sorted(scored["reward_variance"], reverse=True)
    assert all(v >= 0 for v in scored["reward_variance"])

    result = main(argv)
    assert result["steps"] == 2 and math.isfinite(result["last_reward"])
    rows = ProvenanceLog(tmp_path / "provenance.jsonl").rows()
    assert len(rows) == 2 * 8 and {r["policy_step"] for r in rows} == {0, 1}
    assert [r["query_id"] for r in rows[:8]] == [scored[0]["id"]] * 4 + [scored[1]["id"]] * 4  # variance order
    assert [r["sample_index"] for r in rows[:8]] == [0, 1, 2, 3] * 2
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    step_logs = [r for r in logs if "reward" in r]
    for key in ("reward", "reward_std", "frac_reward_zero_std", "rewards/verifier/mean", "rewards/verifier/std",
                "rewards/rm/mean", "kl", "entropy", "completions/mean_length", "completions/clipped_ratio",
                "clip_ratio/region_mean"):  # fmt: skip
        assert all(key in r for r in step_logs), key
    points = [json.loads(line) for line in (tmp_path / "heldout_reward.jsonl").read_text().splitlines()]
    assert [p["step"] for p in points] == [0, 1, 2] and all(0 <= p["verifier_mean"] <= 1 for p in points)
    # tiny.yaml's heldout_samples
    assert all(p["samples"] == 4 and 0 <= p["sampled_verifier_mean"] <= 1 for p in points)
    assert (tmp_path / "reward_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_training_without_scoring_pass_says_what_to_run(micro_base, rl_data, tmp_path):
    from online_rl.__main__ import main

    with pytest.raises(ConfigError, match="python -m online_rl score"):
        main(_argv(micro_base, rl_data, tmp_path, "http://127.0.0.1:9", "--max_steps", "1"))


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_losses_and_rewards(micro_base, rl_data, service, tmp_path):
    """6 steps straight vs. killed (SIGKILL) after the step-3 checkpoint and resumed: identical step logs."""
    from online_rl.ordering import main as score

    def run(out: Path, *extra) -> subprocess.Popen:
        argv = _argv(micro_base, rl_data, out, service.url, "--max_steps", "6", "--save_strategy", "steps",
                     "--save_steps", "3", "--scored_dataset_path", str(tmp_path / "scored"), *extra)  # fmt: skip
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
        log = open(tmp_path / f"{out.name}.log", "a")  # noqa: SIM115 - the child writes it
        return subprocess.Popen([sys.executable, "-m", "online_rl", *argv], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip

    def finished(proc: subprocess.Popen, out: Path) -> bool:
        code = proc.wait(timeout=600)
        assert code == 0, (tmp_path / f"{out.name}.log").read_text()[-3000:]
        return True

    score(_argv(micro_base, rl_data, tmp_path, service.url, "--scored_dataset_path", str(tmp_path / "scored")))
    straight = tmp_path / "straight"
    assert finished(run(straight), straight)

    killed = tmp_path / "killed"
    proc = run(killed)
    deadline = time.monotonic() + 600
    while not (killed / "checkpoint-3" / "trainer_state.json").is_file():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert finished(run(killed, "--resume_from_checkpoint", "auto"), killed)

    def step_logs(out: Path) -> dict[int, dict]:
        logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r for r in logs if "loss" in r}  # the resumed run's lines win for steps it repeated

    a, b = step_logs(straight), step_logs(killed)
    assert sorted(a) == sorted(b) == [1, 2, 3, 4, 5, 6]
    for step in range(4, 7):  # the steps after the checkpoint: same samples, same rewards, same loss
        for key in ("reward", "reward_std", "rewards/verifier/mean", "completions/mean_length"):
            assert b[step][key] == a[step][key], (step, key)
        assert b[step]["loss"] == pytest.approx(a[step]["loss"], rel=1e-5, abs=1e-7)
    prov_a = ProvenanceLog(straight / "provenance.jsonl").rows()
    prov_b = ProvenanceLog(killed / "provenance.jsonl").rows()
    assert [(r["policy_step"], r["query_id"], r["completion"]) for r in prov_b] == [
        (r["policy_step"], r["query_id"], r["completion"]) for r in prov_a
    ]


def test_query_rows_without_ids_get_row_indices(stage_data, rl_data):
    from online_rl.ordering import load_query_rows

    rows = load_query_rows(stage_data["rl_queries"], key="dataset_path", columns=["prompt", "reference"])
    assert rows["id"][:3] == ["0", "1", "2"] and len(rows) == 36
    kept = load_query_rows(rl_data / "rl_queries", key="dataset_path", columns=["prompt"])
    assert kept["id"][:2] == ["add-0-0", "add-0-1"]
    with pytest.raises(ConfigError, match="lacks column"):
        load_query_rows(rl_data / "rl_queries", key="dataset_path", columns=["prompt", "answer"])


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ({"chunk_size": 64, "local_size": 8}, {"chunk_size": 64, "local_size": 8}),
        ('{"chunk_size": 64, "local_size": 8}', {"chunk_size": 64, "local_size": 8}),
        ("64,8", {"chunk_size": 64, "local_size": 8}),
        ("off", False),
    ],
)
def test_dca_key_is_parsed_for_load_model(value, expected, tmp_path):
    from online_rl.config import GRPOStageConfig

    cfg = GRPOStageConfig(output_dir=str(tmp_path), dca=value, report_to="none", bf16=False)
    assert cfg.dca == expected


@pytest.mark.parametrize(
    "value, message",
    [("64", "CHUNK_SIZE,LOCAL_SIZE"), ({"chunk_size": 64}, "local_size is required"), ("{bad", "JSON object")],
)
def test_bad_dca_key_is_a_config_error_naming_it(value, message, tmp_path):
    from online_rl.config import GRPOStageConfig

    with pytest.raises(ConfigError, match=rf"dca.*{message}"):
        GRPOStageConfig(output_dir=str(tmp_path), dca=value, report_to="none", bf16=False)


def test_min_reward_variance_keeps_only_queries_with_signal(tmp_path):
    from online_rl.__main__ import load_queries
    from online_rl.config import GRPOStageConfig

    scored = tmp_path / "scored"
    Dataset.from_dict(
        {
            "prompt": [f"q{i}" for i in range(5)],
            "reference": ["{}"] * 5,
            "reward_variance": [0.0, 0.25, 0.0, 0.1875, 0.0625],
        }
    ).save_to_disk(str(scored))

    def cfg(**kw):
        return GRPOStageConfig(output_dir=str(tmp_path), scored_dataset_path=str(scored), report_to="none",
                               bf16=False, **kw)  # fmt: skip

    assert load_queries(cfg())["prompt"] == ["q1", "q3", "q4", "q0", "q2"]  # all, highest variance first
    assert load_queries(cfg(min_reward_variance=0.0))["prompt"] == ["q1", "q3", "q4"]
    assert load_queries(cfg(min_reward_variance=0.1))["prompt"] == ["q1", "q3"]
    with pytest.raises(ConfigError, match=r"min_reward_variance: no query .* above 0.3 \(of 5\)"):
        load_queries(cfg(min_reward_variance=0.3))
    with pytest.raises(ConfigError, match="needs query_order: variance"):
        cfg(min_reward_variance=0.0, query_order="dataset")


def test_grpo_lora_keeps_no_reference_copy_and_saves_a_plain_peft_adapter(
    micro_base, rl_data, service, tmp_path, lora_checks
):
    from transformers import AutoModelForCausalLM

    from online_rl.__main__ import main

    out = tmp_path / "grpo_lora"
    argv = _argv(micro_base, rl_data, out, service.url, "--max_steps", "2", "--query_order", "dataset",
                 "--use_peft", "true", "--lora_r", "4", "--learning_rate", "5e-2", "--beta", "0.04")  # fmt: skip
    summary = main(argv)
    assert summary["steps"] == 2 and math.isfinite(summary["last_reward"])
    assert summary["lora"] == {"r": 4, "alpha": 32, "reference_model_kept": False}  # KL against the adapter off
    logs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["kl"]) for r in logs if "kl" in r)
    lora_checks(micro_base, out, AutoModelForCausalLM, r=4)
