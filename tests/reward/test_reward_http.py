"""The service over real HTTP (uvicorn on loopback): dynamic batching across requests, the client, the GRPO
reward function, and `python -m reward serve` itself."""

import json
import math
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from reward.client import RewardClient, RewardServiceError, make_reward_function
from reward.service import ServeConfig, create_app

PROMPT = [{"role": "user", "content": "Sam has 7 apples and gets 5 more. How many?"}]
REF = json.dumps({"type": "math", "answer": "12"})
SERVE_SMOKE = Path(__file__).resolve().parents[2] / "configs" / "reward" / "serve_smoke.yaml"


@pytest.fixture(scope="module")
def app(trained_rm, rm_scorer):
    # a long max_wait so that requests sent together surely meet in the batcher
    return create_app(ServeConfig(model_path=str(trained_rm[0]), max_batch_size=16, max_wait_ms=200), rm_scorer)


def test_concurrent_requests_share_forwards_and_get_their_own_scores(app, live_server, rm_scorer):
    responses = [f"7 + 5 = {n}. The answer is \\boxed{{{n}}}." for n in range(8, 16)]
    with live_server(app) as url, RewardClient(url, timeout=30, retries=0) as client:
        with ThreadPoolExecutor(len(responses)) as pool:
            results = list(pool.map(lambda r: client.score([{"prompt": PROMPT, "response": r}])[0], responses))
        batch_sizes = list(app.state.batcher.batch_sizes)
    assert sum(batch_sizes) == len(responses)
    assert len(batch_sizes) < len(responses)  # 8 requests, fewer forwards
    alone = [rm_scorer([(PROMPT, r)])[0] for r in responses]
    assert [r["components"]["rm"] for r in results] == pytest.approx([math.tanh(x) for x in alone], abs=1e-5)


def test_reward_function_takes_trl_inputs_and_returns_floats_in_order(app, live_server):
    answers = ["12", "13", "12", "11"]
    completions = [[{"role": "assistant", "content": f"The answer is \\boxed{{{a}}}."}] for a in answers]
    with live_server(app) as url, RewardClient(url, timeout=30, retries=1) as client:
        assert client.wait_until_ready(10)["status"] == "ok"
        reward_fn = make_reward_function(client)
        verifier_fn = make_reward_function(client, component="verifier")
        rewards = reward_fn(
            prompts=[PROMPT] * 4, completions=completions, reference=[REF] * 4, completion_ids=[[1]] * 4
        )
        verified = verifier_fn([PROMPT] * 4, completions, reference=[REF] * 4)
        plain = reward_fn(["7 + 5 = "] * 2, [" 12", " 13"])  # standard (non-conversational) format, no reference
        rm_only = make_reward_function(client, component="rm")(["7 + 5 = "], [" 12"])
    assert reward_fn.__name__ == "reward_service" and verifier_fn.__name__ == "reward_service_verifier"
    assert all(isinstance(x, float) for x in rewards + plain)
    assert verified == [1.0, 0.0, 1.0, 0.0]
    assert [r > 0.5 for r in rewards] == [True, False, True, False]  # |0.2 * tanh| < 0.2
    assert rewards[0] == pytest.approx(rewards[2])
    assert all(abs(x) < 0.2 for x in plain) and plain[0] == pytest.approx(rm_only[0] * 0.2)


def test_client_chunks_large_calls(app, live_server):
    items = [{"prompt": PROMPT, "response": f"The answer is \\boxed{{{n}}}.", "reference": REF} for n in range(10, 15)]
    with live_server(app) as url, RewardClient(url, timeout=30, chunk_size=2) as client:
        results = client.score(items)
    assert [r["components"]["verifier"]["passed"] for r in results] == [False, False, True, False, False]


def test_client_retries_then_names_the_unreachable_url(monkeypatch):
    sleeps = []
    monkeypatch.setattr("reward.client.time.sleep", sleeps.append)
    url = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused
    with RewardClient(url, timeout=2, retries=3, backoff_s=0.1) as client:
        with pytest.raises(RewardServiceError, match=r"POST http://127.0.0.1:9/v1/score failed after 4 attempt"):
            client.score([{"prompt": PROMPT, "response": "x"}])
        assert sleeps == pytest.approx([0.1, 0.2, 0.4])  # exponential backoff between the 4 attempts
        with pytest.raises(RewardServiceError, match=r"reward service at http://127.0.0.1:9 not ready after 0.3s"):
            client.wait_until_ready(0.3, poll_s=0.1)


def test_client_retries_5xx_and_succeeds():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(503, text="warming up")
        items = json.loads(request.content)["items"]
        return httpx.Response(200, json={"results": [{"reward": 0.5, "components": {}} for _ in items]})

    transport = httpx.MockTransport(handler)
    with RewardClient("http://rm", timeout=2, retries=2, backoff_s=0.0, transport=transport) as client:
        assert client.score([{"prompt": "p", "response": "r"}]) == [{"reward": 0.5, "components": {}}]
    assert calls == ["/v1/score"] * 3


def test_client_4xx_is_raised_at_once_with_the_service_detail(app, live_server):
    with live_server(app) as url, RewardClient(url, timeout=30, retries=3) as client:
        start = time.monotonic()
        with pytest.raises(RewardServiceError, match=r"HTTP 422: .*astrology"):
            client.score([{"prompt": PROMPT, "response": "x", "reference": {"type": "astrology"}}])
        assert time.monotonic() - start < 0.5  # no backoff sleeps


def test_serve_cli_starts_on_loopback_and_scores(trained_rm, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "reward", "serve", "--config", str(SERVE_SMOKE)]
    cmd += ["--model_path", str(trained_rm[0]), "--port", str(port)]
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        with RewardClient(f"http://127.0.0.1:{port}", timeout=30, retries=0) as client:
            assert client.wait_until_ready(60, poll_s=0.2)["model"] == str(trained_rm[0])
            (result,) = client.score([{"prompt": PROMPT, "response": "The answer is \\boxed{12}.", "reference": REF}])
        assert result["components"]["verifier"]["passed"] is True and 0.8 < result["reward"] < 1.2
        assert f"http://127.0.0.1:{port}" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
