"""The `multipl_e` eval suite on MultiPL-E's own rows (tests/fixtures/multipl_e, copied from nuprl/MultiPL-E): the
program is prompt + completion (cut at a stop token) + tests; a correct completion passes and a wrong one fails, in
C++, JavaScript, TypeScript and Bash; malformed rows are refused with file and line."""

import json
from pathlib import Path

import pytest

from evals.suites import SUITES, load_suite
from sandbox import unavailable
from stagekit.config import ConfigError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "multipl_e" / "humaneval_53_add.jsonl"
# MultiPL-E's two sample completions for HumanEval_53 in its evaluation/test_inputs (the second is its wrong one),
# and a wrong one of ours that compiles
RIGHT = {"cpp": "    return x + y;", "javascript": "    return x + y;\n}\n", "typescript": "    return x + y;\n}\n",
         "bash": "    echo $(( $1 + $2 ))"}
BROKEN = {"cpp": "    return x + ;", "javascript": "    return x + ;\n}\n", "typescript": "    rexturn x + y;\n}\n",
          "bash": "    excho $(( $1 + $2 ))"}
WRONG = {"cpp": "    return x - y;", "javascript": "    return x - y;\n}\n", "typescript": "    return x * y;\n}\n",
         "bash": "    echo $(( $1 * $2 ))"}


def _score(items, answers):
    return SUITES["multipl_e"].score(items, [answers[item["language"]] for item in items])


@pytest.fixture(scope="module")
def items():
    missing = [reason for language in RIGHT if (reason := unavailable(language))]
    if missing:
        pytest.skip("; ".join(missing))
    return load_suite("multipl_e", FIXTURE)


def test_loads_multipl_e_rows(items):
    assert [item["language"] for item in items] == ["cpp", "javascript", "typescript", "bash"]
    for item in items:
        reference = item["reference"]
        assert reference["prompt"] in item["prompt"][0]["content"] and reference["stop_tokens"]
        assert item["id"].startswith("HumanEval_53_add:")


def test_right_completions_pass_and_wrong_ones_fail(items):
    rows, metrics = _score(items, RIGHT)
    assert metrics["pass@1"] == 1.0 and all(row["passed"] for row in rows), [row["details"] for row in rows]
    rows, metrics = _score(items, BROKEN)
    assert metrics["pass@1"] == 0.0
    statuses = {row["details"]["language"]: row["details"]["status"] for row in rows}
    assert statuses == {"cpp": "compile_error", "javascript": "static_error", "typescript": "static_error",
                        "bash": "failed"}
    rows, metrics = _score(items, WRONG)
    assert metrics["pass@1"] == 0.0 and {f"pass@1/{lang}" for lang in RIGHT} <= set(metrics)


def test_chat_answers_repeating_the_prompt_are_completions(items):
    """A chat model answers with the whole function in a fence: the part after the prompt's last line is the
    completion, then cut at the stop token as MultiPL-E cuts a base model's."""
    answers = {item["language"]: f"Here it is:\n\n```\n{item['reference']['prompt']}{RIGHT[item['language']]}"
               f"{'' if RIGHT[item['language']].endswith(chr(10)) else chr(10) + '}'}\n```\n" for item in items}
    rows, metrics = _score(items, answers)
    assert metrics["pass@1"] == 1.0 and metrics["format_rate"] == 1.0
    assert {row["details"]["extraction"] for row in rows} == {"fenced_after_prompt"}


def test_bad_rows_are_refused_with_file_and_line(tmp_path):
    row = json.loads(FIXTURE.read_text().splitlines()[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n" + json.dumps({**row, "language": "swift"}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: MultiPL-E language 'swift'"):
        load_suite("multipl_e", bad)
    bad.write_text(json.dumps({k: v for k, v in row.items() if k != "stop_tokens"}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1: .*missing \['stop_tokens'\]"):
        load_suite("multipl_e", bad)
