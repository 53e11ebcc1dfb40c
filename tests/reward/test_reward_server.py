"""`python -m reward serve` as its own process on a free loopback port: scoring, batching equality, the cache,
every class of bad input, token auth, a verifier timeout, overload, the async client and fail-over, and a server
restart while the client retries. One model-serving process is shared by the module."""

import asyncio
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from reward import client as client_module
from reward.client import AsyncRewardClient, RewardClient, RewardServiceError

pytestmark = pytest.mark.e2e  # `python -m reward serve` as a real process

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROMPT = [{"role": "user", "content": "Sam has 7 apples and gets 5 more. How many?"}]
RIGHT = "7 + 5 = 12. The answer is \\boxed{12}."
WRONG = "7 + 5 = 13. The answer is \\boxed{13}."
MATH_REF = {"type": "math", "answer": "12"}
HERE = Path(__file__).resolve().parent
TEST_VERIFIERS = {"sleep": "service_test_verifiers:verify_sleep", "boom": "service_test_verifiers:verify_boom"}
MAX_BYTES = 100_000


def server_env() -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve") / "serve.log"


@pytest.fixture(scope="module")
def server(trained_rm, reward_serve, server_log):
    argv = [
        "--model_path", str(trained_rm[0]),
        "--api_token", TOKEN,
        "--max_batch_size", "8",
        "--max_wait_ms", "50",
        "--max_items_per_request", "16",
        "--max_request_bytes", str(MAX_BYTES),
        "--max_pending_items", "24",
        "--verifier_workers", "8",
        "--verifier_timeout_s", "2.0",
        "--extra_verifiers", json.dumps(TEST_VERIFIERS),
        "--cache_size", "1000",
    ]  # fmt: skip
    with reward_serve(argv, env=server_env(), log=server_log) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(server):
    with RewardClient(server, timeout=30, retries=0, api_token=TOKEN) as rc:
        yield rc


def post(url: str, body, **kwargs) -> httpx.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}
    if not isinstance(body, dict):  # raw bytes or a generator (streamed, chunked)
        return httpx.post(f"{url}/v1/score", content=body, headers=headers, timeout=30, **kwargs)
    return httpx.post(f"{url}/v1/score", json=body, headers=headers, timeout=30, **kwargs)


def metrics(url: str) -> dict:
    return httpx.get(f"{url}/metrics", headers=AUTH, timeout=10).json()


