"""The code verifier: extraction, MBPP and HumanEval style tests, each language, and the failures that must not
pass (wrong code, no code, an infinite loop, a syntax error)."""

import json

import pytest

from verifiers.code import extract_code, failure_line, verify_code, verify_code_many

MBPP = {"type": "code", "language": "python", "entry_point": None,
        "tests": "assert add(1, 2) == 3\nassert add(0, 0) == 0\nassert add(-4, 1) == -3\n"}
HUMANEVAL = {"type": "code", "language": "python", "entry_point": "square",
             "tests": "def check(candidate):\n    assert candidate(3) == 9\n    assert candidate(-2) == 4\n"}
JS = {"type": "code", "language": "javascript", "entry_point": "add",
      "tests": ("const assert = require('assert');\n"
                "assert.strictEqual(add(1, 2), 3);\nassert.strictEqual(add(-1, 1), 0);\n")}
CPP = {"type": "code", "language": "cpp", "entry_point": "add",
       "tests": ("#include <cassert>\n"
                 "int main() {\n    assert(add(1, 2) == 3);\n    assert(add(-1, 1) == 0);\n    return 0;\n}\n")}


def fenced(code: str, tag: str = "python") -> str:
    return f"Here is my solution.\n\n```{tag}\n{code}\n```\n\nIt adds the numbers."


def test_mbpp_style_correct_passes_and_details_are_complete():
    result = verify_code(fenced("def add(a, b):\n    return a + b"), MBPP)
    assert (result.verifier, result.passed, result.score, result.format_ok) == ("code", True, 1.0, True)
    details = result.details
    assert (details["language"], details["extraction"], details["status"], details["exit_code"]) == (
        "python", "fenced", "passed", 0)
    assert details["duration_s"] > 0 and details["isolation"]["network"] in ("namespace", "socket-blocked")
    json.dumps(details)  # stored in records as JSON


def test_mbpp_style_wrong_fails_with_the_assertion_in_stderr():
    result = verify_code(fenced("def add(a, b):\n    return a - b"), MBPP)
    assert not result.passed and result.score == 0.0 and result.format_ok
    assert result.details["status"] == "failed" and "AssertionError" in result.details["stderr"]
    assert len(result.details["stderr"]) <= 2000


def test_humaneval_style_appends_check_of_entry_point():
    assert verify_code(fenced("def square(x):\n    return x * x"), HUMANEVAL).passed
    wrong = verify_code(fenced("def square(x):\n    return 2 * x"), HUMANEVAL)
    assert not wrong.passed and wrong.details["status"] == "failed"


def test_humaneval_check_is_really_called():
    """A check that always fails must fail the run: proves `check(entry_point)` is appended and executed."""
    reference = dict(HUMANEVAL, tests="def check(candidate):\n    assert False, 'check ran'\n")
    result = verify_code(fenced("def square(x):\n    return x * x"), reference)
    assert not result.passed and "check ran" in result.details["stderr"]


@pytest.mark.parametrize("reference, tag, good, bad", [
    (JS, "javascript", "function add(a, b) { return a + b; }", "function add(a, b) { return a * b; }"),
    (CPP, "cpp", "int add(int a, int b) { return a + b; }", "int add(int a, int b) { return a - b; }"),
])
def test_javascript_and_cpp(reference, tag, good, bad):
    assert verify_code(fenced(good, tag), reference).passed
    result = verify_code(fenced(bad, tag), reference)
    assert not result.passed and result.details["status"] in ("failed", "crashed")


@pytest.mark.e2e  # runs model code in the sandbox until its limit
def test_cpp_response_with_its_own_main_still_runs_the_tests():
    code = "#include <iostream>\nint add(int a, int b) { return a + b; }\nint main() { std::cout << add(2, 2); }"
    result = verify_code(fenced(code, "cpp"), CPP)
    assert result.passed and result.details["renamed_main"]


def test_cpp_syntax_error_is_compile_error():
    result = verify_code(fenced("int add(int a, int b) { return a + }", "cpp"), CPP)
    assert not result.passed and result.details["status"] == "compile_error"


