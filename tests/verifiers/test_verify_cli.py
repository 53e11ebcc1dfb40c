"""`qwenpost verify`: verdicts printed as JSON, exit codes, and messages that name the bad file."""

import io
import json
import re

import pytest

from verifiers.cli import main


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def test_math_verdict_is_printed_as_json(tmp_path, capsys):
    ref = _write(tmp_path, "ref.json", {"type": "math", "answer": "12"})
    response = _write(tmp_path, "response.txt", "7 + 5 = 12, so the answer is \\boxed{12}.")
    assert main(["--reference", ref, "--response", response]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["verifier"], out["passed"], out["score"], out["format_ok"]) == ("math", True, 1.0, True)
    assert out["details"]["extracted"] == "12"


def test_failing_verdict_still_exits_zero(tmp_path, capsys):
    ref = _write(tmp_path, "ref.json", {"type": "instruction", "constraints": [{"kind": "max_words", "value": 3}]})
    response = _write(tmp_path, "response.txt", "far too many words in this reply")
    assert main(["--reference", ref, "--response", response]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["verifier"], out["passed"], out["score"]) == ("instruction", False, 0.0)
    assert out["details"]["constraints"][0]["id"] == "length_constraints:number_words"


def test_ifeval_record_without_type_is_an_instruction_reference(tmp_path, capsys):
    record = {"key": 1001, "prompt": "No commas please.", "instruction_id_list": ["punctuation:no_comma"],
              "kwargs": [{}]}
    ref = _write(tmp_path, "record.json", record)
    response = _write(tmp_path, "response.txt", "Fine and dandy")
    assert main(["--reference", ref, "--response", response]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def test_response_from_stdin(tmp_path, capsys, monkeypatch):
    ref = _write(tmp_path, "ref.json", {"type": "math", "answer": "3"})
    monkeypatch.setattr("sys.stdin", io.StringIO("The answer is 3."))
    assert main(["--reference", ref, "--response", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


@pytest.mark.parametrize("reference, response, message", [
    (None, "text", "cannot read reference file .*missing.json"),
    ("{not json", "text", "reference file .*ref.json is not valid JSON"),
    ({"type": "poetry"}, "text", "bad reference in .*ref.json: unknown verifier type 'poetry'"),
    ({"type": "math"}, "text", "bad reference in .*ref.json: math reference needs an 'answer'"),
    ({"type": "instruction", "constraints": [{"kind": "nope"}]}, "text", "ref.json: unknown instruction constraint"),
    ({"type": "math", "answer": "1"}, None, "cannot read response file .*missing.txt"),
])
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, reference, response, message):
    ref = _write(tmp_path, "ref.json", reference) if reference is not None else str(tmp_path / "missing.json")
    resp = _write(tmp_path, "response.txt", response) if response is not None else str(tmp_path / "missing.txt")
    assert main(["--reference", ref, "--response", resp]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("qwenpost verify: ")
    assert re.search(message, captured.err), captured.err


def test_usage_errors_return_argparse_code(capsys):
    assert main(["--reference", "only.json"]) == 2
    assert "--response" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "--reference" in capsys.readouterr().out
