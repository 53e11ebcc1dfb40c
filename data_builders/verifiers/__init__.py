"""Rule-based verifiers, chosen by the `type` of the reference that travels with each query.

`verify(response, reference)` is the one entry point: builders filter candidates with it and the reward service
scores responses with it. Adding a verifier is one entry in `VERIFIERS`: a function
`(response: str, reference: dict) -> VerifierResult`.

Registered: "math" (`math.verify_math`), "instruction" (`instruction.verify_instruction`, IFEval's constraints),
"code" (`code.verify_code`) and "instruction_code" (`instruction_code.verify_instruction_code`). Those two run
code in the sandbox and are imported on their first call, not here, so that importing the registry stays cheap and
never loads the sandbox for math or instructions. Also imported on first use: "structured" and "json_schema"
(`structured`: table answers, repairs checked by comparison, `jsonschema`), "logic" (`logic`: solver answer plus
stated reasoning), "long" (`long`: output-length constraint and the 8,192-token limit) and "cross_lingual"
(`cross_lingual`: answer agreement with the original task, in the target language).
"""

import importlib
import json
from collections.abc import Callable

from data_builders.verifiers.instruction import verify_instruction
from data_builders.verifiers.math import verify_math
from data_builders.verifiers.result import VerifierResult


def lazy_verifier(module: str, function: str) -> Callable[[str, dict], VerifierResult]:
    """A verifier that imports `module` and looks up `function` on its first call (import errors surface there)."""

    def run(response: str, reference: dict) -> VerifierResult:
        return getattr(importlib.import_module(module), function)(response, reference)

    run.__name__ = run.__qualname__ = function
    run.__doc__ = f"{module}.{function}, imported on first use."
    return run


VERIFIERS: dict[str, Callable[[str, dict], VerifierResult]] = {
    "math": verify_math,
    "instruction": verify_instruction,
    # these two run model-written code in the sandbox: imported on first use (see the module docstring)
    "code": lazy_verifier(f"{__name__}.code", "verify_code"),
    "instruction_code": lazy_verifier(f"{__name__}.instruction_code", "verify_instruction_code"),
    # data builders II: structured data, JSON output, logic, long generation, cross-lingual (imported on first use)
    "structured": lazy_verifier(f"{__name__}.structured", "verify_structured"),
    "json_schema": lazy_verifier(f"{__name__}.structured", "verify_json_schema"),
    "logic": lazy_verifier(f"{__name__}.logic", "verify_logic"),
    "long": lazy_verifier(f"{__name__}.long", "verify_long"),
    "cross_lingual": lazy_verifier(f"{__name__}.cross_lingual", "verify_cross_lingual"),
}

__all__ = ["VERIFIERS", "VerifierResult", "lazy_verifier", "parse_reference", "verify"]


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
