"""Structured-data verifiers: table answers, table/JSON/CSV repairs, and JSON output checked by `jsonschema`.

`structured` reference: `{"type": "structured", "task": T, "answer": ..., "min_reasoning_words": 8}` where T is
- "table_qa" / "fact_verification": the final `Answer:` line equals `answer` (numbers compared as numbers; fact
  verification answers "supported" or "refuted");
- "error_correction": the last fenced block (```csv or ```json) parses to the same table or value as `answer`
  (CSV through pandas, compared cell by cell with `DataFrame.equals`; JSON compared as parsed values), so a repair
  is checked by comparison, not by matching text.
Every task also needs a reasoning chain before the answer: at least `min_reasoning_words` words.

`json_schema` reference (DESIGN.md): `{"type": "json_schema", "schema": {...}}`, optional `"expected"` (the parsed
value must also equal it) and `"min_reasoning_words"`. The JSON is the last fenced ```json block, else the whole
response, else the last {...} or [...] span; the schema is checked with `jsonschema`'s validator for its draft.

Schemas come from references, so their `pattern` and `patternProperties` regexes are input too: with Python's
backtracking `re` (what jsonschema uses), `^(a+)+$` against 28 a's takes ~20 s and doubles with each further a.
Both keywords are matched here with RE2 (google-re2, linear time). A pattern RE2 cannot compile (backreferences,
lookaround) falls back to `re`; the reward service runs this verifier in a killable process (`verifiers.pool`),
which bounds that case. jsonschema and RE2 load on the first json_schema check, as the registry's other heavy
checkers do (verifiers/__init__.py).
"""

import functools
import io
import json
import re

from verifiers.final_answer import reasoning_words, same_answer, split_answer
from verifiers.result import VerifierResult

TASKS = ("table_qa", "fact_verification", "error_correction")
_FENCE = re.compile(r"```[ \t]*(\w*)[ \t]*\n(.*?)```", re.DOTALL)


def last_block(text: str) -> tuple[str, str, int] | None:
    """(language tag, body, start offset) of the last fenced code block, or None."""
    blocks = list(_FENCE.finditer(text))
    if not blocks:
        return None
    block = blocks[-1]
    return block.group(1).lower(), block.group(2), block.start()


def extract_json(text: str) -> tuple[object, int] | None:
    """(parsed value, offset where the JSON starts) as the module docstring describes, or None."""
    block = last_block(text)
    if block is not None and block[0] in ("json", ""):
        try:
            return json.loads(block[1]), block[2]
        except json.JSONDecodeError:
            return None
    try:
        return json.loads(text), 0
    except json.JSONDecodeError:
        pass
    for opener in "{[":
        start = text.rfind(opener)
        while start != -1:
            try:
                value, _ = json.JSONDecoder().raw_decode(text[start:])
                return value, start
            except json.JSONDecodeError:
                start = text.rfind(opener, 0, start)
    return None


def read_csv(text: str):
    import pandas as pd

    return pd.read_csv(io.StringIO(text.strip() + "\n"))


def _result(name: str, passed: bool, format_ok: bool, **details) -> VerifierResult:
    return VerifierResult(name, passed, 1.0 if passed else 0.0, format_ok, details)


def _need(reference: dict, key: str, kind: type | tuple) -> object:
    if key not in reference or not isinstance(reference[key], kind):
        raise ValueError(f"{reference.get('type')} reference needs {key!r} of type {kind}, got "
                         f"{reference.get(key)!r:.80}")
    return reference[key]


def verify_structured(response: str, reference: dict) -> VerifierResult:
    task = _need(reference, "task", str)
    if task not in TASKS:
        raise ValueError(f"structured reference: task must be one of {list(TASKS)}, got {task!r}")
    expected = _need(reference, "answer", str)
    min_words = int(reference.get("min_reasoning_words", 8))
    if task == "error_correction":
        fmt = _need(reference, "format", str)
        block = last_block(response)
        if block is None:
            return _result("structured", False, False, failure="no fenced block with the repaired data",
                           tag="no repaired block")
        reasoning = response[: block[2]]
        try:
            if fmt == "csv":
                given, want = read_csv(block[1]), read_csv(expected)
                same = list(given.columns) == list(want.columns) and given.equals(want)
            else:
                same = json.loads(block[1]) == json.loads(expected)
        except (ValueError, IndexError, KeyError, TypeError) as exc:  # pandas' ParserError/EmptyDataError, bad JSON
            return _result("structured", False, False, failure=f"repaired block does not parse: {exc}"[:200],
                           tag="repair does not parse")
        if not same:
            return _result("structured", False, True, failure="repaired data differs from the original",
                           tag="wrong repair")
    else:
        reasoning, given = split_answer(response)
        if given is None:
            return _result("structured", False, False, failure="no 'Answer:' line", tag="no answer line")
        if not same_answer(given, expected):
            return _result("structured", False, True, failure=f"answer {given!r:.60} != {expected!r}",
                           extracted=given[:100], expected=expected, tag="wrong answer")
    if reasoning_words(reasoning) < min_words:
        return _result("structured", False, True, failure=f"reasoning chain shorter than {min_words} words",
                       tag="no reasoning chain")
    return _result("structured", True, True, task=task)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str):
    """RE2 for `pattern` when it can, else Python's re."""
    import re2

    options = re2.Options()
    options.log_errors = False  # a pattern RE2 refuses is expected (it falls back to re), not worth a stderr line
    try:
        return re2.compile(pattern, options)
    except re2.error:
        return re.compile(pattern)


def _pattern(validator, pattern, instance, schema):
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not _compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for key, value in instance.items():
            if _compiled(pattern).search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


@functools.lru_cache(maxsize=16)
def _linear_time(validator_cls):
    """`validator_cls` with `pattern` and `patternProperties` matched by RE2."""
    from jsonschema import validators

    return validators.extend(validator_cls, {"pattern": _pattern, "patternProperties": _pattern_properties})


def verify_json_schema(response: str, reference: dict) -> VerifierResult:
    import jsonschema

    schema = _need(reference, "schema", dict)
    base_cls = jsonschema.validators.validator_for(schema)
    try:
        base_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"json_schema reference: invalid schema: {exc.message}") from exc
    found = extract_json(response)
    if found is None:
        return _result("json_schema", False, False, failure="no JSON value in the response", tag="no JSON")
    value, start = found
    errors = sorted(_linear_time(base_cls)(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        return _result("json_schema", False, True, failure=f"schema violation at {where}: {errors[0].message}"[:200],
                       tag="schema violation")
    if "expected" in reference and value != reference["expected"]:
        return _result("json_schema", False, True, failure="JSON matches the schema but not the expected value",
                       tag="wrong values")
    min_words = int(reference.get("min_reasoning_words", 0))
    if reasoning_words(response[:start]) < min_words:
        return _result("json_schema", False, True, failure=f"reasoning chain shorter than {min_words} words",
                       tag="no reasoning chain")
    return _result("json_schema", True, True)
