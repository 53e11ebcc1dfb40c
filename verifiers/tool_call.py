"""Tool-call verifier: Qwen2.5's `<tool_call>` format, checked by schema and by running the calls in the sandbox.

Qwen2.5-Instruct calls tools in Hermes style (the chat template in qwen25/chat_template.jinja): an assistant turn
holds one `<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>` block per call, and the results come
back as `<tool_response>` blocks in the next (tool) turn. The response verified here is ONE assistant turn; a
multi-step task is a list of steps, and the turns before the one being verified (earlier calls and their results)
are in the prompt.

Reference:

    {"type": "tool_call",
     "tools": [{"type": "function", "function": {"name": "add", "description": "...",
                                                 "parameters": {JSON Schema}}}, ...],
     "implementation": "def add(a, b):\\n    return a + b\\n",    # Python source defining every tool
     "steps": [{"calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},   # step 0: these calls
               {"answer": "5"}],                  # step 1: the final answer (a list: every item stated)
     "step": 0,              # which step this response is (default 0)
     "ordered": false,       # calls of a step must come in the expected order (default: any order)
     "timeout_s": 5}         # sandbox limit for running one step's calls (default 5, at most 30)

`tools` entries may also be bare functions (`{"name", "description", "parameters"}`). `"calls": [...]` or
`"answer": ...` at the top level is shorthand for a single step.

A `calls` step passes iff, in order of checking (the first failure is `details["failure"]`, with a short
`details["tag"]` the data builders count):
1. the response is at most MAX_RESPONSE_CHARS, has at most MAX_CALLS `<tool_call>` blocks, every block is closed
   and at most MAX_CALL_CHARS, and its JSON nests at most MAX_JSON_DEPTH deep;
2. every block parses as a JSON object `{"name": str, "arguments": object}`;
3. every name is a declared tool, and its arguments validate against that tool's `parameters` schema
   (`jsonschema`, with `pattern` matched by RE2 as in verifiers.structured);
4. there are as many calls as the step expects;
5. the model's calls and the expected calls, run in ONE sandbox process (`sandbox.run`, never on the host)
   against the reference implementation, give the same results: each expected call is matched by a call of the
   same name whose result is equal (as canonical JSON). So `{"a": 2, "b": 3}` and `{"b": 3, "a": 2}` both pass,
   and so does any argument spelling the implementation maps to the same result. A call that raises, loops past
   `timeout_s`, exhausts memory or prints past the output cap fails with that named.
An `answer` step passes iff the response makes no tool call and states the expected answer (each one, for a list):
numbers compared as numbers (some number in the response equal to it, thousands separators allowed; integers of
any size exactly), text as a case-insensitive whole-phrase match. Like the math verifier's final-answer check this
is lenient about phrasing; a response listing many numbers can hit the expected one.

The arguments reach the sandbox as JSON on stdin, never as code, and tool output printed by the implementation is
sent to stderr, so neither can forge the harness's result lines. Tools must be pure functions of their arguments
(the expected and the model's calls share a process). `jsonschema` loads on the first check (verifiers/__init__).
Nothing here raises for a bad response; a malformed reference raises ValueError naming the key.
"""

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sandbox import SandboxJob, SandboxLimits, run, run_many
from verifiers.final_answer import normalise
from verifiers.result import VerifierResult
from verifiers.structured import _linear_time

NAME = "tool_call"
MAX_RESPONSE_CHARS = 65_536  # an assistant turn longer than this is refused before any parsing
MAX_CALLS = 16  # tool_call blocks in one turn
MAX_CALL_CHARS = 8_192  # one block's JSON
MAX_JSON_DEPTH = 32  # nesting of objects/arrays in one block
MAX_TOOLS = 64
MAX_IMPLEMENTATION_CHARS = 200_000
DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 30.0
SANDBOX_MEMORY_MB = 512
PREVIEW_CHARS = 200  # of each result kept in details
OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)
_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")
RESULT_MARK = "\x1eQWENPOST-TOOL-RESULT "

