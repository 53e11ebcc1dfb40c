"""Local preference files: both TRL formats, errors that name file and line, criterion selection."""

import json

import pytest

from reward.preference_data import read_preference_jsonl, select_criterion, to_dataset, unify_format
from stagekit.config import ConfigError

CONVERSATIONAL = {
    "prompt": [{"role": "user", "content": "2 + 2?"}],
    "chosen": [{"role": "assistant", "content": "4"}],
    "rejected": "5",  # a plain string beside a conversational prompt is one assistant message
    "category": "math",
    "criterion": "truthfulness",
}
PLAIN = {"prompt": "2 + 2 =", "chosen": " 4", "rejected": " 5"}


def write(tmp_path, lines: list[str]):
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reads_conversational_and_plain_rows(tmp_path):
    path = write(tmp_path, [json.dumps(CONVERSATIONAL), "", json.dumps(PLAIN)])
    conv, plain = read_preference_jsonl(path)
    assert conv["rejected"] == [{"role": "assistant", "content": "5"}]
    assert (conv["category"], conv["criterion"], conv["id"]) == ("math", "truthfulness", "pairs.jsonl:1")
    assert (plain["prompt"], plain["category"], plain["criterion"], plain["id"]) == (
        "2 + 2 =", "unlabelled", None, "pairs.jsonl:3"
    )  # fmt: skip
    unified = unify_format([conv, plain])  # one dataset, one format: the plain row becomes a conversation
    assert unified[1]["prompt"] == [{"role": "user", "content": "2 + 2 ="}]
    assert unified[1]["chosen"] == [{"role": "assistant", "content": " 4"}]
    assert to_dataset(unified).column_names == ["prompt", "chosen", "rejected"]
    assert unify_format([plain, plain]) == [plain, plain]  # all plain text stays plain text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "a", "chosen": "b"', r"pairs.jsonl:2: not valid JSON"),
        ('{"prompt": "a", "chosen": "b"}', r"pairs.jsonl:2: missing key\(s\) \['rejected'\]"),
        ('["a", "b", "c"]', r"pairs.jsonl:2: expected a JSON object, got list"),
        ('{"prompt": "a", "chosen": 3, "rejected": "c"}', r"pairs.jsonl:2: 'chosen' must be a string or"),
        ('{"prompt": [{"role": "user"}], "chosen": "b", "rejected": "c"}', r"pairs.jsonl:2: 'prompt'\[0\] must have"),
        ('{"prompt": "a", "chosen": [{"role": "assistant", "content": "b"}], "rejected": "c"}', r"plain-text prompt"),
        ('{"prompt": "a", "chosen": "b", "rejected": "c", "criterion": "wit"}', r"pairs.jsonl:2: criterion 'wit'"),
    ],
)
def test_a_malformed_line_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path, [json.dumps(PLAIN), line])
    with pytest.raises(ConfigError, match=message):
        read_preference_jsonl(path)


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_preference_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="no preference rows"):
        read_preference_jsonl(write(tmp_path, [""]))


def test_select_criterion(tmp_path):
    rows = read_preference_jsonl(write(tmp_path, [json.dumps(CONVERSATIONAL), json.dumps(PLAIN)]))
    assert select_criterion(rows, None, "train") == rows
    assert [r["criterion"] for r in select_criterion(rows, "truthfulness", "train")] == ["truthfulness"]
    with pytest.raises(ConfigError, match=r"no train row is labelled 'helpfulness'.*'None', 'truthfulness'"):
        select_criterion(rows, "helpfulness", "train")
    with pytest.raises(ConfigError, match="not one of"):
        select_criterion(rows, "wit", "train")
