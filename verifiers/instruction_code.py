"""Code-verified instruction verifier: run a generated `check(response) -> bool` on a response, in the sandbox.

Reference: `{"type": "instruction_code", "function": "<Python source defining check>", "entry_point": "check"}`.

The report's instruction-following data (Qwen2.5 report, section 4, SFT area 4) has a model write an instruction,
Python code that verifies a response against it, and unit tests for that code; responses are then selected by
running the code. That code is model-written, so it only ever runs in the sandbox: the function source goes in as
a module file (`instruction_check.py`), the response as stdin, and a fixed harness imports the module, calls the
entry point on the decoded stdin and prints one marked JSON line. The response is never pasted into code, so no
response can change what runs. A response passes when the run exits cleanly and the function returned exactly
`True`; a function that returns a non-bool, raises, times out or runs out of memory fails the response, with the
reason in `details`.

`check_function_tests(function, tests)` is the acceptance step: run the generator's unit tests against its
function in the sandbox; only a function whose own tests pass may select responses.
"""

import json
import keyword
from collections.abc import Sequence

from sandbox import SandboxJob, SandboxLimits, run, run_many
from verifiers.result import VerifierResult

NAME = "instruction_code"
MODULE = "instruction_check"  # the file the function source is written to, imported by the harness and the tests
MARKER = "__qwenpost_check_result__"
MAX_FUNCTION_CHARS = 20_000
_HARNESS = (
    "import json, sys\n"
    "from {module} import {entry} as _check\n"
    "_response = sys.stdin.buffer.read().decode('utf-8')\n"
    "_value = _check(_response)\n"
    "print()\n"
    "print({marker!r} + ' ' + json.dumps({{'type': type(_value).__name__, 'value': _value is True}}))\n"
)


def check_limits():
    return SandboxLimits(cpu_seconds=2.0, wall_seconds=5.0, memory_mb=256)


def _parse(reference: dict) -> tuple[str, str]:
    """(function source, entry point) of a reference; ValueError naming what is wrong."""
    function, entry = reference.get("function"), reference.get("entry_point", "check")
    if not isinstance(function, str) or not function.strip():
        raise ValueError("instruction_code reference needs 'function': the Python source of the check function")
    if len(function) > MAX_FUNCTION_CHARS:
        raise ValueError(f"instruction_code reference 'function' is longer than {MAX_FUNCTION_CHARS} characters")
    if not isinstance(entry, str) or not entry.isidentifier() or keyword.iskeyword(entry):
        raise ValueError(f"instruction_code reference 'entry_point' must be a Python identifier, got {entry!r}")
    return function, entry


def job(response: str, reference: dict):
    """The sandbox job that runs `reference`'s function on `response` (passed as stdin)."""
    function, entry = _parse(reference)
    harness = _HARNESS.format(module=MODULE, entry=entry, marker=MARKER)
    return SandboxJob(harness, "python", stdin=response, extra_files={f"{MODULE}.py": function}, limits=check_limits())


def result_of(outcome) -> VerifierResult:
    """The verdict on one sandbox run of `job`."""
    found = None
    for line in outcome.stdout.splitlines():
        if line.startswith(MARKER + " "):
            found = line[len(MARKER) + 1 :]
    value, returned = False, None
    if outcome.status == "passed" and found is not None:
        try:
            parsed = json.loads(found)
            value, returned = bool(parsed["value"]), parsed["type"]
        except (ValueError, KeyError, TypeError):
            found = None
    if outcome.status != "passed" or found is None:
        tail = outcome.stderr.strip().splitlines()[-1:] or [""]
        failure = f"check function did not run to completion (status {outcome.status}): {tail[0][:200]}"
        tag = f"check function {outcome.status}"
    elif returned != "bool":
        failure, tag = f"check function returned {returned}, not bool", "check function returned non-bool"
        value = False
    elif not value:
        failure, tag = "check function returned False", "check returned False"
    else:
        failure, tag = None, None
    details = {"status": outcome.status, "returned": returned, "failure": failure, "tag": tag}
    return VerifierResult(NAME, value, 1.0 if value else 0.0, True, details)


def verify_instruction_code(response: str, reference: dict) -> VerifierResult:
    """Run the reference's check function on `response` in the sandbox; passed iff it returned True.

    Raises ValueError only for a malformed reference.
    """
    if not isinstance(response, str):
        _parse(reference)
        details = {"status": None, "returned": None, "failure": f"response is {type(response).__name__}, not text",
                   "tag": "response is not text"}
        return VerifierResult(NAME, False, 0.0, False, details)
    spec = job(response, reference)
    return result_of(run(spec.source, spec.language, stdin=spec.stdin, extra_files=spec.extra_files,
                         limits=spec.limits))


def verify_instruction_code_many(items: Sequence[tuple[str, dict]],
                                 workers: int | None = None) -> list[VerifierResult]:
    """`verify_instruction_code` over many (response, reference) pairs, run concurrently; same verdicts."""
    jobs, direct = [], {}
    for index, (response, reference) in enumerate(items):
        if isinstance(response, str):
            jobs.append((index, job(response, reference)))
        else:
            direct[index] = verify_instruction_code(response, reference)
    outcomes = run_many([spec for _, spec in jobs], workers=workers)
    results = dict(direct)
    for (index, _), outcome in zip(jobs, outcomes, strict=True):
        results[index] = result_of(outcome)
    return [results[i] for i in range(len(items))]


def check_function_tests(function: str, tests: str):
    """Run the generator's unit `tests` (Python that imports `check` from `instruction_check`) against its
    `function` in the sandbox; the function may select responses only if this returns status "passed"."""
    return run(tests, "python", extra_files={f"{MODULE}.py": function}, limits=check_limits())
