"""Fixtures for the reward stage: a preference dataset, a 2-step trained micro reward model, a live server."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from datasets import Dataset

SMOKE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "reward" / "smoke.yaml"


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
    """<dir>/preference (32 pairs) and <dir>/preference_eval (8 pairs), saved with datasets.save_to_disk."""
    root = tmp_path_factory.mktemp("reward_data")
    Dataset.from_list(preference_rows([(a, b) for a in range(8) for b in range(4)])).save_to_disk(root / "preference")
    Dataset.from_list(preference_rows([(a, 9) for a in range(8)])).save_to_disk(root / "preference_eval")
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
    """(checkpoint dir, summary) of `python -m reward train` run for 2 steps on the micro base model."""
    from reward.train import main

    output_dir = tmp_path_factory.mktemp("reward_run") / "reward"
    summary = main(train_argv(micro_base, preference_data, output_dir))
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


@pytest.fixture
def live_server():
    """`with live_server(app) as url:` runs the app on a real uvicorn server (loopback, free port)."""
    return _live_server


@pytest.fixture
def reward_train_argv():
    """`reward_train_argv(base, data_dir, output_dir, *extra)` -> argv for reward.train.main on smoke.yaml."""
    return train_argv
