"""Fixtures for the reward stage: a preference dataset, a 2-step trained micro reward model, live servers (in a
thread for app-level tests, `python -m reward serve` as its own process for the service tests)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from datasets import Dataset

ROOT = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = ROOT / "configs" / "reward" / "smoke.yaml"
SERVE_SMOKE = ROOT / "configs" / "reward" / "serve_smoke.yaml"
CRITERION_OF = {0: "helpfulness", 1: "truthfulness"}  # local file rows: a % 2 -> criterion


def local_preference_lines(pairs: list[tuple[int, int]]) -> list[str]:
    """JSONL lines of a local preference file: conversational rows labelled with a criterion and category."""
    rows = preference_rows(pairs)
    return [
        json.dumps({**row, "category": "local-math", "criterion": CRITERION_OF[a % 2]})
        for row, (a, _) in zip(rows, pairs, strict=True)
    ]


def preference_rows(pairs: list[tuple[int, int]]) -> list[dict]:
    """Arithmetic preference pairs in TRL's conversational format: chosen right, rejected off by one."""

    def answer(a: int, b: int, total: int) -> list[dict]:
        return [{"role": "assistant", "content": f"{a} + {b} = {total}. The answer is \\boxed{{{total}}}."}]

    return [
        {
            "id": f"add-{a}-{b}",
            "category": "math",
            "prompt": [{"role": "user", "content": f"Sam has {a} apples and gets {b} more. How many?"}],
            "chosen": answer(a, b, a + b),
            "rejected": answer(a, b, a + b + 1),
            "reason": "answer mismatch",
        }
        for a, b in pairs
    ]


@pytest.fixture(scope="session")
def preference_data(tmp_path_factory) -> Path:
    """<dir>/preference (32 pairs) and <dir>/preference_eval (8 pairs), saved with datasets.save_to_disk, plus
    local JSONL files with criterion labels: <dir>/local_train.jsonl (8 pairs), <dir>/local_eval.jsonl (4 pairs)."""
    root = tmp_path_factory.mktemp("reward_data")
    Dataset.from_list(preference_rows([(a, b) for a in range(8) for b in range(4)])).save_to_disk(root / "preference")
    Dataset.from_list(preference_rows([(a, 9) for a in range(8)])).save_to_disk(root / "preference_eval")
    (root / "local_train.jsonl").write_text("\n".join(local_preference_lines([(a, 5) for a in range(8)])) + "\n")
    (root / "local_eval.jsonl").write_text("\n".join(local_preference_lines([(a, 8) for a in range(4)])) + "\n")
    return root


def train_argv(base: Path, data: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--config", str(SMOKE_CONFIG),
        "--model_name_or_path", str(base),
        "--dataset_path", str(data / "preference"),
        "--eval_dataset_path", str(data / "preference_eval"),
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def trained_rm(micro_base, preference_data, tmp_path_factory) -> tuple[Path, dict]:
    """(checkpoint dir, summary) of `python -m reward train` run for 2 steps on the micro base model, on the
    builders' pairs plus a local JSONL file, evaluated on held-out pairs from both."""
    from reward.train import main

    output_dir = tmp_path_factory.mktemp("reward_run") / "reward"
    local = ["--preference_files", str(preference_data / "local_train.jsonl")]
    local += ["--eval_preference_files", str(preference_data / "local_eval.jsonl")]
    summary = main(train_argv(micro_base, preference_data, output_dir, *local))
    return output_dir, summary


@pytest.fixture(scope="session")
def rm_scorer(trained_rm):
    from reward.model_scorer import RewardModelScorer

    return RewardModelScorer.from_pretrained(str(trained_rm[0]), device="cpu", max_length=256)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _live_server(app):
    """Serve `app` with a real uvicorn on a free loopback port in a thread; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server():
    """`with live_server(app) as url:` runs the app on a real uvicorn server (loopback, free port)."""
    return _live_server


@pytest.fixture
def reward_train_argv():
    """`reward_train_argv(base, data_dir, output_dir, *extra)` -> argv for reward.train.main on smoke.yaml."""
    return train_argv


@contextmanager
def serve_process(argv: list[str], *, port: int | None = None, env: dict | None = None, log: Path | None = None):
    """Run `python -m reward serve --config serve_smoke.yaml <argv> --port P` as its own process; yields
    (url, process) once /healthz answers (at most 120 s), terminates it afterwards."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "reward", "serve", "--config", str(SERVE_SMOKE), *argv, "--port", str(port)]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"reward serve exited with {proc.returncode}: {log.read_text() if log else ''}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("reward serve did not answer /healthz within 120 s")
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        if log:
            out.close()


@pytest.fixture(scope="session")
def reward_serve():
    """`with reward_serve(argv, port=..., env=..., log=...) as (url, proc):` runs `python -m reward serve`."""
    return serve_process


@pytest.fixture(scope="session")
def get_free_port():
    """`get_free_port()` -> a free loopback TCP port."""
    return free_port
