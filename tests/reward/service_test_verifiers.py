"""Verifier types for the service tests, loaded by the server process through `extra_verifiers`
("service_test_verifiers:verify_sleep"): one that takes as long as its reference says, one that raises."""

import time

from verifiers.result import VerifierResult


def verify_sleep(response: str, reference: dict) -> VerifierResult:
    """Sleeps `reference["seconds"]`, then passes: a stand-in for a slow code verifier."""
    time.sleep(float(reference["seconds"]))
    details = {"slept": reference["seconds"]}
    return VerifierResult(verifier="sleep", passed=True, score=1.0, format_ok=True, details=details)


def verify_boom(response: str, reference: dict) -> VerifierResult:
    """A verifier with a bug."""
    raise RuntimeError("verifier bug")