def test_serve_binds_loopback_and_reports_its_model(server, server_log, trained_rm):
    health = httpx.get(f"{server}/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["model"] == str(trained_rm[0])
    assert health["max_items_per_request"] == 16 and len(health["model_version"]) == 16
    assert f"reward service: {server} model={trained_rm[0]}" in server_log.read_text()
    assert server.startswith("http://127.0.0.1:")


def test_scores_are_weighted_tanh_rm_plus_verifier(client, rm_scorer):
    right, wrong = client.score(
        [
            {"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF},
            {"prompt": PROMPT, "response": WRONG, "reference": json.dumps(MATH_REF)},
        ]
    )
    logits = rm_scorer([(PROMPT, RIGHT), (PROMPT, WRONG)])
    for result, logit, verified in zip((right, wrong), logits, (1.0, 0.0)):
        assert result["components"]["rm"] == pytest.approx(math.tanh(logit), abs=1e-5)
        assert result["components"]["verifier"]["score"] == verified
        assert result["components"]["verifier"]["status"] == "ok"
        assert result["components"]["criteria"] == {} and result["components"]["length_penalty"] is None
        assert result["reward"] == pytest.approx(0.2 * math.tanh(logit) + verified, abs=1e-5)
    assert right["components"]["verifier"]["details"]  # the verifier's explanation travels with the score


def test_batched_scores_equal_unbatched_ones(server, client, rm_scorer):
    responses = [f"7 + 5 = {n}. The answer is \\boxed{{{n}}}. batch-test" for n in range(20, 36)]
    before = metrics(server)["batching"]["rm"]
    with ThreadPoolExecutor(len(responses)) as pool:  # 16 concurrent one-item requests
        results = list(pool.map(lambda r: client.score([{"prompt": PROMPT, "response": r}])[0], responses))
    after = metrics(server)["batching"]["rm"]
    forwards = after["forwards"] - before["forwards"]
    assert after["items"] - before["items"] == 16
    assert forwards < 16 and after["max_batch_size_seen"] > 1  # requests met in the batcher
    alone = [rm_scorer([(PROMPT, r)])[0] for r in responses]  # one forward per item, no padding
    assert [r["components"]["rm"] for r in results] == pytest.approx([math.tanh(x) for x in alone], abs=1e-5)


def test_duplicates_cost_nothing(server, client):
    group = [f"The answer is \\boxed{{{n}}}. cache-test" for n in (12, 13, 12, 12, 14, 13, 12, 12)]  # 3 distinct
    items = [{"prompt": PROMPT, "response": r, "reference": MATH_REF} for r in group]
    before = metrics(server)
    first = client.score(items)
    middle = metrics(server)
    second = client.score(items)
    after = metrics(server)
    assert middle["batching"]["rm"]["items"] - before["batching"]["rm"]["items"] == 3  # one forward item per distinct
    assert middle["cache"]["misses"] - before["cache"]["misses"] == 3
    assert (middle["cache"]["hits"] + middle["cache"]["shared_in_flight"]) - (
        before["cache"]["hits"] + before["cache"]["shared_in_flight"]
    ) == 5
    assert [r["cached"] for r in first].count(True) == 5
    assert all(r["cached"] for r in second) and after["cache"]["hits"] - middle["cache"]["hits"] == 8
    assert after["batching"]["rm"]["items"] == middle["batching"]["rm"]["items"]  # no forward at all
    assert [r["reward"] for r in second] == [r["reward"] for r in first]
    assert first[0]["reward"] == first[2]["reward"] and first[0]["reward"] != first[1]["reward"]
    assert [r["components"]["verifier"]["passed"] for r in first] == [r == group[0] for r in group]


def test_token_auth(server):
    item = {"prompt": PROMPT, "response": RIGHT}
    assert httpx.get(f"{server}/healthz", timeout=10).status_code == 200  # probes need no token
    assert httpx.post(f"{server}/v1/score", json={"items": [item]}, timeout=10).status_code == 401
    wrong = httpx.post(f"{server}/v1/score", json={"items": [item]}, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    # the token is checked before the body: an unauthenticated caller gets 401, not a schema explanation
    assert httpx.post(f"{server}/v1/score", content=b"{not json", timeout=10).status_code == 401
    assert httpx.get(f"{server}/metrics", timeout=10).status_code == 401
    assert post(server, {"items": [item]}).status_code == 200


def test_invalid_json_and_schema_are_422_naming_the_field(server):
    response = post(server, b'{"items": [', headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
    response = post(server, {"items": [{"prompt": PROMPT}]})
    assert response.status_code == 422
    assert ["body", "items", 0, "response"] in [err["loc"] for err in response.json()["detail"]]
    response = post(server, {"items": [{"prompt": PROMPT, "response": "x", "refrence": {}}]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "refrence"
    response = post(server, {"itms": []})
    assert response.status_code == 422 and ["body", "items"] in [err["loc"] for err in response.json()["detail"]]
    response = post(server, {"items": [{"prompt": [{"role": "user"}], "response": "x"}]})
    assert response.status_code == 422
    assert any(err["loc"][:4] == ["body", "items", 0, "prompt"] and err["loc"][-1] == "content"
               for err in response.json()["detail"])  # fmt: skip


def test_bad_references_are_422_naming_the_item(server):
    ok = {"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF}
    response = post(server, {"items": [ok, {**ok, "reference": {"type": "astrology"}}]})
    assert response.status_code == 422 and "items[1].reference" in response.json()["detail"]
    assert "astrology" in response.json()["detail"]
    response = post(server, {"items": [{**ok, "reference": "{not json"}]})
    assert response.status_code == 422 and "items[0].reference: not valid JSON" in response.json()["detail"]
    response = post(server, {"items": [ok, ok, {**ok, "reference": {"answer": "12"}}]})
    assert response.status_code == 422 and "items[2].reference" in response.json()["detail"]


def test_too_large_is_413(server):
    items = [{"prompt": PROMPT, "response": f"r{i}"} for i in range(17)]
    response = post(server, {"items": items})
    assert response.status_code == 413 and "at most 16" in response.json()["detail"]
    big = {"items": [{"prompt": PROMPT, "response": "x" * (MAX_BYTES + 1)}]}
    response = post(server, big)
    assert response.status_code == 413 and f"max_request_bytes={MAX_BYTES}" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit must hold for a streamed body too
        yield b'{"items": [{"prompt": "p", "response": "'
        for _ in range(MAX_BYTES // 1000 + 1):
            yield b"y" * 1000
        yield b'"}]}'

    response = post(server, chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_verifier_timeout_and_error_are_components_not_500(server, client):
    slow, broken, fine = client.score(
        [
            {"prompt": PROMPT, "response": "slow", "reference": {"type": "sleep", "seconds": 5}},
            {"prompt": PROMPT, "response": "boom", "reference": {"type": "boom"}},
            {"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF},
        ]
    )
    # answered by verifier_timeout_s = 2: the 5 s verifier's own answer ({"slept": 5}) never arrived
    assert slow["components"]["verifier"]["status"] == "timeout" and slow["components"]["verifier"]["score"] == 0.0
    assert "2.0s" in slow["components"]["verifier"]["details"]["error"]
    assert "slept" not in slow["components"]["verifier"]["details"]
    assert slow["reward"] == pytest.approx(0.2 * slow["components"]["rm"], abs=1e-6)
    assert broken["components"]["verifier"]["status"] == "error"
    assert "verifier bug" in broken["components"]["verifier"]["details"]["error"]
    assert fine["components"]["verifier"]["passed"] is True
    again = client.score([{"prompt": PROMPT, "response": "slow", "reference": {"type": "sleep", "seconds": 5}}])[0]
    assert again["cached"] is False  # a timeout is not cached: it may have been load, not the response
    assert metrics(server)["verifier_status"]["timeout"] >= 2


def code_verifier_registered() -> bool:
    from verifiers import VERIFIERS

    return "code" in VERIFIERS


@pytest.mark.skipif(not code_verifier_registered(), reason="data_builders has no 'code' verifier")
def test_model_code_with_an_infinite_loop_times_out_in_the_service_not_the_sandbox(client):
    tests = {"type": "code", "tests": "assert f(1) == 2", "entry_point": "f", "timeout_s": 5}
    looping, right = client.score(
        [
            {"prompt": PROMPT, "response": "def f(x):\n    while True:\n        pass\n", "reference": tests},
            {"prompt": PROMPT, "response": "def f(x):\n    return x + 1\n", "reference": tests},
        ]
    )
    # the component's own status "timeout" is the service's verifier_timeout_s = 2; had the sandbox's 5 s wall limit
    # answered first, the verifier would have finished (status "ok") with a failed run in its details
    assert looping["components"]["verifier"]["status"] == "timeout" and looping["components"]["verifier"]["score"] == 0
    assert right["components"]["verifier"]["passed"] is True and right["components"]["verifier"]["verifier"] == "code"


def test_overload_is_503_with_retry_after(server):
    holding = [
        {"prompt": PROMPT, "response": f"hold-{i}", "reference": {"type": "sleep", "seconds": 0.6}} for i in range(16)
    ]
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, server, {"items": holding})
        deadline = time.monotonic() + 10
        while metrics(server)["pending_items"] < 16 and time.monotonic() < deadline:
            time.sleep(0.02)
        extra = [{"prompt": PROMPT, "response": f"extra-{i}"} for i in range(9)]  # 16 + 9 > 24 pending
        rejected = post(server, {"items": extra})
        assert first.result(timeout=30).status_code == 200
    assert rejected.status_code == 503 and rejected.headers["retry-after"] == "1"
    assert "max_pending_items=24" in rejected.json()["detail"]
    assert post(server, {"items": extra}).status_code == 200  # admitted once the queue drained
    snapshot = metrics(server)
    assert snapshot["rejected_overload"] >= 1 and snapshot["pending_items"] == 0
    assert snapshot["requests"]["/v1/score 503"] >= 1


def test_metrics_json_and_prometheus(server):
    snapshot = metrics(server)
    assert snapshot["requests"]["/v1/score 200"] >= 5 and snapshot["latency"]["count"] >= 5
    assert 0 < snapshot["latency"]["p50_ms"] <= snapshot["latency"]["p99_ms"]
    text = httpx.get(f"{server}/metrics", params={"format": "prometheus"}, headers=AUTH, timeout=10).text
    assert 'reward_requests_total{path="/v1/score",status="200"}' in text
    assert f"reward_cache_hits_total {snapshot['cache']['hits']}" in text
    assert "# TYPE reward_rm_forwards_total counter" in text
    assert httpx.get(f"{server}/healthz", timeout=10).json()["model_version"]


def test_async_client_scores_like_the_sync_client(server, client):
    items = [{"prompt": PROMPT, "response": f"The answer is \\boxed{{{n}}}.", "reference": MATH_REF} for n in range(5)]

    async def run():
        async with AsyncRewardClient(server, timeout=30, retries=0, api_token=TOKEN, chunk_size=2) as async_client:
            return await async_client.score(items)

    assert [r["reward"] for r in asyncio.run(run())] == pytest.approx([r["reward"] for r in client.score(items)])


def test_client_fails_over_from_a_dead_replica(server, get_free_port, monkeypatch):
    dead = f"http://127.0.0.1:{get_free_port()}"  # nothing listens there
    sleeps = []
    monkeypatch.setattr(client_module, "time", SimpleNamespace(sleep=sleeps.append, monotonic=time.monotonic))
    with RewardClient([dead, server], timeout=10, retries=1, backoff_s=5.0, api_token=TOKEN) as rc:
        results = [rc.score([{"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF}])[0] for _ in range(2)]
    assert sleeps == []  # fail-over within a round: no backoff sleep
    assert all(r["components"]["verifier"]["passed"] for r in results)


class CountingTransport(httpx.HTTPTransport):
    def __init__(self):
        super().__init__()
        self.connect_errors = 0

    def handle_request(self, request):
        try:
            return super().handle_request(request)
        except httpx.ConnectError:
            self.connect_errors += 1
            raise


def test_server_restart_while_the_client_retries(reward_serve, get_free_port, tmp_path):
    port = get_free_port()
    argv = ["--weights", '{"rm": 0, "verifier": 1}']  # verifiers only: starts fast, same HTTP path
    item = {"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF}
    transport = CountingTransport()
    with RewardClient(f"http://127.0.0.1:{port}", timeout=10, transport=transport) as rc:  # the default budget
        with reward_serve(argv, port=port, log=tmp_path / "a.log"):
            assert rc.score([item])[0]["reward"] == 1.0
        outcome = {}
        worker = threading.Thread(target=lambda: outcome.update(result=rc.score([item])))
        worker.start()  # the server is down: the client is retrying with backoff now
        deadline = time.monotonic() + 10
        while transport.connect_errors == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert transport.connect_errors >= 1
        with reward_serve(argv, port=port, log=tmp_path / "b.log"):
            worker.join(timeout=60)
        assert not worker.is_alive()
    assert outcome["result"][0]["reward"] == 1.0


def test_client_round_robin_and_retry_after(monkeypatch):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "b":
            return httpx.Response(503, headers={"Retry-After": "2"}, text="overloaded")
        items = json.loads(request.content)["items"]
        return httpx.Response(200, json={"results": [{"reward": 1.0, "components": {}} for _ in items]})

    with RewardClient(["http://a", "http://b", "http://c"], retries=2, backoff_s=0.0, jitter=False,
                      transport=httpx.MockTransport(handler)) as rc:  # fmt: skip
        for _ in range(3):
            rc.score([{"prompt": "p", "response": "r"}])
    assert seen == ["a", "b", "c", "c"]  # each request starts at the next replica; b's 503 fails over to c

    sleeps = []
    always_503 = httpx.MockTransport(lambda request: httpx.Response(503, headers={"Retry-After": "3"}))
    with RewardClient("http://b", retries=2, backoff_s=0.5, max_backoff_s=10, transport=always_503,
                      jitter=False) as rc:  # fmt: skip
        monkeypatch.setattr("reward.client.time.sleep", sleeps.append)
        with pytest.raises(RewardServiceError, match="failed after 3 attempt"):
            rc.score([{"prompt": "p", "response": "r"}])
    assert sleeps == [3.0, 3.0]  # Retry-After wins over a shorter backoff
