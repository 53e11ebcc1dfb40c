"""The reward service under hostile input, on a real uvicorn server with the trained micro reward model: each bad
item fails only its own request with a 4xx naming the field, its neighbours in the same model batch still score,
the connection stays usable, and nothing a response does (a runaway sympy expression, a catastrophic regex, a
10 MB body) stalls other requests or disables the verifiers afterwards (issue 20)."""

import asyncio
import json
import math
import time

import httpx
import pytest

from reward.app import create_app
from reward.config import ServeConfig

pytestmark = pytest.mark.e2e

PROMPT = [{"role": "user", "content": "Sam has 7 apples and gets 5 more. How many?"}]
RIGHT = "7 + 5 = 12. The answer is \\boxed{12}."
MATH_REF = {"type": "math", "answer": "12"}
GOOD = {"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF}


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


# (label, raw JSON body of one item) that must each get a 4xx naming where the problem is
BAD_ITEMS = {
    # NaN in a field that fails validation: the default error echoes the value, which JSON cannot encode
    "nan-response": ('{"prompt": "x", "response": NaN}', "response"),
    "infinity-in-reference": ('{"prompt": "x", "response": "1", "reference": {"type": "math", "answer": Infinity}}',
                              "reference"),
    "lone-surrogate-response": ('{"prompt": "x", "response": "abc \\ud800 def"}', "response"),
    "lone-surrogate-prompt": ('{"prompt": [{"role": "user", "content": "hi \\udfff"}], "response": "12"}', "content"),
    "tool-calls-wrong-shape": (json.dumps({"prompt": [{"role": "user", "content": "hi"},
                                                      {"role": "assistant", "content": "", "tool_calls": 7},
                                                      {"role": "user", "content": "go on"}],
                                           "response": "12"}), "prompt"),
    "message-nested-900-deep": (json.dumps({"prompt": [{"role": "user", "content": "hi", "extra": nested(900)}],
                                            "response": "12"}), "prompt"),
}  # fmt: skip


@pytest.fixture(scope="module")
def app(trained_rm, rm_scorer):
    config = ServeConfig(model_path=str(trained_rm[0]), max_batch_size=64, max_wait_ms=200, verifier_timeout_s=5,
                         verifier_workers=2, max_length=256)  # fmt: skip
    return create_app(config, rm_scorer)


async def _post(client: httpx.AsyncClient, body: str) -> httpx.Response:
    return await client.post("/v1/score", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize("label", list(BAD_ITEMS))
def test_a_bad_item_fails_only_its_own_request_with_a_4xx_naming_the_field(app, live_server, label):
    """One bad request sent together with 20 good ones (all inside one batching window): the bad one gets a 4xx
    whose detail names the field; the 20 good ones score; the same keep-alive connection keeps working."""
    bad_item, field = BAD_ITEMS[label]
    good_body = json.dumps({"items": [GOOD]})

    async def run(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            answers = await asyncio.gather(
                *[_post(client, good_body) for _ in range(10)],
                _post(client, '{"items": [' + bad_item + "]}"),
                *[_post(client, good_body) for _ in range(10)],
            )
            after = await _post(client, good_body)  # the connection pool is still usable
            return answers, after

    with live_server(app) as url:
        answers, after = asyncio.run(run(url))
    bad = answers[10]
    assert 400 <= bad.status_code < 500, (bad.status_code, bad.text[:500])
    assert field in bad.text, bad.text[:500]
    good = answers[:10] + answers[11:]
    assert [r.status_code for r in good] == [200] * 20, [r.text[:200] for r in good if r.status_code != 200]
    assert all(r.json()["results"][0]["components"]["verifier"]["passed"] for r in good)
    assert after.status_code == 200


@pytest.mark.parametrize("answer", ["\\boxed{(99!)!}", "\\boxed{9^{999999}}", "The answer is (9^9)^(9^9)."])
def test_runaway_math_answers_are_killed_and_do_not_disable_the_verifier(app, live_server, answer):
    """Answers built to make sympy run away end as their own timeout or failure within the verifier budget; the
    service stays responsive meanwhile and ordinary items score normally afterwards."""
    hostile = {"prompt": "x", "response": answer, "reference": {"type": "math", "answer": "12"}}

    async def run(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            hostile_task = asyncio.ensure_future(client.post("/v1/score", json={"items": [hostile] * 2}))
            await asyncio.sleep(0.5)
            start = time.monotonic()
            health = await client.get("/healthz")
            health_s = time.monotonic() - start
            hostile_answer = await hostile_task
            after = await client.post("/v1/score", json={"items": [GOOD] * 4})
            return health, health_s, hostile_answer, after

    with live_server(app) as url:
        health, health_s, hostile_answer, after = asyncio.run(run(url))
    assert health.status_code == 200 and health_s < 2.0, health_s
    assert hostile_answer.status_code == 200
    for result in hostile_answer.json()["results"]:
        assert result["components"]["verifier"]["passed"] is False
    verdicts = [r["components"]["verifier"] for r in after.json()["results"]]
    assert [v["status"] for v in verdicts] == ["ok"] * 4 and all(v["passed"] for v in verdicts)


def test_catastrophic_regex_in_a_schema_does_not_freeze_other_requests(app, live_server):
    """A json_schema reference whose pattern backtracks exponentially: the check is linear-time (RE2) or killed,
    and a request sent meanwhile answers at once."""
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    response = json.dumps({"s": "a" * 28 + "!"})
    hostile = {"prompt": "x", "response": response, "reference": {"type": "json_schema", "schema": schema}}

    async def run(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            start = time.monotonic()
            hostile_task = asyncio.ensure_future(client.post("/v1/score", json={"items": [hostile]}))
            await asyncio.sleep(0.3)
            other = await client.post("/v1/score", json={"items": [GOOD]})
            other_s = time.monotonic() - start
            hostile_answer = await hostile_task
            return hostile_answer, time.monotonic() - start, other, other_s

    with live_server(app) as url:
        hostile_answer, hostile_s, other, other_s = asyncio.run(run(url))
    assert other.status_code == 200 and other_s < 3.0, other_s
    assert hostile_s < 5.0, hostile_s  # backtracking re takes ~20 s on 28 a's (4x per extra a)
    assert hostile_answer.status_code == 200
    assert hostile_answer.json()["results"][0]["components"]["verifier"]["passed"] is False


def test_a_10mb_response_does_not_stall_a_small_request(trained_rm, rm_scorer, live_server):
    """The big response is cut before it is tokenized; a 1-item request sent meanwhile is answered quickly, and
    the big item's score equals the score of its last max_length tokens."""
    config = ServeConfig(model_path=str(trained_rm[0]), max_wait_ms=5, max_length=256, max_request_bytes=20_000_000)
    big = "The answer is 12. " * 600_000  # ~10.8 MB
    app = create_app(config, rm_scorer)

    async def run(url):
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            big_item = {"prompt": "x", "response": big}
            big_task = asyncio.ensure_future(client.post("/v1/score", json={"items": [big_item]}))
            await asyncio.sleep(0.5)
            start = time.monotonic()
            small = await client.post("/v1/score", json={"items": [GOOD]})
            small_s = time.monotonic() - start
            return await big_task, small, small_s

    with live_server(app) as url:
        big_answer, small, small_s = asyncio.run(run(url))
    assert small.status_code == 200 and small_s < 3.0, small_s
    assert big_answer.status_code == 200, big_answer.text[:300]
    tokenizer = rm_scorer.tokenizer
    whole = tokenizer("x" + big + tokenizer.eos_token)["input_ids"]  # what the cut must agree with
    logit = rm_scorer.score_ids([whole[-256:]])[0]
    assert big_answer.json()["results"][0]["components"]["rm"] == pytest.approx(math.tanh(logit), abs=1e-5)


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", "/metrics"])
def test_everything_but_healthz_needs_the_token(trained_rm, rm_scorer, path):
    from fastapi.testclient import TestClient

    config = ServeConfig(model_path=str(trained_rm[0]), api_token="s3cret")
    with TestClient(create_app(config, rm_scorer)) as client:
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200
