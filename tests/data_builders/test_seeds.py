"""Seed loaders: each standard format from a tiny file written here, and malformed lines named by file and line."""

import gzip
import json

import pytest

from data_builders.seeds import parse_code, parse_instruction, parse_math, read_jsonl

GSM8K = {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
         "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72 clips.\n#### 72"}
MATH = {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?",
        "solution": "$\\frac{1}{2} + \\frac{1}{4} = \\frac{3}{4}$, so the answer is $\\boxed{\\frac{3}{4}}$."}
MBPP = {"task_id": 2, "text": "Write a function to add two numbers.", "code": "def add(a, b):\r\n    return a + b",
        "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"], "test_setup_code": "",
        "challenge_test_list": []}
HUMANEVAL = {"task_id": "HumanEval/0", "prompt": "def inc(x):\n    \"\"\"Return x + 1.\"\"\"\n",
             "canonical_solution": "    return x + 1\n", "entry_point": "inc",
             "test": "def check(candidate):\n    assert candidate(1) == 2\n"}
IFEVAL = {"key": 1000, "prompt": "Write a poem about rain. Do not use commas.",
          "instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
          "kwargs": [{"num_words": None}, {"num_words": 50, "relation": "less than"}]}


def write(path, rows) -> str:
    path.write_text("".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in rows))
    return str(path)


def test_gsm8k_and_math_rows(tmp_path):
    rows = read_jsonl(write(tmp_path / "m.jsonl", [GSM8K, "", MATH]))
    assert [r.line for r in rows] == [1, 3]  # blank lines skipped, numbering kept
    gsm8k, math = (parse_math(r) for r in rows)
    assert (gsm8k.style, gsm8k.answer) == ("gsm8k", "72")
    assert gsm8k.solution.endswith("72 clips.") and "####" not in gsm8k.solution
    assert (math.style, math.answer) == ("math", "\\frac{3}{4}")


def test_mbpp_and_humaneval_rows(tmp_path):
    mbpp, human = (parse_code(r) for r in read_jsonl(write(tmp_path / "c.jsonl", [MBPP, HUMANEVAL])))
    assert mbpp.style == "mbpp" and mbpp.entry_point == "add" and "\r" not in mbpp.solution
    assert mbpp.tests == "assert add(1, 2) == 3\nassert add(0, 0) == 0\n"
    assert "assert add(1, 2) == 3" in mbpp.prompt  # MBPP shows one test in the prompt
    assert human.style == "humaneval" and human.entry_point == "inc"
    assert human.solution == HUMANEVAL["prompt"] + HUMANEVAL["canonical_solution"]
    assert human.tests.startswith("def check(candidate)") and "def inc(x)" in human.prompt
    tests_as_string = parse_code(read_jsonl(write(tmp_path / "t.jsonl", [
        {"prompt": "Add.", "tests": "assert add(2, 2) == 4", "code": "def add(a, b):\n    return a + b"}]))[0])
    assert tests_as_string.tests == "assert add(2, 2) == 4\n"


def test_humaneval_gzip(tmp_path):
    path = tmp_path / "HumanEval.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(HUMANEVAL) + "\n")
    assert parse_code(read_jsonl(path)[0]).entry_point == "inc"


def test_ifeval_row_drops_null_kwargs_and_checks_ids(tmp_path):
    (row,) = read_jsonl(write(tmp_path / "i.jsonl", [IFEVAL]))
    parsed = parse_instruction(row, known={"punctuation:no_comma", "length_constraints:number_words"})
    assert parsed.constraints == (("punctuation:no_comma", {}),
                                  ("length_constraints:number_words", {"num_words": 50, "relation": "less than"}))
    with pytest.raises(ValueError, match=r"i\.jsonl:1: unknown instruction id\(s\) \['punctuation:no_comma'\]"):
        parse_instruction(row, known={"length_constraints:number_words"})


@pytest.mark.parametrize("line, parser, message", [
    ('{"question": "x", "answer": "no final line"', parse_math, "not valid JSON"),
    ('[1, 2]', parse_math, "expected a JSON object, got list"),
    ('{"question": "How many?", "answer": "It is 3."}', parse_math, "must end with a '#### <final answer>' line"),
    ('{"problem": "p", "solution": "no box here"}', parse_math, "must state its final answer in \\\\boxed"),
    ('{"text": "t"}', parse_math, "not a math seed"),
    ('{"text": "Add.", "code": "def f(): pass"}', parse_code, "missing field 'test_list' or 'tests'"),
    ('{"text": "Add.", "code": "def f(): pass", "test_list": []}', parse_code, "non-empty list of test strings"),
    ('{"prompt": "def f():", "test": "assert 1", "entry_point": "f", "canonical_solution": "  pass"}', parse_code,
     "must define check"),
    ('{"prompt": "p", "instruction_id_list": ["a", "b"], "kwargs": [{}]}', parse_instruction, "list of 2 objects"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, parser, message):
    path = write(tmp_path / "seed.jsonl", ["", '{"question": "ok?", "answer": "#### 1"}', line])
    with pytest.raises(ValueError) as info:
        for row in read_jsonl(path):
            parser(row) if row.line == 3 else None
    assert f"{path}:3: " in str(info.value) and message.replace("\\\\", "\\") in str(info.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="seed file not found: .*nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")
