"""Rule-based verifiers, chosen by the `type` of the reference that travels with each query.

`verify(response, reference)` is the one entry point: builders filter candidates with it and the reward service
scores responses with it. Adding a verifier is one entry in `VERIFIERS`: a function
`(response: str, reference: dict) -> VerifierResult`.
"""

import json
from collections.abc import Callable

from data_builders.verifiers.math import verify_math
from data_builders.verifiers.result import VerifierResult

VERIFIERS: dict[str, Callable[[str, dict], VerifierResult]] = {
    "math": verify_math,
}

__all__ = ["VERIFIERS", "VerifierResult", "parse_reference", "verify"]


def parse_reference(reference: dict | str) -> dict:
    """A reference as a dict; records store it as a JSON string. Raises ValueError if it is neither."""
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except json.JSONDecodeError as exc:
            raise ValueError(f"reference is not valid JSON: {exc}") from exc
    if not isinstance(reference, dict):
        raise ValueError(f"reference must be a JSON object, got {type(reference).__name__}")
    return reference


def verify(response: str, reference: dict | str) -> VerifierResult:
    """Run the verifier named by `reference["type"]` on `response`.

    Raises ValueError for a malformed reference or an unknown type; never for a malformed response.
    """
    reference = parse_reference(reference)
    kind = reference.get("type")
    if kind not in VERIFIERS:
        raise ValueError(f"unknown verifier type {kind!r} in reference; known types: {sorted(VERIFIERS)}")
    return VERIFIERS[kind](response, reference)
