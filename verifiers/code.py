"""Code verifier: extract the program from a response, append the reference's tests, run it in the sandbox.

Reference: `{"type": "code", "language": "python", "tests": "...", "entry_point": "f" | null, "timeout_s": 10}`
(`language` defaults to python; `entry_point` and `timeout_s` are optional).

1. Extraction (`details["extraction"]`): the last fenced code block tagged with the reference's language
   ("fenced"), else the last fenced block of any tag ("fenced_other"), else the whole response if it can be a
   program ("whole_response": Python that `ast.parse` accepts; for JavaScript/C++, text with code punctuation; the
   compiler or runtime is the real judge), else nothing ("none": no run, not passed). A final fence left open
   (a truncated generation) counts as a block. `format_ok` is whether a fenced block was found.
2. The program is the code, then the tests. MBPP style: `tests` is statements (asserts) run after the code.
   HumanEval style: `tests` defines `check(candidate)` and `entry_point` names the function; `check(<entry_point>)`
   is appended. For JavaScript and C++ the tests are code appended likewise (for C++ the tests hold `main`; a
   `main` of the response's own is renamed so the two do not collide, and `details["renamed_main"]` says so).
3. It runs in the sandbox; passed iff the run's status is "passed" (exit 0: every assert held). `details` has the
   language, extraction, status, exit code, duration, the stderr tail (at most 2,000 characters) and the isolation
   that confined the run.

Nothing here raises on a bad response; a malformed reference raises ValueError naming the key.
`verify_code_many` runs many verifications on the sandbox's bounded worker pool with the same verdicts.
"""

import ast
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox import LANGUAGES, SandboxJob, SandboxLimits, run, run_many
from verifiers.result import VerifierResult

