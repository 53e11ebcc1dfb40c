"""A load test of mixed items on a real uvicorn server with the trained micro reward model (issue 20): plain items,
math (right and wrong), code run in the sandbox (passing, failing, and hostile: an infinite loop, a fork bomb),
runaway math, duplicates, and one malformed request in every 40. Every valid request must succeed with the verdict
its item deserves; every malformed one gets a 4xx; nothing gets a 5xx. Prints requests, status counts and
latency percentiles. QWENPOST_LOAD_REQUESTS (default 400) sets the size; the note's figures used 4,000."""

import asyncio
import json
import os
import time
from collections import Counter

import httpx
import pytest

from reward.app import create_app
from reward.config import ServeConfig

pytestmark = pytest.mark.e2e

REQUESTS = int(os.environ.get("QWENPOST_LOAD_REQUESTS", "400"))
CLIENTS = 32
PROMPT = [{"role": "user", "content": "Sam has 7 apples and gets 5 more. How many?"}]
MATH = {"type": "math", "answer": "12"}
CODE = {"type": "code", "language": "python", "tests": "assert add(2, 3) == 5\nassert add(-1, 1) == 0", "timeout_s": 3}


def _code(body: str) -> str:
    return f"```python\n{body}\n```"


def item(kind: str, n: int) -> tuple[dict, bool | None]:
    """(item, expected verdict: True/False, or None for no verifier)."""
    if kind == "plain":
        return {"prompt": f"Say something about {n}.", "response": f"{n} is a number."}, None
    if kind == "math-right":
        right = f"7 + 5 = 12. The answer is \\boxed{{12}}. ({n})"
        return {"prompt": PROMPT, "response": right, "reference": MATH}, True
    if kind == "math-wrong":
        return {"prompt": PROMPT, "response": f"The answer is \\boxed{{{13 + n % 5}}}.", "reference": MATH}, False
    if kind == "math-runaway":
        return {"prompt": PROMPT, "response": "\\boxed{9^{999999}}", "reference": MATH}, False
    if kind == "code-right":
        return {"prompt": "f", "response": _code(f"def add(a, b):\n    return a + b # {n}"), "reference": CODE}, True
    if kind == "code-wrong":
        return {"prompt": "f", "response": _code(f"def add(a, b):\n    return a - b # {n}"), "reference": CODE}, False
    if kind == "code-loop":
        return {"prompt": "f", "response": _code("while True:\n    pass"), "reference": CODE}, False
    if kind == "code-forkbomb":
        bomb = "```python\nimport os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n```"
        return {"prompt": "add", "response": bomb, "reference": CODE}, False
    if kind == "duplicate":
        return {"prompt": PROMPT, "response": "7 + 5 = 12. The answer is \\boxed{12}.", "reference": MATH}, True
    raise ValueError(kind)


KINDS = ["plain", "math-right", "math-wrong", "code-right", "code-wrong", "duplicate", "duplicate", "math-right",
         "plain", "code-loop", "code-forkbomb", "math-runaway"]  # fmt: skip
MALFORMED = [
    '{"items": [{"prompt": "x", "response": NaN}]}',
    '{"items": [{"prompt": "x", "response": "\\ud800"}]}',
    '{"items": [{"prompt": "x"}]}',
    '{"items": [{"prompt": "x", "response": "1", "reference": {"type": "astrology"}}]}',
    '{"items": [',
]


def requests_plan(total: int) -> list[tuple[str, str, list]]:
    """[(kind, body, expected verdicts)]: every 40th request is malformed."""
    plan = []
    for i in range(total):
        if i % 40 == 39:
            plan.append(("malformed", MALFORMED[(i // 40) % len(MALFORMED)], []))
            continue
        kinds = [KINDS[(i + j) % len(KINDS)] for j in range(1 + i % 4)]  # 1 to 4 items per request
        pairs = [item(kind, i * 4 + j) for j, kind in enumerate(kinds)]
        plan.append(("valid", json.dumps({"items": [p for p, _ in pairs]}), [v for _, v in pairs]))
    return plan


async def drive(url: str, plan: list) -> tuple[Counter, list[float], list[str]]:
    statuses, latencies, problems = Counter(), [], []
    queue: asyncio.Queue = asyncio.Queue()
    for entry in plan:
        queue.put_nowait(entry)

    async def client_loop(client: httpx.AsyncClient):
        while not queue.empty():
            kind, body, expected = queue.get_nowait()
            start = time.perf_counter()
            response = await client.post("/v1/score", content=body, headers={"content-type": "application/json"})
            latencies.append(time.perf_counter() - start)
            statuses[response.status_code] += 1
            if kind == "malformed":
                if not 400 <= response.status_code < 500:
                    problems.append(f"malformed {body[:60]!r} -> {response.status_code}")
                continue
            if response.status_code != 200:
                problems.append(f"valid -> {response.status_code}: {response.text[:200]}")
                continue
            for result, verdict in zip(response.json()["results"], expected, strict=True):
                verifier = result["components"]["verifier"]
                got = None if verifier is None else verifier["passed"]
                if got != verdict:
                    problems.append(f"verdict {got} != {verdict}: {json.dumps(verifier)[:200]}")

    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await asyncio.gather(*[client_loop(client) for _ in range(CLIENTS)])
    return statuses, latencies, problems


def test_mixed_load_all_valid_requests_succeed(trained_rm, rm_scorer, live_server):
    config = ServeConfig(model_path=str(trained_rm[0]), max_wait_ms=5, verifier_workers=2, verifier_timeout_s=5,
                         max_length=256)  # fmt: skip
    plan = requests_plan(REQUESTS)
    with live_server(create_app(config, rm_scorer)) as url:
        start = time.perf_counter()
        statuses, latencies, problems = asyncio.run(drive(url, plan))
        wall = time.perf_counter() - start
        health = httpx.get(f"{url}/healthz", timeout=5)
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    items = sum(len(expected) for kind, _, expected in plan if kind == "valid")
    print(f"\nmixed load: {len(plan)} requests ({items} items, {sum(k == 'malformed' for k, _, _ in plan)} malformed) "
          f"in {wall:.1f} s, {CLIENTS} clients: statuses {dict(sorted(statuses.items()))}, "
          f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")  # fmt: skip
    assert not problems, problems[:10]
    assert sum(s for c, s in statuses.items() if c >= 500) == 0
    assert health.status_code == 200
