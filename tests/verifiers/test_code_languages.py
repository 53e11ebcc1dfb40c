"""The code verifier in the sandbox's 20 languages: a typed task is built, translated (prompt and tests, MultiPL-E's
way), statically checked and run; each language's correct solution passes and its bugs fail, a static bug as
`static_error` with the diagnostic as the reason. A language whose toolchain is not installed is skipped, naming
the package (`sandbox.unavailable`)."""

import pytest

from data_builders.builders.code_tasks import FAMILIES
from data_builders.builders.multipl_e import (
    FENCES,
    LANGUAGES,
    make_task,
    multipl_e_row,
    supports,
    translate_prompt,
    translate_tests,
)
from sandbox import unavailable
from verifiers import verify
from verifiers.code import build_program, completion_of, verify_code, verify_code_many

SHOWN = ("sum_to_n", "count_vowels", "evens")  # the families with solutions in every language (evens: not C)
STATIC_BUGS = {"type_error", "syntax_error", "borrow_error", "unused_variable"}  # refused before running
# toolchains that take seconds per program (JVM and mono compilers, tsc, raco, Rscript start-up): the e2e tier
SLOW = {"java", "kotlin", "scala", "csharp", "typescript", "racket", "r"}


def _reference(family, language: str) -> dict:
    return {
        "type": "code",
        "language": language,
        "tests": translate_tests(family.task, language),
        "entry_point": family.entry,
        "timeout_s": 30,
    }


@pytest.mark.parametrize(
    "language", [pytest.param(lang, marks=pytest.mark.e2e) if lang in SLOW else lang for lang in LANGUAGES]
)
def test_task_built_translated_checked_and_verified(language):
    reason = unavailable(language)
    if reason is not None:
        pytest.skip(reason)  # names the missing executable and the package that installs it
    families = [f for f in FAMILIES if f.name in SHOWN and language in f.code and supports(f.task, language)]
    assert len(families) >= (2 if language == "c" else 3)
    items, kinds = [], []
    for family in families:
        prompt = translate_prompt(family.task, language)  # built: the MultiPL-E prompt the query would show
        assert family.description in prompt
        reference = _reference(family, language)
        for kind, code in family.code[language].items():
            items.append((f"Here you go.\n\n```{FENCES[language]}\n{code}```\n", reference))
            kinds.append((family.name, kind))
    results = verify_code_many(items, workers=8)
    for (name, kind), result in zip(kinds, results, strict=True):
        where = f"{language} {name} {kind}: {result.details['status']} {result.details['failure']}"
        assert result.passed == (kind == "correct"), where
        assert result.format_ok and result.details["extraction"] == "fenced", where
        if (
            kind in STATIC_BUGS
        ):  # the static check refused it (C++: its compile step, g++ is its checker), and says why
            status = "compile_error" if language == "cpp" else "static_error"
            assert result.details["status"] == status, where
            assert result.details["failure"].startswith(f"{status}: ") and len(result.details["failure"]) > 20
        elif kind != "correct":
            assert result.details["status"] in ("failed", "crashed"), where
    assert sum(kind == "correct" for _, kind in kinds) == len(families)


def test_missing_toolchain_is_a_failing_result_with_the_reason(monkeypatch):
    from verifiers import code

    monkeypatch.setattr(code, "unavailable", lambda language: f"{language}: 'ghc' not found; install apt:ghc")
    family = next(f for f in FAMILIES if f.name == "sum_to_n")
    result = verify_code(f"```haskell\n{family.code['haskell']['correct']}```", _reference(family, "haskell"))
    assert not result.passed and result.details["status"] == "unavailable"
    assert result.details["failure"] == "unavailable: haskell: 'ghc' not found; install apt:ghc"
    [many] = code.verify_code_many(
        [(f"```haskell\n{family.code['haskell']['correct']}```", _reference(family, "haskell"))]
    )
    assert many.details == result.details


def test_static_error_reason_is_the_first_diagnostic():
    family = next(f for f in FAMILIES if f.name == "sum_to_n")
    result = verify_code("```javascript\nfunction sum_to_n(n) { return n +; }\n```", _reference(family, "javascript"))
    assert not result.passed and result.details["status"] == "static_error"
    assert "SyntaxError" in result.details["failure"]


