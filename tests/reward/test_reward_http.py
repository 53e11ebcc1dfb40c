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
    with RewardClient(url, timeout=2, retries=3, backoff_s=0.1, jitter=False) as client:
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


class _Outage:
    """A mock transport refusing connections until `down_s` of virtual time have passed, then scoring; the clock
    advances by each sleep of the client (and 10 ms per request)."""

    def __init__(self, down_s: float):
        self.down_s, self.now, self.sleeps, self.requests = down_s, 0.0, [], 0

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.now += 0.01
        if self.now < self.down_s:
            raise httpx.ConnectError("connection refused", request=request)
        items = json.loads(request.content)["items"]
        return httpx.Response(200, json={"results": [{"reward": 1.0, "components": {}} for _ in items]})


def _score_through(outage: _Outage, monkeypatch, **client_kwargs):
    monkeypatch.setattr("reward.client.time.sleep", outage.sleep)
    monkeypatch.setattr("reward.client.time.monotonic", outage.monotonic)
    with RewardClient("http://rm", transport=httpx.MockTransport(outage.handler), **client_kwargs) as client:
        return client.score([{"prompt": "p", "response": "r"}])


def test_default_retries_ride_out_a_30s_restart(monkeypatch):
    """Issue 20: with the old defaults (3 retries from 0.5 s) a restart of a few seconds lost calls; the default
    time budget (60 s, jittered back-off capped at 10 s) rides out a 30 s outage and retries soon after it ends."""
    outage = _Outage(down_s=30.0)
    assert _score_through(outage, monkeypatch) == [{"reward": 1.0, "components": {}}]
    assert outage.now - 30.0 <= 10.0 + 0.1  # noticed within one capped back-off of the service's return
    assert max(outage.sleeps) <= 10.0
    nominal = [min(0.5 * 2**k, 10.0) for k in range(len(outage.sleeps))]
    assert all(n / 2 <= s <= n for s, n in zip(outage.sleeps, nominal, strict=True))  # jittered in [n/2, n]
    assert len(set(outage.sleeps)) == len(outage.sleeps)

    with pytest.raises(RewardServiceError, match="failed after 4 attempt"):  # what the old defaults did
        _score_through(_Outage(down_s=5.0), monkeypatch, retries=3, backoff_s=0.5, jitter=False)


def test_retry_budget_gives_up_in_time_naming_the_budget(monkeypatch):
    outage = _Outage(down_s=1e9)
    with pytest.raises(RewardServiceError, match=r"in 5\d s \(retry_budget_s=60\)"):
        _score_through(outage, monkeypatch)
    assert outage.now <= 60.0
