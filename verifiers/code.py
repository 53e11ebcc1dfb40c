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
   is appended (unless the tests call it themselves, as the translator's Python tests do). In every other language
   of the sandbox (20: data_builders/builders/multipl_e.py translates tests into each) the tests are code appended
   likewise; where the tests hold the program's `main` (C, C++, Go, Rust, Kotlin, Haskell) a `main` of the
   response's own is renamed so the two do not collide (`details["renamed_main"]`); Go gets `package main`, PHP
   `<?php` and Racket `#lang racket` when the response left them out (`build_program`).
3. It runs in the sandbox: the language's static check, its compile step, then the program; passed iff the run's
   status is "passed" (exit 0: every assert held). A program the static check refuses (a syntax or type error:
   `static_error`) or that does not compile (`compile_error`) fails with its first diagnostic as
   `details["failure"]`; a language whose toolchain is not installed here fails without running, with status
   "unavailable" and the package to install in `details["failure"]`. `details` has the language, extraction,
   status, exit code, duration, the stderr tail (at most 2,000 characters) and the isolation that confined the run.

Completion mode (MultiPL-E): a reference with `prompt` and `stop_tokens` (as MultiPL-E's rows have) makes the program
`prompt + completion + tests`, the completion being the response cut at its first stop token (or, for a chat answer,
its last fenced block, after the prompt's last line when the block repeats the prompt): `completion_of`.

Nothing here raises on a bad response; a malformed reference raises ValueError naming the key.
`verify_code_many` runs many verifications on the sandbox's bounded worker pool with the same verdicts.
"""

import ast
import dataclasses
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox import LANGUAGES, SandboxJob, SandboxLimits, run, run_many, unavailable
from verifiers.result import VerifierResult

NAME = "code"
STDERR_TAIL_CHARS = 2000
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 120.0
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([^\s`]*)[^\n`]*$")
# a `main` of the response's own, renamed when the tests bring theirs (language -> pattern, replacement)
_MAINS = {
    "c": (re.compile(r"\bint\s+main\s*\("), "int qwenpost_response_main("),
    "cpp": (re.compile(r"\bint\s+main\s*\("), "int qwenpost_response_main("),
    "go": (re.compile(r"\bfunc\s+main\s*\(\s*\)"), "func qwenpost_response_main()"),
    "rust": (re.compile(r"\bfn\s+main\s*\(\s*\)"), "fn qwenpost_response_main()"),
    "kotlin": (re.compile(r"\bfun\s+main\s*\("), "fun qwenpost_response_main("),
    "haskell": (re.compile(r"^main\b", re.MULTILINE), "qwenpost_response_main"),
}
_CALLS_CHECK = re.compile(r"^(?:check|test_check)\s*\(", re.MULTILINE)  # Python tests that run themselves
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


# MultiPL-E's C# tests call Debug.Assert, which does nothing under mono (no DEBUG listener that fails): a class that
# throws instead, appended after the tests (C# allows classes in any order)
_CSHARP_ASSERT = ("\nstatic class QwenpostDebug {\n    public static void Assert(bool condition) {\n"
                  "        if (!condition) throw new System.Exception(\"assertion failed\");\n    }\n}\n")


def parse_completion_reference(reference: dict) -> tuple[str | None, list[str]]:
    """(prompt, stop_tokens) of a MultiPL-E-style reference (completion mode), or (None, []) for a plain one."""
    prompt = reference.get("prompt")
    if prompt is None:
        return None, []
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"code reference 'prompt' must be the program's opening text, got {prompt!r:.80}")
    stops = reference.get("stop_tokens") or []
    if not isinstance(stops, list) or not all(isinstance(t, str) and t for t in stops):
        raise ValueError(f"code reference 'stop_tokens' must be a list of non-empty strings, got {stops!r:.120}")
    return prompt, stops


def truncate_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` up to the first occurrence of any stop token (MultiPL-E's truncation of a completion)."""
    cut = min((i for i in (text.find(t) for t in stops) if i >= 0), default=len(text))
    return text[:cut]


def completion_of(response: str, prompt: str, stops: Sequence[str]) -> tuple[str, str]:
    """The completion of `prompt` in `response`, cut at the first stop token, and how it was found: a base model's
    raw continuation ("raw"), or a chat answer's fenced block ("fenced": the block's text after the prompt's last
    line when the block repeats the prompt, e.g. the whole function, else the whole block)."""
    blocks = [code for _, code in fenced_blocks(response) if code.strip()]
    if not blocks:
        return truncate_at_stop(response, stops), "raw"
    code = blocks[-1]
    last = next((line.strip() for line in reversed(prompt.splitlines()) if line.strip()), "")
    lines = code.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if last and line.strip() == last:
            return truncate_at_stop("".join(lines[i + 1:]), stops), "fenced_after_prompt"
    return truncate_at_stop(code, stops), "fenced"


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
    """The code followed by the tests (and `check(entry_point)` for HumanEval-style tests that do not call it
    themselves); also whether the response's own `main` was renamed to make room for the tests' one.

    Per language, what a complete function needs to be one program with tests appended after it: Go's
    `package main` (added when the response has no package clause), PHP's opening `<?php` (added when missing; a
    closing `?>` is dropped, or the tests after it would be printed as text instead of run), Racket's `#lang racket`
    (added when missing)."""
    renamed = False
    main = _MAINS.get(language)
    if main is not None and main[0].search(tests) and main[0].search(code):
        code = main[0].sub(main[1], code)
        renamed = True
    if language == "go" and not re.search(r"^\s*package\s+\w+", code, re.MULTILINE):
        code = "package main\n\n" + code
    elif language == "php":
        code = re.sub(r"\?>\s*$", "", code.rstrip())
        if not code.lstrip().startswith("<?php"):
            code = "<?php\n" + code
    elif language == "racket" and not code.lstrip().startswith("#lang"):
        code = "#lang racket\n\n" + code
    program = code.rstrip("\n") + "\n\n" + tests.rstrip("\n") + "\n"
    pattern = _CHECK_DEFINED.get(language)
    if entry_point is not None and pattern is not None and pattern.search(tests) and not (
            language == "python" and _CALLS_CHECK.search(tests)):
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
    reason = unavailable(language)
    if reason is not None:  # the toolchain is not installed here: say which package, do not crash
        details.update(status="unavailable", failure=f"unavailable: {reason}")
        return _Prepared(details, result=VerifierResult(NAME, False, 0.0, False, details))
    prompt, stops = parse_completion_reference(reference)
    if prompt is not None:  # MultiPL-E: the program is prompt + completion (cut at a stop token) + newline + tests
        completion, extraction = completion_of(response, prompt, stops)
        details.update(mode="completion", extraction=extraction)
        # MultiPL-E's own join: a newline between the completion (cut before "\n}") and the tests
        if language == "csharp" and "Debug.Assert(" in tests:  # inert under mono without a trace listener
            tests = tests.replace("Debug.Assert(", "QwenpostDebug.Assert(") + _CSHARP_ASSERT
        program, format_ok = prompt + completion + "\n" + tests, extraction.startswith("fenced")
        if not program.endswith("\n"):
            program += "\n"
        limits = SandboxLimits(cpu_seconds=timeout, wall_seconds=timeout)
        return _Prepared(details, format_ok, job=SandboxJob(program, language, limits=limits))
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
    if passed and details.get("mode") == "completion" and details["language"] == "racket" and outcome.stderr.strip():
        # MultiPL-E's Racket tests use rackunit, whose failures print to stderr and exit 0; its evaluator
        # (eval_racket.py) counts any stderr as a failure, and so do we
        passed = False
        outcome = dataclasses.replace(outcome, status="failed")
    details.update(status=outcome.status, exit_code=outcome.exit_code, duration_s=outcome.duration_s,
                   stderr=outcome.stderr[-STDERR_TAIL_CHARS:], isolation=outcome.isolation)
    if not passed:
        first = outcome.status in ("static_error", "compile_error")  # the first diagnostic is the one to read
        line = failure_line(outcome.stderr, first=first)
        if not _ERROR_LINE.search(line) and outcome.stdout.strip():  # Ruby's test/unit, PHP's errors: on stdout
            line = failure_line(outcome.stdout, first=first) or line
        details["failure"] = f"{outcome.status}: {line[:300]}".rstrip(": ")
    return VerifierResult(NAME, passed, 1.0 if passed else 0.0, prepared.format_ok, details)


_ERROR_LINE = re.compile(r"(Error|Exception|error:|error\[E\d+\]|error TS\d+|Traceback|Assertion|panic:|"
                         r"assertion failed|Test failed|Failure:|^lua[\d.]*: )")


def failure_line(stderr: str, first: bool = False) -> str:
    """The line of stderr that says what went wrong: the last one naming an error (Python's `AssertionError`, node's
    `AssertionError [ERR_ASSERTION]: ...`, g++'s `error: ...`), else the last line. Node ends every crash with a
    `Node.js v20...` line and g++ with a count of errors, so the plain last line would name neither. With `first`
    (a static check's or a compiler's diagnostics: javac, tsc, rustc, ghc...), the first such line, which names
    the first error and where it is."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in (lines if first else reversed(lines)):
        if _ERROR_LINE.search(line):
            return line
    return (lines[0] if first else lines[-1]) if lines else ""


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