def test_program_assembly_per_language():
    program, renamed = build_program("func f() int { return 1 }\n", "go", "func main() {}\n", None)
    assert program.startswith("package main\n") and not renamed
    program, _ = build_program("<?php\nfunction f() { return 1; }\n?>\n", "php", "f();\n", None)
    assert "?>" not in program
    program, _ = build_program("function f() { return 1; }\n", "php", "f();\n", None)
    assert program.startswith("<?php\n")
    program, _ = build_program("(define (f) 1)\n", "racket", "(f)\n", None)
    assert program.startswith("#lang racket\n")
    program, renamed = build_program("fun f() = 1\nfun main() { println(f()) }\n", "kotlin", "fun main() {}\n", None)
    assert renamed and "fun qwenpost_response_main(" in program
    # Python tests that call check themselves are not run twice
    tests = translate_tests(FAMILIES[0].task, "python")
    program, _ = build_program("def sum_to_n(n):\n    return 0\n", "python", tests, "sum_to_n")
    assert program.count("check(sum_to_n)") == 1


@pytest.mark.parametrize(
    "language,completion",
    [
        ("python", "    return x + y\n"),
        ("rust", "    x + y\n"),
        ("lua", "  return x + y\nend"),
        ("bash", "    echo $(( $1 + $2 ))"),
    ],
)
def test_multipl_e_rows_of_our_translator_run_as_prompt_completion_tests(language, completion):
    """MultiPL-E's program shape: prompt + completion + newline + tests; the tests close the function."""
    reason = unavailable(language)
    if reason is not None:
        pytest.skip(reason)
    task = make_task("add", "x: int, y: int", "int", "Add two numbers x and y", [[[2, 3], 5], [[-1, 1], 0]])
    row = multipl_e_row(task, language)
    reference = {
        "type": "code",
        "language": language,
        "tests": row["tests"],
        "prompt": row["prompt"],
        "stop_tokens": row["stop_tokens"],
    }
    assert verify(completion, reference).passed
    wrong = verify(completion.replace("+ y", "- y").replace("+ $2", "- $2"), reference)
    assert not wrong.passed and wrong.details["mode"] == "completion"


def test_completion_of_chat_answers():
    prompt = "long add(long x, long y) {\n"
    assert completion_of("    return x + y;\n}\nint main", prompt, ["\n}"]) == ("    return x + y;", "raw")
    answer = "Sure:\n```cpp\nlong add(long x, long y) {\n    return x + y;\n}\n```"
    assert completion_of(answer, prompt, ["\n}"]) == ("    return x + y;", "fenced_after_prompt")
    assert completion_of("```cpp\n    return x + y;\n}\n```", prompt, ["\n}"]) == ("    return x + y;", "fenced")


def test_multipl_e_racket_and_csharp_rows_fail_wrong_completions():
    """MultiPL-E's Racket tests (rackunit: failures exit 0) and C# tests (Debug.Assert: inert under mono) would
    pass anything that runs; a wrong completion fails here, as MultiPL-E's evaluator (any stderr) intends."""
    for language in ("racket", "csharp"):
        if (reason := unavailable(language)) is not None:
            pytest.skip(reason)
    racket = {
        "type": "code",
        "language": "racket",
        "stop_tokens": ["\n(define ", "\n#|", "\n;", "\n("],
        "prompt": "#lang racket\n\n;; Add two numbers x and y\n(define (add x y)\n",
        "tests": "(require rackunit)\n\n(define (test-humaneval) \n\n  (let (( candidate add))\n"
        "    (check-equal? (candidate 0 1) 1)\n    (check-equal? (candidate 2 3) 5)\n))\n\n"
        "(test-humaneval)",
    }
    csharp = {
        "type": "code",
        "language": "csharp",
        "stop_tokens": ["\n    }\n"],
        "prompt": "using System;\nusing System.Diagnostics;\nclass Problem {\n"
        "    public static long Add(long x, long y) {\n",
        "tests": "    }\n    public static void Main(string[] args) {\n    Debug.Assert(Add((0L), (1L)) == (1L));\n"
        "    Debug.Assert(Add((2L), (3L)) == (5L));\n    }\n\n}\n",
    }
    assert verify("  (+ x y))", racket).passed and not verify("  (- x y))", racket).passed
    assert verify("        return x + y;", csharp).passed and not verify("        return x - y;", csharp).passed
