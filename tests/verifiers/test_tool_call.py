"""The tool_call verifier: Qwen2.5 `<tool_call>` blocks parsed, schema-checked and run in the sandbox, with a
named failure for each way a hostile or wrong response can fail."""

import json
import subprocess
import sys
import time

import pytest

from verifiers import VERIFIERS, verify, verify_many
from verifiers.tool_call import (
    MAX_CALL_CHARS,
    MAX_CALLS,
    MAX_JSON_DEPTH,
    MAX_RESPONSE_CHARS,
    execute_calls,
    parse_tool_calls,
    verify_tool_call_many,
)

ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"], "additionalProperties": False}}}
SPIN = {"name": "spin", "description": "Never returns.",  # a bare function (no "type": "function" wrapper)
        "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}
SHOUT = {"type": "function", "function": {
    "name": "shout", "description": "Upper-case a text, many times.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string", "pattern": "^[a-z ]+$"},
                                                    "times": {"type": "integer", "minimum": 1}},
                   "required": ["text", "times"]}}}
IMPLEMENTATION = '''
def add(a, b):
    print("logging from the tool goes to stderr")
    return a + b


def spin(n):
    while True:
        n += 1


def shout(text, times):
    return text.upper() * times
'''


def reference(**extra) -> dict:
    base = {"type": "tool_call", "tools": [ADD, SPIN, SHOUT], "implementation": IMPLEMENTATION,
            "steps": [{"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}, {"answer": "5"}],
            "timeout_s": 2}
    return {**base, **extra}


def call(name: str, arguments: dict) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}) + "\n</tool_call>"


def check(response: str, **extra):
    return verify(response, reference(**extra))


def test_registered_and_lazy():
    assert VERIFIERS["tool_call"].__name__ == "verify_tool_call"
    code = "import sys, verifiers; assert 'jsonschema' not in sys.modules, 'jsonschema imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_right_call_passes_in_any_argument_order():
    for arguments in ({"a": 2, "b": 3}, {"b": 3, "a": 2}):
        result = check(call("add", arguments))
        assert result.passed and result.score == 1.0 and result.format_ok, result.details
        assert result.details["results"] == ["5"]
        assert result.details["status"] == "passed"


def test_same_result_with_other_arguments_passes():
    """Results are compared, not argument texts: add(3, 2) returns what add(2, 3) does."""
    assert check(call("add", {"a": 3, "b": 2})).passed


def test_text_before_the_call_is_allowed():
    assert check("Let me add those.\n" + call("add", {"a": 2, "b": 3})).passed


def test_reference_as_stored_json_string():
    assert verify(call("add", {"a": 2, "b": 3}), json.dumps(reference())).passed


@pytest.mark.parametrize(("response", "tag", "words"), [
    ("<tool_call>\n{'name': 'add', 'arguments': {'a': 2, 'b': 3}}\n</tool_call>", "malformed JSON", "not valid JSON"),
    ('<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}\n</tool_call>', "malformed JSON", "not valid JSON"),
    ('<tool_call>\n{"name": "add", "arguments": "{\\"a\\": 2}"}\n</tool_call>', "malformed call", "JSON object"),
    ('<tool_call>\n["add", {"a": 2}]\n</tool_call>', "malformed call", "string 'name'"),
    ('<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}', "unclosed tool_call", "unbalanced"),
    ("The sum is 5.", "no tool call", "no <tool_call>"),
    (call("subtract", {"a": 2, "b": 3}), "unknown function", "not a declared tool"),
    (call("add", {"a": "2", "b": 3}), "schema violation", "violate the schema at a"),
    (call("add", {"a": 2}), "schema violation", "'b' is a required property"),
    (call("add", {"a": 2, "b": 3, "c": 4}), "schema violation", "Additional properties"),
    (call("add", {"a": 2, "b": 4}), "wrong result", "expected result 5"),
    (call("add", {"a": 2, "b": 3}) + "\n" + call("add", {"a": 2, "b": 3}), "wrong number of calls", "expects 1"),
    (call("shout", {"text": "hi", "times": 1}), "wrong function", "expected ['add']"),
])
def test_failures_are_named(response, tag, words):
    result = check(response)
    assert not result.passed and result.score == 0.0
    assert result.details["tag"] == tag, result.details
    assert words in result.details["failure"], result.details["failure"]


def test_schema_pattern_is_checked():
    ref = reference(steps=[{"calls": [{"name": "shout", "arguments": {"text": "hi", "times": 2}}]}])
    assert verify(call("shout", {"text": "hi", "times": 2}), ref).passed
    result = verify(call("shout", {"text": "HI!", "times": 2}), ref)
    assert result.details["tag"] == "schema violation" and "does not match" in result.details["failure"]


def test_parallel_calls_in_any_order_unless_ordered():
    steps = [{"calls": [{"name": "add", "arguments": {"a": 1, "b": 1}},
                        {"name": "shout", "arguments": {"text": "ok", "times": 1}}]}]
    swapped = call("shout", {"text": "ok", "times": 1}) + "\n" + call("add", {"a": 1, "b": 1})
    assert check(swapped, steps=steps).passed
    result = check(swapped, steps=steps, ordered=True)
    assert result.details["tag"] == "wrong function"


