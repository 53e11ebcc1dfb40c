"""Structured-data area: the `structured` and `json_schema` verifiers on right and wrong responses, and the
builder's pandas answers re-derived here from the table text the prompt shows."""

import json
import re

import pytest

from data_builders.builders import structured
from data_builders.config import parse_area
from verifiers import verify

REASONING = "The rows in group home are lamp and desk. Their quantities are 3 and 4, which add up to 7."


@pytest.mark.parametrize("response, passed, tag", [
    (f"{REASONING}\nAnswer: 7", True, None),
    (f"{REASONING}\nAnswer: 7.0", True, None),  # numbers compare as numbers
    (f"{REASONING}\n**Answer:** 7", True, None),
    (f"{REASONING}\nAnswer: 8", False, "wrong answer"),
    ("Answer: 7", False, "no reasoning chain"),
    (REASONING, False, "no answer line"),
])
def test_table_answer_checker(response, passed, tag):
    result = verify(response, {"type": "structured", "task": "table_qa", "answer": "7", "min_reasoning_words": 8})
    assert result.passed is passed
    assert result.details.get("tag") == tag


def test_fact_verification_checker():
    ref = {"type": "structured", "task": "fact_verification", "answer": "refuted"}
    why = "The lamp costs 12 and the desk costs 40; 12 is less than 40."
    assert verify(f"{why}\nAnswer: Refuted.", ref).passed
    assert not verify(f"{why}\nAnswer: supported", ref).passed


CSV = "item,price,quantity,total\nlamp,12,3,36\ndesk,40,2,80\n"
WHY = "In the desk row the total is 81 but 40 x 2 = 80, so that cell is wrong and becomes 80."


@pytest.mark.parametrize("block, passed, tag", [
    (CSV, True, None),
    ("item,price,quantity,total\nlamp,12,3,36\ndesk,40,2,80", True, None),  # trailing newline does not matter
    ("item,price,quantity,total\nlamp,12,3,36\ndesk,40,2,81\n", False, "wrong repair"),
    ("item,price,quantity,total\ndesk,40,2,80\nlamp,12,3,36\n", False, "wrong repair"),  # row order matters
    ("item,price,total,quantity\nlamp,12,36,3\ndesk,40,80,2\n", False, "wrong repair"),  # column order too
])
def test_csv_repair_is_checked_by_comparison(block, passed, tag):
    ref = {"type": "structured", "task": "error_correction", "format": "csv", "answer": CSV}
    result = verify(f"{WHY}\n\n```csv\n{block}\n```", ref)
    assert result.passed is passed and result.details.get("tag") == tag


def test_json_repair_compares_parsed_values():
    original = json.dumps([{"item": "lamp", "price": 12}, {"item": "desk", "price": 40}], indent=1)
    ref = {"type": "structured", "task": "error_correction", "format": "json", "answer": original}
    why = "The JSON does not parse because it has a trailing comma; removing it keeps every value."
    compact = json.dumps(json.loads(original))  # other whitespace, same value
    assert verify(f"{why}\n```json\n{compact}\n```", ref).passed
    assert verify(f"{why}\n```json\n{original[:-2]},\n]\n```", ref).details["tag"] == "repair does not parse"
    changed = json.dumps([{"item": "lamp", "price": 13}, {"item": "desk", "price": 40}])
    assert verify(f"{why}\n```json\n{changed}\n```", ref).details["tag"] == "wrong repair"
    assert verify(f"```json\n{compact}\n```", ref).details["tag"] == "no reasoning chain"


SCHEMA = {"type": "object", "required": ["rows", "columns"], "additionalProperties": False,
          "properties": {"rows": {"type": "integer"}, "columns": {"type": "array", "items": {"type": "string"}}}}


@pytest.mark.parametrize("response, passed, tag", [
    ('```json\n{"rows": 2, "columns": ["a", "b"]}\n```', True, None),
    ('{"rows": 2, "columns": ["a", "b"]}', True, None),  # bare JSON
    ('Here it is: {"rows": 2, "columns": ["a", "b"]} as asked.', True, None),  # embedded JSON
    ('{"rows": "2", "columns": ["a", "b"]}', False, "schema violation"),
    ('{"rows": 2}', False, "schema violation"),
    ('{"rows": 2, "columns": ["a", "b"], "extra": 1}', False, "schema violation"),
    ("no json here", False, "no JSON"),
])
def test_json_schema_checker(response, passed, tag):
    result = verify(response, {"type": "json_schema", "schema": SCHEMA})
    assert result.passed is passed and result.details.get("tag") == tag


def test_json_schema_expected_value_and_bad_schema():
    ref = {"type": "json_schema", "schema": SCHEMA, "expected": {"rows": 2, "columns": ["a", "b"]}}
    assert verify('{"rows": 2, "columns": ["a", "b"]}', ref).passed
    assert verify('{"rows": 3, "columns": ["a", "b"]}', ref).details["tag"] == "wrong values"
    with pytest.raises(ValueError, match="invalid schema"):
        verify("{}", {"type": "json_schema", "schema": {"type": "no-such-type"}})
    with pytest.raises(ValueError, match="schema"):
        verify("{}", {"type": "json_schema"})


def _table(prompt: str) -> list[dict]:
    """The markdown table of a prompt, parsed by hand (not by pandas)."""
    lines = [line for line in prompt.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append({k: int(v) if v.isdigit() else v for k, v in zip(header, cells)})
    return rows


@pytest.mark.e2e  # builds a whole area
def test_builder_answers_match_a_hand_computation_and_candidates_verify_as_labelled():
    area = parse_area("structured", {"procedural": 50})
    queries, dropped = structured.make_queries(area, seed=3)
    assert len(queries) == 50 and not dropped
    checked = 0
    for query in queries:
        prompt = query.messages[-1]["content"]
        reference = query.reference
        if reference.get("task") == "table_qa":
            rows = _table(prompt)
            if m := re.search(r"total quantity of items in the (\w+) group", prompt):
                assert float(reference["answer"]) == sum(r["quantity"] for r in rows if r["group"] == m.group(1))
            elif "mean price" in prompt:
                assert float(reference["answer"]) == round(sum(r["price"] for r in rows) / len(rows), 2)
            elif m := re.search(r"How many items cost more than (\d+)", prompt):
                assert int(reference["answer"]) == sum(r["price"] > int(m.group(1)) for r in rows)
            else:
                assert reference["answer"] == max(rows, key=lambda r: r["price"] * r["quantity"])["item"]
            checked += 1
        for candidate in query.offline:
            assert verify(candidate.text, reference).passed is (candidate.kind == "correct"), candidate
    assert checked >= 5
    tasks = {q.source.rsplit(":", 1)[1] for q in queries}
    assert tasks == {"table_qa", "fact_verification", "error_correction", "structure", "json_output"}
