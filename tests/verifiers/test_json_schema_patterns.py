"""json_schema references carry regexes (`pattern`, `patternProperties`) that are input like the response: they are
matched in linear time with RE2, so a backtracking pattern cannot hold a verifier for seconds (issue 20)."""

import json
import time

from verifiers import verify

SCHEMA = {
    "type": "object",
    "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
    "patternProperties": {"^n_[0-9]+$": {"type": "integer"}},
}


def check(value: dict, schema: dict = SCHEMA):
    return verify(json.dumps(value), {"type": "json_schema", "schema": schema})


def test_a_catastrophic_pattern_is_decided_at_once():
    start = time.perf_counter()
    result = check({"s": "a" * 40 + "!"})  # Python's re: ~20 s at 28 a's, 4x per further a
    elapsed = time.perf_counter() - start
    assert not result.passed and "does not match" in result.details["failure"]
    assert elapsed < 1.0, elapsed
    assert check({"s": "a" * 40}).passed


def test_pattern_properties_match_like_jsonschema():
    assert check({"s": "aa", "n_12": 3}).passed
    assert not check({"s": "aa", "n_12": "three"}).passed  # key matches: the subschema applies
    assert check({"s": "aa", "n_x": "three"}).passed  # key does not match: no constraint


def test_a_pattern_re2_cannot_compile_falls_back_to_re():
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": r"^(ab)\1$"}}}  # backreference
    assert check({"s": "abab"}, schema).passed
    assert not check({"s": "abba"}, schema).passed