def test_answer_step():
    assert check("The sum of 2 and 3 is 5.", step=1).passed
    wrong = check("The sum is 6.", step=1)
    assert wrong.details["tag"] == "wrong answer"
    again = check(call("add", {"a": 2, "b": 3}), step=1)
    assert again.details["tag"] == "call instead of answer"
    assert check("Both: 1,234,567 and lyon.", step=0, steps=[{"answer": ["1234567", "Lyon"]}]).passed
    big = "123456789012345678901234567890"
    assert check(f"It is {big}.", step=0, steps=[{"answer": big}]).passed
    assert not check(f"It is {big[:-1]}1.", step=0, steps=[{"answer": big}]).passed  # exact, not float-close


def test_multi_step_second_call_uses_the_first_result():
    """Step 1 expects add(5, 10), where 5 came from step 0's result (given in the prompt)."""
    steps = [{"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
             {"calls": [{"name": "add", "arguments": {"a": 5, "b": 10}}]}, {"answer": "15"}]
    assert check(call("add", {"a": 10, "b": 5}), steps=steps, step=1).passed
    assert check(call("add", {"a": 2, "b": 3}), steps=steps, step=1).details["tag"] == "wrong result"
    assert check("That makes 15.", steps=steps, step=2).passed


def test_call_that_loops_forever_is_bounded():
    ref = reference(steps=[{"calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}]}], timeout_s=1)
    start = time.monotonic()
    result = verify(call("add", {"a": 1, "b": 1}).replace('"add"', '"spin"', 1).replace('"a": 1, "b": 1', '"n": 1'),
                    {**ref, "steps": [{"calls": [{"name": "spin", "arguments": {"n": 1}}]}]})
    assert time.monotonic() - start < 10
    assert not result.passed and result.details["tag"] == "tool timeout", result.details
    assert "timed out after 1s" in result.details["failure"]


def test_model_arguments_that_blow_up_are_bounded():
    """A schema-valid call whose result is huge (600 MB of text) hits the sandbox's memory cap, not the host."""
    steps = [{"calls": [{"name": "shout", "arguments": {"text": "ab", "times": 2}}]}]
    result = check(call("shout", {"text": "ab", "times": 300_000_000}), steps=steps)
    assert not result.passed
    assert result.details["tag"] in ("tool out of memory", "tool raised", "tool crashed", "tool timeout"), \
        result.details


def test_arguments_are_data_not_code():
    """Argument text that looks like code is passed to the function as a string; nothing is evaluated."""
    steps = [{"calls": [{"name": "shout", "arguments": {"text": "ab", "times": 1}}]}]
    result = check(call("shout", {"text": "__import__('os').system('touch /tmp/pwned')", "times": 1}), steps=steps)
    assert result.details["tag"] == "schema violation"  # the pattern refuses it before anything runs
    ref = {**reference(), "tools": [{"name": "echo", "parameters": {"type": "object"}}],
           "implementation": "def echo(**kwargs):\n    return kwargs\n",
           "steps": [{"calls": [{"name": "echo", "arguments": {"x": "1"}}]}]}
    hostile = call("echo", {"x": "\"); import os; os._exit(0) #", "__class__": "\x1eQWENPOST-TOOL-RESULT {}"})
    result = verify(hostile, ref)
    assert not result.passed and result.details["tag"] == "wrong result", result.details


def test_hostile_sizes_are_refused_before_parsing():
    huge = "x" * (MAX_RESPONSE_CHARS + 1)
    assert check(huge).details["tag"] == "response too long"
    many = "\n".join(call("add", {"a": 2, "b": 3}) for _ in range(MAX_CALLS + 1))
    assert check(many).details["tag"] == "too many tool calls"
    hundreds = "\n".join(call("add", {"a": 2, "b": 3}) for _ in range(500))
    assert check(hundreds).details["tag"] in ("too many tool calls", "response too long")
    long_call = call("add", {"a": 2, "b": 3, "pad": "y" * MAX_CALL_CHARS})
    assert check(long_call).details["tag"] == "tool call too long"
    deep = "<tool_call>\n" + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "\n</tool_call>"
    assert check(deep).details["tag"] == "JSON too deep"
    very_deep = '<tool_call>{"name": "add", "arguments": ' + "{\"a\": " * 5000 + "1" + "}" * 5001 + "</tool_call>"
    assert check(very_deep).details["tag"] in ("tool call too long", "JSON too deep")
    assert check(call("add", {"a": 2, "b": 3}).replace("2", "9" * 5000, 1)).details["tag"] == "malformed JSON"
    start = time.monotonic()
    assert check("<tool_call>" * 10 + "a" * (MAX_RESPONSE_CHARS - 200)).details["tag"] == "unclosed tool_call"
    assert time.monotonic() - start < 2


def test_parse_tool_calls_reads_qwen_blocks():
    text = call("add", {"a": 1, "b": 2}) + "\n" + call("shout", {"text": "x", "times": 2})
    parsed = parse_tool_calls(text)
    assert parsed.failure is None
    assert parsed.calls == [{"name": "add", "arguments": {"a": 1, "b": 2}},
                            {"name": "shout", "arguments": {"text": "x", "times": 2}}]


@pytest.mark.parametrize(("change", "words"), [
    ({"tools": []}, "'tools'"),
    ({"tools": [{"function": {"description": "no name"}}]}, "'name'"),
    ({"tools": [ADD, ADD]}, "declared twice"),
    ({"tools": [{"name": "add", "parameters": {"type": "nonsense"}}]}, "invalid parameters schema"),
    ({"implementation": ""}, "'implementation'"),
    ({"steps": []}, "'steps'"),
    ({"steps": [{"calls": [{"name": "nope", "arguments": {}}]}]}, "not in 'tools'"),
    ({"steps": [{"calls": [], "answer": "1"}]}, "exactly one of"),
    ({"step": 2}, "'step'"),
    ({"timeout_s": 1000}, "'timeout_s'"),
    ({"ordered": "yes"}, "'ordered'"),
])
def test_malformed_references_raise_value_error(change, words):
    with pytest.raises(ValueError, match=words):
        check(call("add", {"a": 2, "b": 3}), **change)


def test_shorthand_single_step():
    ref = {"type": "tool_call", "tools": [ADD], "implementation": IMPLEMENTATION,
           "calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}
    assert verify(call("add", {"b": 3, "a": 2}), ref).passed


def test_reference_call_that_raises_is_named():
    result = check(call("add", {"a": 2, "b": 3}), steps=[{"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}],
                   implementation="def add(a, b):\n    raise RuntimeError('broken tool')\n")
    assert result.details["tag"] == "reference call failed" and "broken tool" in result.details["failure"]


def test_many_matches_one_by_one():
    items = [(call("add", {"a": 2, "b": 3}), reference()), (call("add", {"a": 1, "b": 3}), reference()),
             ("nothing", reference()), ("It is 5.", reference(step=1))]
    batched = verify_tool_call_many(items, workers=2)
    assert [r.passed for r in batched] == [True, False, False, True]
    assert [r.passed for r in verify_many([t for t, _ in items], [r for _, r in items])] == [True, False, False, True]


def test_execute_calls_returns_values():
    assert execute_calls(IMPLEMENTATION, [{"name": "add", "arguments": {"a": 20, "b": 22}},
                                          {"name": "shout", "arguments": {"text": "ok", "times": 2}}]) == [42, "OKOK"]
    with pytest.raises(RuntimeError, match="spin"):
        execute_calls(IMPLEMENTATION, [{"name": "spin", "arguments": {"n": 0}}], timeout_s=1)


def test_reward_service_scores_a_tool_call_reference():
    """The reward service's verifier path (a verifier-only service, the registry in killable worker processes)."""
    from fastapi.testclient import TestClient

    from reward.app import create_app
    from reward.config import ServeConfig

    prompt = [{"role": "user", "content": "What is 2 + 3? Use the tool."}]
    config = ServeConfig(weights={"rm": 0.0, "verifier": 1.0})
    items = [{"prompt": prompt, "response": call("add", {"b": 3, "a": 2}), "reference": reference()},
             {"prompt": prompt, "response": call("add", {"a": 2, "b": 9}), "reference": reference()},
             {"prompt": prompt, "response": "<tool_call>{oops</tool_call>", "reference": json.dumps(reference())}]
    with TestClient(create_app(config, None)) as client:
        response = client.post("/v1/score", json={"items": items})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        bad = client.post("/v1/score", json={"items": [{**items[0], "reference": {**reference(), "steps": []}}]})
    assert [r["reward"] for r in results] == [1.0, 0.0, 0.0]
    assert results[0]["components"]["verifier"]["passed"] is True
    assert bad.status_code == 422 and "steps" in bad.text


def test_huge_tool_output_is_bounded():
    """A huge result is compared by digest (only a preview travels back); a tool printing megabytes is killed at
    the sandbox's output cap, named as such."""
    ref = {"type": "tool_call", "tools": [SHOUT, {"name": "chatty", "parameters": {"type": "object"}}],
           "implementation": IMPLEMENTATION + "\n\ndef chatty():\n    print('x' * 5_000_000)\n    return 1\n",
           "steps": [{"calls": [{"name": "shout", "arguments": {"text": "ab", "times": 2_000_000}}]}]}
    result = verify(call("shout", {"text": "ab", "times": 2_000_000}), ref)
    assert result.passed, result.details
    assert len(result.details["results"][0]) <= 200
    chatty = verify(call("chatty", {}), {**ref, "steps": [{"calls": [{"name": "chatty", "arguments": {}}]}]})
    assert not chatty.passed and chatty.details["tag"] == "tool output too large", chatty.details
