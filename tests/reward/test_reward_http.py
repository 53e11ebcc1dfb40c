"""The app on a real uvicorn in a thread (loopback): the client and the GRPO reward function as online_rl calls
them. The service as its own process (`python -m reward serve`) is tested in test_reward_server.py."""

import json
import time
from types import SimpleNamespace

import httpx
import pytest

from reward import client as client_module
from reward.app import create_app
from reward.client import RewardClient, RewardServiceError, make_reward_function
from reward.config import ServeConfig

PROMPT = [{"role": "user", "content": "Sam has 7 apples and gets 5 more. How many?"}]
REF = json.dumps({"type": "math", "answer": "12"})


@pytest.fixture(scope="module")
def app(trained_rm, rm_scorer):
    return create_app(ServeConfig(model_path=str(trained_rm[0]), max_batch_size=16, max_wait_ms=5), rm_scorer)


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


def test_client_4xx_is_raised_at_once_with_the_service_detail(app, live_server, monkeypatch):
    sleeps = []
    monkeypatch.setattr(client_module, "time", SimpleNamespace(sleep=sleeps.append, monotonic=time.monotonic))
    with live_server(app) as url, RewardClient(url, timeout=30, retries=3) as client:
        with pytest.raises(RewardServiceError, match=r"HTTP 422: .*astrology"):
            client.score([{"prompt": PROMPT, "response": "x", "reference": {"type": "astrology"}}])
    assert sleeps == []  # a 4xx is the caller's mistake: no retry, no backoff


def test_reward_function_components_include_criteria_and_length_penalty():
    result = {
        "reward": 0.7,
        "components": {
            "rm": 0.5,
            "criteria": {"helpfulness": 0.25},
            "verifier": {"score": 1.0},
            "length_penalty": -0.1,
        },
    }

    def handler(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["items"]
        return httpx.Response(200, json={"results": [result for _ in items]})

    with RewardClient("http://rm", transport=httpx.MockTransport(handler)) as client:
        picks = {
            name: make_reward_function(client, component=name)(["p"], ["r"])[0]
            for name in ("total", "rm", "verifier", "length_penalty", "criterion:helpfulness", "criterion:debiasing")
        }
        assert make_reward_function(client, component="criterion:helpfulness").__name__ == "reward_service_helpfulness"
    assert picks == {
        "total": 0.7, "rm": 0.5, "verifier": 1.0, "length_penalty": -0.1,
        "criterion:helpfulness": 0.25, "criterion:debiasing": None,
    }  # fmt: skip
    with pytest.raises(ValueError, match="component must be one of"):
        make_reward_function(RewardClient("http://rm"), component="wit")