NAME = "code"
STDERR_TAIL_CHARS = 2000
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 120.0
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n`]*$")
_CPP_MAIN = re.compile(r"\bint\s+main\s*\(")
_CHECK_DEFINED = {
    "python": re.compile(r"^\s*def\s+check\s*\(", re.MULTILINE),
    "javascript": re.compile(r"\bfunction\s+check\s*\(|\b(?:const|let|var)\s+check\s*="),
    "cpp": re.compile(r"\bcheck\s*\([^)]*\)\s*\{"),
}


def parse_code_reference(reference: dict) -> tuple[str, str, str | None, float]:
    """(language, tests, entry_point, timeout_s) of a code reference; ValueError naming what is wrong."""
    languages = LANGUAGES
    language = reference.get("language", "python")
    if not isinstance(language, str) or language not in languages:
        raise ValueError(f"code reference 'language' must be one of {list(languages)} (or an alias), "
                         f"got {language!r}")
    tests = reference.get("tests")
    if not isinstance(tests, str) or not tests.strip():
        raise ValueError(f"code reference needs 'tests': the test code as a non-empty string, got {tests!r}"[:300])
    entry_point = reference.get("entry_point")
    if entry_point is not None and (not isinstance(entry_point, str) or not entry_point.isidentifier()
                                    or keyword.iskeyword(entry_point)):
        raise ValueError(f"code reference 'entry_point' must be an identifier or null, got {entry_point!r}")
    timeout = reference.get("timeout_s", DEFAULT_TIMEOUT_S)
    if timeout is None:
        timeout = DEFAULT_TIMEOUT_S
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise ValueError(f"code reference 'timeout_s' must be a number in (0, {MAX_TIMEOUT_S}], got {timeout!r}")
    return languages[language].name, tests, entry_point, float(timeout)


def fenced_blocks(response: str) -> list[tuple[str, str]]:
    """(tag, code) of every fenced block in order; a fence still open at the end runs to the end of the text."""
    blocks = []
    tag, fence, lines = None, None, []
    for line in response.splitlines():
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence, tag, lines = match.group(1), match.group(2).lower(), []
        elif match and match.group(1).startswith(fence) and not match.group(2):
            blocks.append((tag, "\n".join(lines) + "\n"))
            fence = None
        else:
            lines.append(line)
    if fence is not None and lines:
        blocks.append((tag, "\n".join(lines) + "\n"))
    return blocks


def extract_code(response: str, language: str) -> tuple[str | None, str]:
    """The program in `response` for `language` and how it was found: "fenced", "fenced_other", "whole_response"
    or "none" (see the module docstring)."""
    languages = LANGUAGES
    blocks = [(tag, code) for tag, code in fenced_blocks(response) if code.strip()]
    tagged = [code for tag, code in blocks if tag in languages and languages[tag].name == language]
    if tagged:
        return tagged[-1], "fenced"
    if blocks:
        return blocks[-1][1], "fenced_other"
    text = response.strip()
    if not text:
        return None, "none"
    if language == "python":
        try:
            ast.parse(text)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return None, "none"
        return text + "\n", "whole_response"
    if "(" in text and (";" in text or "{" in text):
        return text + "\n", "whole_response"
    return None, "none"


def build_program(code: str, language: str, tests: str, entry_point: str | None) -> tuple[str, bool]:
    """The code followed by the tests (and `check(entry_point)` for HumanEval-style tests); also whether the
    response's own C++ `main` was renamed to make room for the tests' one."""
    renamed = False
    if language == "cpp" and _CPP_MAIN.search(tests) and _CPP_MAIN.search(code):
        code = _CPP_MAIN.sub("int qwenpost_response_main(", code)
        renamed = True
    program = code.rstrip("\n") + "\n\n" + tests.rstrip("\n") + "\n"
    if entry_point is not None and _CHECK_DEFINED[language].search(tests):
        program += f"\ncheck({entry_point});\n" if language != "python" else f"\ncheck({entry_point})\n"
    return program, renamed


@dataclass
class _Prepared:
    """A response ready to run (`job` set) or already judged without running (`result` set)."""
    details: dict
    format_ok: bool = False
    job: object = None  # a SandboxJob
    result: VerifierResult | None = None


def _prepare(response: str, reference: dict) -> _Prepared:
    language, tests, entry_point, timeout = parse_code_reference(reference)
    details = {"language": language, "extraction": "none", "status": None, "exit_code": None, "duration_s": None,
               "stderr": "", "isolation": {}, "failure": None}
    if not isinstance(response, str):
        details["failure"] = f"response is {type(response).__name__}, not text"
        return _Prepared(details, result=VerifierResult(NAME, False, 0.0, False, details))
    code, extraction = extract_code(response, language)
    details["extraction"] = extraction
    format_ok = extraction in ("fenced", "fenced_other")
    if code is None:
        details["failure"] = "no code found in the response"
        return _Prepared(details, result=VerifierResult(NAME, False, 0.0, False, details))
    program, renamed = build_program(code, language, tests, entry_point)
    if renamed:
        details["renamed_main"] = True
    limits = SandboxLimits(cpu_seconds=timeout, wall_seconds=timeout)
    return _Prepared(details, format_ok, job=SandboxJob(program, language, limits=limits))


def _finish(prepared: _Prepared, outcome) -> VerifierResult:
    details = dict(prepared.details)
    passed = outcome.status == "passed"
    details.update(status=outcome.status, exit_code=outcome.exit_code, duration_s=outcome.duration_s,
                   stderr=outcome.stderr[-STDERR_TAIL_CHARS:], isolation=outcome.isolation)
    if not passed:
        details["failure"] = f"{outcome.status}: {failure_line(outcome.stderr)[:200]}".rstrip(": ")
    return VerifierResult(NAME, passed, 1.0 if passed else 0.0, prepared.format_ok, details)


_ERROR_LINE = re.compile(r"(Error|Exception|error:|Traceback|Assertion)")


def failure_line(stderr: str) -> str:
    """The line of stderr that says what went wrong: the last one naming an error (Python's `AssertionError`, node's
    `AssertionError [ERR_ASSERTION]: ...`, g++'s `error: ...`), else the last line. Node ends every crash with a
    `Node.js v20...` line and g++ with a count of errors, so the plain last line would name neither."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.search(line):
            return line
    return lines[-1] if lines else ""


def verify_code(response: str, reference: dict) -> VerifierResult:
    """Run `response`'s code with the reference's tests in the sandbox; passed iff every test held.

    Raises ValueError only for a malformed reference.
    """
    prepared = _prepare(response, reference)
    if prepared.result is not None:
        return prepared.result
    job = prepared.job
    return _finish(prepared, run(job.source, job.language, limits=job.limits))


def verify_code_many(items: Sequence[tuple[str, dict]], workers: int | None = None) -> list[VerifierResult]:
    """`verify_code` over many (response, reference) pairs on the sandbox's worker pool; same verdicts, same order."""
    prepared = [_prepare(response, reference) for response, reference in items]
    pending = [p for p in prepared if p.result is None]
    outcomes = iter(run_many([p.job for p in pending], workers=workers))
    return [p.result if p.result is not None else _finish(p, next(outcomes)) for p in prepared]
