"""Rule-based verifiers (floor 3), chosen by the `type` of the reference that travels with each query.

`verify(response, reference)` is the one entry point: the data builders filter candidates with it, the reward
service scores responses with it, evaluation and GRPO's held-out curve check answers with it (`verify_many` runs a
batch, code on the sandbox's worker pool). Adding a verifier is one entry in `VERIFIERS`: a function
`(response: str, reference: dict) -> VerifierResult`.

Registered: "math" (`math.verify_math`), "instruction" (`instruction.verify_instruction`, IFEval's constraints),
"code" (`code.verify_code`, tests run in the sandbox), "instruction_code" (`instruction_code`, a check function run
in the sandbox), "structured" and "json_schema" (`structured`: table answers, repairs checked by comparison,
`jsonschema`), "logic" (`logic`: solver answer plus stated reasoning), "long" (`long`: output-length constraint and
the 8,192-token limit), "cross_lingual" (`cross_lingual`: answer agreement with the original task, in the target
language) and "tool_call" (`tool_call`: Qwen2.5 `<tool_call>` blocks checked against the tools' JSON Schemas and run
against a reference implementation in the sandbox). Heavy third-party checkers (sympy through math-verify,
langdetect, pandas, jsonschema) are imported on their first use inside those modules, so importing the registry
stays cheap.

`parse_reference` is the one reader of a reference as records store it (a JSON string) or as a caller sends it (a
mapping); the reward service turns its ValueError into a 422 naming the item.
"""

import json
from collections.abc import Callable, Sequence

from verifiers.code import verify_code, verify_code_many
from verifiers.cross_lingual import verify_cross_lingual
from verifiers.instruction import verify_instruction
from verifiers.instruction_code import verify_instruction_code
from verifiers.logic import verify_logic
from verifiers.long import verify_long
from verifiers.math import verify_math
from verifiers.result import VerifierResult
from verifiers.structured import verify_json_schema, verify_structured
from verifiers.tool_call import verify_tool_call

VERIFIERS: dict[str, Callable[[str, dict], VerifierResult]] = {
    "math": verify_math,
    "instruction": verify_instruction,
    "code": verify_code,
    "instruction_code": verify_instruction_code,
    "structured": verify_structured,
    "json_schema": verify_json_schema,
    "logic": verify_logic,
    "long": verify_long,
    "cross_lingual": verify_cross_lingual,
    "tool_call": verify_tool_call,
}

__all__ = ["VERIFIERS", "VerifierResult", "parse_reference", "verify", "verify_many"]


def parse_reference(reference: dict | str, where: str = "reference") -> dict:
    """A reference as a dict; records store it as a JSON string. ValueError naming `where` if it is neither."""
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})") from exc
    if not isinstance(reference, dict):
        raise ValueError(f"{where}: must be a JSON object, got {type(reference).__name__}")
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


def verify_many(
    responses: Sequence[str], references: Sequence[dict | str], *, code_workers: int | None = None
) -> list[VerifierResult]:
    """The verifier's verdict on each response, in order; code references run together on the sandbox's pool."""
    refs = [parse_reference(r) for r in references]
    results: list[VerifierResult | None] = [None] * len(refs)
    code = [i for i, r in enumerate(refs) if r.get("type") == "code"]
    if code:
        batch = verify_code_many([(responses[i], refs[i]) for i in code], workers=code_workers)
        for i, result in zip(code, batch, strict=True):
            results[i] = result
    for i, ref in enumerate(refs):
        if results[i] is None:
            results[i] = verify(responses[i], ref)
    return results