# The harness appended to the implementation. Calls arrive on stdin as JSON ([name, arguments] pairs); each result
# is printed on its own marked line as soon as it is known, so a hang is pinned on the call that did not finish.
HARNESS = '''

def __qwenpost_tool_harness():
    import contextlib as _contextlib
    import hashlib as _hashlib
    import json as _json
    import sys as _sys
    _out = _sys.stdout
    _calls = _json.loads(_sys.stdin.read())
    _namespace = globals()
    for _name, _arguments in _calls:
        _function = _namespace.get(_name)
        try:
            if not callable(_function) or _name.startswith("_"):
                raise NameError(f"the implementation defines no function {_name!r}")
            with _contextlib.redirect_stdout(_sys.stderr):
                _value = _function(**_arguments)
            _text = _json.dumps(_value, sort_keys=True, ensure_ascii=False, default=str)
            _line = {"ok": True, "digest": _hashlib.sha256(_text.encode("utf-8", "replace")).hexdigest(),
                     "preview": _text[:PREVIEW_CHARS], "chars": len(_text)}
        except BaseException as _error:  # a tool's failure is its call's result, not the harness's
            _line = {"ok": False, "error": (type(_error).__name__ + ": " + str(_error))[:300]}
        _out.write(RESULT_MARK + _json.dumps(_line) + "\\n")
        _out.flush()


__qwenpost_tool_harness()
'''.replace("PREVIEW_CHARS", str(PREVIEW_CHARS)).replace("RESULT_MARK", repr(RESULT_MARK))


# ----------------------------------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class ToolReference:
    tools: dict  # name -> parameters schema
    implementation: str
    steps: tuple  # each {"calls": [...]} or {"answer": str}
    step: int
    ordered: bool
    timeout_s: float


def function_of(tool: object, where: str = "tools") -> dict:
    """The function part of a tool: `{"type": "function", "function": {...}}` or a bare `{"name", ...}`."""
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        tool = tool["function"]
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
        raise ValueError(f"tool_call reference {where}: each tool needs a function with a 'name', got {tool!r:.120}")
    return tool


def _check_calls(calls: object, where: str, tools: dict) -> list[dict]:
    if not isinstance(calls, list) or not calls:
        raise ValueError(f"tool_call reference {where}: 'calls' must be a non-empty list, got {calls!r:.120}")
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) \
                or not isinstance(call.get("arguments"), dict):
            raise ValueError(f"tool_call reference {where}.calls[{i}] must be {{'name': str, 'arguments': object}}, "  # noqa: TRY004 (the registry's contract)
                             f"got {call!r:.120}")
        if call["name"] not in tools:
            raise ValueError(f"tool_call reference {where}.calls[{i}] names {call['name']!r}, which is not in "
                             f"'tools' {sorted(tools)}")
    return calls


@functools.lru_cache(maxsize=4096)
def _schema_problem(schema_json: str) -> str | None:
    """Why a parameters schema (as canonical JSON) is not a valid JSON Schema, or None. Cached: checking a schema
    against its metaschema costs ~15 ms, and a build verifies the same few tools thousands of times."""
    import jsonschema

    schema = json.loads(schema_json)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