def test_python_syntax_error_fails():
    result = verify_code(fenced("def add(a, b)\n    return a + b"), MBPP)
    assert not result.passed and result.format_ok
    # the sandbox's static check (Python's compile before any of it runs) refuses it: static_error, diagnostic named
    assert result.details["status"] == "static_error" and "SyntaxError" in result.details["stderr"]
    assert result.details["failure"].startswith("static_error: ") and "SyntaxError" in result.details["failure"]


def test_response_with_no_code_fails_without_running():
    result = verify_code("I think you should add the two numbers together.", MBPP)
    assert not result.passed and not result.format_ok
    assert result.details["extraction"] == "none" and result.details["status"] is None


def test_unfenced_python_that_parses_is_used_but_format_is_not_ok():
    result = verify_code("def add(a, b):\n    return a + b\n", MBPP)
    assert result.passed and not result.format_ok and result.details["extraction"] == "whole_response"


@pytest.mark.e2e  # runs model code in the sandbox until its limit
def test_infinite_loop_times_out_and_does_not_pass():
    reference = dict(MBPP, timeout_s=1)
    result = verify_code(fenced("def add(a, b):\n    while True:\n        pass"), reference)
    assert not result.passed and result.details["status"] == "timeout"


def test_extraction_prefers_the_last_block_of_the_language():
    response = ("```python\ndef add(a, b):\n    return 0\n```\n```js\nfunction add(a, b) { return 0; }\n```\n"
                "```python\ndef add(a, b):\n    return a + b\n```\n```text\nnot code\n```")
    code, how = extract_code(response, "python")
    assert how == "fenced" and "return a + b" in code
    assert extract_code("```\nprint(1)\n```", "python") == ("print(1)\n", "fenced_other")
    assert extract_code("```python\ndef f():\n    return 1", "python") == ("def f():\n    return 1\n", "fenced")


def test_malformed_references_raise_naming_the_key():
    with pytest.raises(ValueError, match="'tests'"):
        verify_code("x", {"type": "code", "language": "python"})
    with pytest.raises(ValueError, match="'language'"):
        verify_code("x", {"type": "code", "language": "cobol", "tests": "assert 1"})
    with pytest.raises(ValueError, match="'entry_point'"):
        verify_code("x", dict(MBPP, entry_point="not an identifier"))
    with pytest.raises(ValueError, match="'timeout_s'"):
        verify_code("x", dict(MBPP, timeout_s=-1))


def test_verify_code_many_matches_verify_code():
    items = [(fenced("def add(a, b):\n    return a + b"), MBPP), ("no code here", MBPP),
             (fenced("def add(a, b):\n    return a * b"), MBPP),
             (fenced("function add(a, b) { return a + b; }", "js"), JS)]
    assert [r.passed for r in verify_code_many(items, workers=2)] == [True, False, False, True]


@pytest.mark.parametrize("stderr, expected", [
    ("Traceback (most recent call last):\n  File \"main.py\", line 3\nAssertionError: expected 3\n",
     "AssertionError: expected 3"),
    ("node:assert:126\n  throw new AssertionError(obj);\n  ^\n\nAssertionError [ERR_ASSERTION]: 2 == 3\n"
     "    at Object.<anonymous> (/w/main.js:4:8)\n\nNode.js v20.20.2\n", "AssertionError [ERR_ASSERTION]: 2 == 3"),
    ("main.cpp: In function 'int main()':\nmain.cpp:3:5: error: 'x' was not declared in this scope\n"
     "1 error generated.\n", "main.cpp:3:5: error: 'x' was not declared in this scope"),
    ("killed\n", "killed"),
    ("", ""),
])
def test_failure_line_names_the_error_not_the_runtime_banner(stderr, expected):
    assert failure_line(stderr) == expected


def test_javascript_failure_reason_names_the_assertion():
    reference = {"type": "code", "language": "javascript",
                 "tests": "const assert = require('assert');\nassert.strictEqual(add(1, 2), 3);"}
    result = verify_code("```javascript\nfunction add(a, b) { return a - b; }\n```", reference)
    assert not result.passed
    assert "AssertionError" in result.details["failure"] and "Node.js" not in result.details["failure"]
