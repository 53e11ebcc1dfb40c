"""Property-based fuzz of the reward service's HTTP API with schemathesis, driven by the service's own OpenAPI
schema (/openapi.json): valid and invalid bodies for every operation on a real uvicorn server with the trained
micro reward model and the real verifiers. Every answer must be below 500 and arrive within the client timeout,
and /healthz must still answer afterwards (issue 20)."""

from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from reward.app import create_app
from reward.config import ServeConfig

pytestmark = pytest.mark.e2e

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 60  # per operation and mode: ~250 requests in all, about a minute here
STATUSES: Counter = Counter()


@pytest.fixture(scope="module")
def service(trained_rm, rm_scorer, live_server):
    config = ServeConfig(model_path=str(trained_rm[0]), api_token=TOKEN, max_wait_ms=2, verifier_timeout_s=5,
                         verifier_workers=2, max_length=128)  # fmt: skip
    with live_server(create_app(config, rm_scorer)) as url:
        yield url


def _operations(service: str):
    schema = schemathesis.openapi.from_url(f"{service}/openapi.json", headers=AUTH)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_5xx_and_no_hang(service, mode):
    """Hypothesis drives schemathesis' strategies for each operation directly (its pytest plugin does not load
    under pytest 9 here: it reads a private `_nodeid`)."""
    operations = _operations(service)
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {"POST /v1/score", "GET /healthz"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def call(case):
            try:
                response = case.call(base_url=service, headers=AUTH, timeout=30)
            except Exception as err:  # a timeout or a dropped connection is a failure too
                pytest.fail(f"{case.method} {case.path}: no answer ({type(err).__name__}: {err})")
            STATUSES[response.status_code] += 1
            assert response.status_code < 500, (case.method, case.path, repr(case.body)[:300], response.text[:300])

        try:
            call()
        except Unsatisfiable:  # an operation with no body or parameters has no invalid input (GET /healthz)
            assert mode == GenerationMode.NEGATIVE and not operation.body and not operation.query, operation.path


def test_healthz_answers_after_the_fuzz(service):
    response = httpx.get(f"{service}/healthz", timeout=5)
    assert response.status_code == 200 and response.json()["status"] == "ok"
    print(f"\nfuzz statuses: {dict(sorted(STATUSES.items()))}")
    assert sum(STATUSES.values()) > 0 and all(status < 500 for status in STATUSES)
