"""verifiers.pool: checks run in worker processes that are killed when they run away, and the slot comes back
(issue 20: verifier threads could not be cancelled, so two hostile answers disabled the service's verifier)."""

import json
import time

import pytest

from verifiers.pool import VerifierPool

# A backreference makes RE2 refuse the pattern, so it falls back to Python's backtracking re, where (a+)+ before a
# mismatch is exponential: the runaway must be stopped by the pool, not by the verifier.
SCHEMA = {"type": "object", "properties": {"s": {"type": "string", "pattern": r"^(a+)+(x)\2$"}}}
HOSTILE = (json.dumps({"s": "a" * 40 + "!"}), {"type": "json_schema", "schema": SCHEMA})
MATH = ("The answer is \\boxed{12}.", {"type": "math", "answer": "12"})


@pytest.fixture(scope="module")
def pool():
    pool = VerifierPool(1, timeout_s=1.5)
    yield pool
    pool.close()


def test_a_runaway_check_is_killed_and_its_slot_serves_the_next(pool):
    assert pool.submit(*MATH).result(timeout=60).passed  # warm: the fork server and a worker are up
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        pool.submit(*HOSTILE).result(timeout=30)
    killed_after = time.monotonic() - start
    start = time.monotonic()
    result = pool.submit(*MATH).result(timeout=30)  # the one worker was killed; a fresh one answers
    assert result.passed and time.monotonic() - start < 5.0
    assert 1.4 < killed_after < 5.0, killed_after


def test_a_bad_reference_raises_its_value_error_through_the_pool(pool):
    with pytest.raises(ValueError, match="answer"):
        pool.submit("\\boxed{1}", {"type": "math"}).result(timeout=30)


def test_an_extra_verifier_that_cannot_be_imported_fails_at_construction():
    with pytest.raises(ValueError, match="extra_verifiers.x.*no_such_module"):
        VerifierPool(1, timeout_s=1, extra_verifiers={"x": "no_such_module:f"})