def parse_tool_reference(reference: dict) -> ToolReference:
    """The checked reference; ValueError naming the key that is wrong."""
    raw_tools = reference.get("tools")
    if not isinstance(raw_tools, list) or not raw_tools or len(raw_tools) > MAX_TOOLS:
        raise ValueError(f"tool_call reference needs 'tools': a list of 1 to {MAX_TOOLS} function definitions")
    tools: dict[str, dict] = {}
    for i, tool in enumerate(raw_tools):
        function = function_of(tool, f"tools[{i}]")
        schema = function.get("parameters", {"type": "object"})
        if not isinstance(schema, dict):
            raise ValueError(f"tool_call reference tools[{i}] ({function['name']}): 'parameters' must be a JSON "  # noqa: TRY004 (the registry's contract)
                             "Schema object")
        problem = _schema_problem(json.dumps(schema, sort_keys=True))
        if problem is not None:
            raise ValueError(f"tool_call reference tools[{i}] ({function['name']}): invalid parameters schema: "
                             f"{problem}")
        if function["name"] in tools:
            raise ValueError(f"tool_call reference: tool {function['name']!r} is declared twice")
        tools[function["name"]] = schema
    implementation = reference.get("implementation")
    if not isinstance(implementation, str) or not implementation.strip() \
            or len(implementation) > MAX_IMPLEMENTATION_CHARS:
        raise ValueError("tool_call reference needs 'implementation': Python source defining every tool "
                         f"(at most {MAX_IMPLEMENTATION_CHARS} characters)")
    if "steps" in reference:
        steps = reference["steps"]
    elif "calls" in reference or "answer" in reference:
        steps = [{key: reference[key] for key in ("calls", "answer") if key in reference}]
    else:
        raise ValueError("tool_call reference needs 'steps' (or 'calls' / 'answer' for a single step)")
    if not isinstance(steps, list) or not steps:
        raise ValueError(f"tool_call reference 'steps' must be a non-empty list, got {steps!r:.120}")
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or len({"calls", "answer"} & set(step)) != 1:
            raise ValueError(f"tool_call reference steps[{i}] must have exactly one of 'calls' and 'answer'")
        if "calls" in step:
            _check_calls(step["calls"], f"steps[{i}]", tools)
        else:
            answers = step["answer"] if isinstance(step["answer"], list) else [step["answer"]]
            if not answers or any(isinstance(a, bool) or not isinstance(a, str | int | float) or not str(a).strip()
                                  for a in answers):
                raise ValueError(f"tool_call reference steps[{i}].answer must be a non-empty string or number, or a "
                                 "list of them")
    index = reference.get("step", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(steps):
        raise ValueError(f"tool_call reference 'step' must be an index into 'steps' (0..{len(steps) - 1}), "
                         f"got {index!r}")
    ordered = reference.get("ordered", False)
    if not isinstance(ordered, bool):
        raise ValueError(f"tool_call reference 'ordered' must be true or false, got {ordered!r}")  # noqa: TRY004 (the registry's contract)
    timeout = reference.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise ValueError(f"tool_call reference 'timeout_s' must be a number in (0, {MAX_TIMEOUT_S}], got {timeout!r}")
    return ToolReference(tools, implementation, tuple(steps), index, ordered, float(timeout))


# ------------------------------------------------------------------------------------------------------- parsing


def json_depth(text: str) -> int:
    """How deep `[` / `{` nest in `text`, outside JSON strings; linear, so it runs before `json.loads` does."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


@dataclass
class ParsedCalls:
    calls: list[dict] = field(default_factory=list)  # {"name", "arguments"} in the order written
    failure: str | None = None
    tag: str | None = None


def parse_tool_calls(response: str) -> ParsedCalls:
    """Every `<tool_call>` block of one assistant turn as {"name", "arguments"}, or the first reason it cannot be
    read (format only: names and schemas are checked against the reference later)."""
    if len(response) > MAX_RESPONSE_CHARS:
        return ParsedCalls(failure=f"response is {len(response)} characters; at most {MAX_RESPONSE_CHARS} are read",
                           tag="response too long")
    opens, closes = response.count(OPEN), response.count(CLOSE)
    if opens > MAX_CALLS:
        return ParsedCalls(failure=f"{opens} <tool_call> blocks; at most {MAX_CALLS} are allowed in one turn",
                           tag="too many tool calls")
    if opens != closes:
        return ParsedCalls(failure=f"unbalanced tool call tags: {opens} <tool_call> and {closes} </tool_call>",
                           tag="unclosed tool_call")
    parsed = ParsedCalls()
    for i, match in enumerate(_BLOCK.finditer(response)):
        body = match.group(1).strip()
        if OPEN in body:
            return ParsedCalls(failure=f"tool call {i}: nested <tool_call> tag", tag="unclosed tool_call")
        if len(body) > MAX_CALL_CHARS:
            return ParsedCalls(failure=f"tool call {i} is {len(body)} characters; at most {MAX_CALL_CHARS}",
                               tag="tool call too long")
        if json_depth(body) > MAX_JSON_DEPTH:
            return ParsedCalls(failure=f"tool call {i}: JSON nested deeper than {MAX_JSON_DEPTH} levels",
                               tag="JSON too deep")
        try:
            value = json.loads(body)
        except (ValueError, RecursionError) as exc:  # ValueError: also an integer past Python's 4,300 digits
            where = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:80] or type(exc).__name__
            return ParsedCalls(failure=f"tool call {i} is not valid JSON ({detail}{where}): {body[:80]!r}",
                               tag="malformed JSON")
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return ParsedCalls(failure=f"tool call {i} must be a JSON object with a string 'name', got "
                                       f"{body[:80]!r}", tag="malformed call")
        arguments = value.get("arguments", None)
        if not isinstance(arguments, dict):
            return ParsedCalls(failure=f"tool call {i} ({value['name'][:60]}): 'arguments' must be a JSON object, "
                                       f"got {type(arguments).__name__}", tag="malformed call")
        parsed.calls.append({"name": value["name"], "arguments": arguments})
    return parsed


# ---------------------------------------------------------------------------------------------------- verifying


def _result(passed: bool, format_ok: bool, details: dict) -> VerifierResult:
    return VerifierResult(NAME, passed, 1.0 if passed else 0.0, format_ok, details)


def _fail(details: dict, failure: str, tag: str, format_ok: bool) -> VerifierResult:
    return _result(False, format_ok, {**details, "failure": failure[:400], "tag": tag})


def _schema_errors(calls: list[dict], tools: dict) -> tuple[str, str] | None:
    import jsonschema

    for i, call in enumerate(calls):
        if call["name"] not in tools:
            return (f"tool call {i} names {call['name'][:60]!r}, which is not a declared tool "
                    f"{sorted(tools)}"), "unknown function"
        schema = tools[call["name"]]
        base = jsonschema.validators.validator_for(schema)
        try:
            errors = sorted(_linear_time(base)(schema).iter_errors(call["arguments"]),
                            key=lambda e: list(e.absolute_path))
        except RecursionError:
            return f"tool call {i} ({call['name']}): arguments too deep to validate", "schema violation"
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(arguments)"
            return (f"tool call {i} ({call['name']}): arguments violate the schema at {where}: "
                    f"{errors[0].message}"), "schema violation"
    return None


schema_errors = _schema_errors  # public: GRPO's tool episodes (online_rl/tools.py) check calls the same way


def _answer_found(response: str, expected: str) -> bool:
    """Numbers: some number in `response` equals `expected` exactly (as decimals: 12.50 == 12.5; big integers
    compared exactly), non-integers within a relative 1e-9; text: a case-insensitive whole-phrase match."""
    target = normalise(expected)
    if _NUMBER.fullmatch(target):
        want = Decimal(target.replace(",", ""))
        for match in _NUMBER.finditer(response[:MAX_RESPONSE_CHARS]):
            got = Decimal(match.group(0).replace(",", ""))
            if got == want or (want != want.to_integral_value()
                               and abs(got - want) <= Decimal("1e-9") * max(Decimal(1), abs(want))):
                return True
        return False
    phrase = re.escape(normalise(expected))
    text = re.sub(r"\s+", " ", response.lower())
    return re.search(rf"(?<!\w){phrase}(?!\w)", text) is not None


@dataclass
class _Prepared:
    """A response judged without running (`result`) or waiting for its sandbox run (`job`)."""
    details: dict
    result: VerifierResult | None = None
    job: SandboxJob | None = None
    model_calls: list[dict] = field(default_factory=list)
    expected_calls: list[dict] = field(default_factory=list)
    ordered: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S


def _prepare(response: str, reference: dict) -> _Prepared:
    ref = parse_tool_reference(reference)
    step = ref.steps[ref.step]
    details: dict = {"step": ref.step, "steps": len(ref.steps), "expects": "calls" if "calls" in step else "answer"}
    if not isinstance(response, str):
        return _Prepared(details, _fail(details, f"response is {type(response).__name__}, not text",
                                        "not text", False))
    parsed = parse_tool_calls(response)
    if parsed.failure is not None:
        return _Prepared(details, _fail(details, parsed.failure, parsed.tag, False))
    details["calls"] = [call["name"][:60] for call in parsed.calls]
    if "answer" in step:
        if parsed.calls:
            return _Prepared(details, _fail(details, f"expected the final answer, got {len(parsed.calls)} tool "
                                                     "call(s)", "call instead of answer", True))
        expected = [str(a) for a in (step["answer"] if isinstance(step["answer"], list) else [step["answer"]])]
        details["expected_answer"] = [a[:PREVIEW_CHARS] for a in expected]
        if not response.strip():
            return _Prepared(details, _fail(details, "empty response", "empty response", False))
        for answer in expected:
            if not _answer_found(response, answer):
                return _Prepared(details, _fail(details, f"the final answer does not state the expected result "
                                                         f"{answer[:80]!r}", "wrong answer", True))
        return _Prepared(details, _result(True, True, details))
    expected_calls = step["calls"]
    if not parsed.calls:
        return _Prepared(details, _fail(details, "no <tool_call> block; this step expects "
                                                 f"{len(expected_calls)} call(s)", "no tool call", False))
    schema = _schema_errors(parsed.calls, ref.tools)
    if schema is not None:
        return _Prepared(details, _fail(details, schema[0], schema[1], True))
    if len(parsed.calls) != len(expected_calls):
        return _Prepared(details, _fail(details, f"{len(parsed.calls)} tool call(s); this step expects "
                                                 f"{len(expected_calls)}", "wrong number of calls", True))
    if ref.ordered:
        for i, (got, want) in enumerate(zip(parsed.calls, expected_calls, strict=True)):
            if got["name"] != want["name"]:
                return _Prepared(details, _fail(details, f"tool call {i} is {got['name']!r}; expected "
                                                         f"{want['name']!r} at that place", "wrong function", True))
    elif sorted(c["name"] for c in parsed.calls) != sorted(c["name"] for c in expected_calls):
        return _Prepared(details, _fail(details, f"called {sorted(c['name'] for c in parsed.calls)}; expected "
                                                 f"{sorted(c['name'] for c in expected_calls)}", "wrong function",
                                        True))
    pairs = [[c["name"], c["arguments"]] for c in expected_calls + parsed.calls]
    limits = SandboxLimits(cpu_seconds=ref.timeout_s, wall_seconds=ref.timeout_s + 1.0, memory_mb=SANDBOX_MEMORY_MB)
    job = SandboxJob(ref.implementation.rstrip("\n") + "\n" + HARNESS, "python", stdin=json.dumps(pairs),
                     limits=limits)
    return _Prepared(details, job=job, model_calls=parsed.calls, expected_calls=expected_calls,
                     ordered=ref.ordered, timeout_s=ref.timeout_s)


def _lines(stdout: str) -> list[dict]:
    out = []
    for line in stdout.split("\n"):
        if line.startswith(RESULT_MARK):
            try:
                out.append(json.loads(line[len(RESULT_MARK):]))
            except json.JSONDecodeError:
                break
    return out


def _finish(prepared: _Prepared, outcome) -> VerifierResult:
    details = dict(prepared.details)
    details.update(status=outcome.status, isolation=outcome.isolation)
    n_expected = len(prepared.expected_calls)
    results = _lines(outcome.stdout)
    if len(results) < n_expected + len(prepared.model_calls):
        done = len(results)
        if done < n_expected:
            who = f"expected call {done} ({prepared.expected_calls[done]['name']})"
        else:
            who = f"tool call {done - n_expected} ({prepared.model_calls[done - n_expected]['name']})"
        if outcome.status == "timeout":
            why, tag = f"timed out after {prepared.timeout_s:g}s", "tool timeout"
        elif outcome.status == "memory":
            why, tag = "ran out of memory", "tool out of memory"
        elif outcome.truncated:
            why, tag = "printed past the sandbox's output cap", "tool output too large"
        else:
            tail = outcome.stderr.strip().splitlines()[-1:] or [outcome.status]
            why, tag = f"did not finish ({outcome.status}: {tail[0][:160]})", "tool crashed"
        return _fail(details, f"running {who} {why}", tag, True)
    expected, given = results[:n_expected], results[n_expected:]
    details["results"] = [r.get("preview", r.get("error", ""))[:PREVIEW_CHARS] for r in given]
    for i, result in enumerate(expected):
        if not result["ok"]:  # the reference's own call fails: the reference is broken, not the response
            return _fail(details, f"the reference's expected call {i} ({prepared.expected_calls[i]['name']}) "
                                  f"raised {result['error']}", "reference call failed", True)
    for i, result in enumerate(given):
        if not result["ok"]:
            return _fail(details, f"tool call {i} ({prepared.model_calls[i]['name']}) raised {result['error']}",
                         "tool raised", True)
    unmatched = list(range(len(given)))
    for i, want in enumerate(prepared.expected_calls):
        candidates = [unmatched[0]] if prepared.ordered else unmatched
        hit = next((j for j in candidates if prepared.model_calls[j]["name"] == want["name"]
                    and given[j]["digest"] == expected[i]["digest"]), None)
        if hit is None:
            return _fail(details, f"no call of {want['name']} returns the expected result "
                                  f"{expected[i]['preview'][:80]} (arguments {json.dumps(want['arguments'])[:120]})",
                         "wrong result", True)
        unmatched.remove(hit)
    return _result(True, True, details)


def verify_tool_call(response: str, reference: dict) -> VerifierResult:
    """Check one assistant turn against step `reference["step"]` (module docstring); ValueError only for a malformed
    reference."""
    prepared = _prepare(response, reference)
    if prepared.result is not None:
        return prepared.result
    job = prepared.job
    return _finish(prepared, run(job.source, job.language, stdin=job.stdin, limits=job.limits))


def verify_tool_call_many(items: Sequence[tuple[str, dict]], workers: int | None = None) -> list[VerifierResult]:
    """`verify_tool_call` over many (response, reference) pairs on the sandbox's worker pool; same verdicts."""
    prepared = [_prepare(response, reference) for response, reference in items]
    outcomes = iter(run_many([p.job for p in prepared if p.result is None], workers=workers))
    return [p.result if p.result is not None else _finish(p, next(outcomes)) for p in prepared]


def execute_calls(implementation: str, calls: Sequence[dict], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[object]:
    """The values of `calls` ({"name", "arguments"}) under `implementation`, run in the sandbox (the data builders
    use it to make tool messages). RuntimeError naming the call if one does not return a JSON value."""
    harness = HARNESS.replace(f'"preview": _text[:{PREVIEW_CHARS}]', '"preview": _text')
    limits = SandboxLimits(cpu_seconds=timeout_s, wall_seconds=timeout_s + 1.0, memory_mb=SANDBOX_MEMORY_MB)
    outcome = run(implementation.rstrip("\n") + "\n" + harness, "python",
                  stdin=json.dumps([[c["name"], c["arguments"]] for c in calls]), limits=limits)
    results = _lines(outcome.stdout)
    values = []
    for i, call in enumerate(calls):
        if i >= len(results) or not results[i]["ok"]:
            error = results[i]["error"] if i < len(results) else f"{outcome.status}: {outcome.stderr[-200:]}"
            raise RuntimeError(f"tool call {call['name']}({json.dumps(call['arguments'])[:120]}) failed: {error}")
        values.append(json.loads(results[i]["preview"]))
    return values
