"""The passkey-retrieval suite: its scorer on known answers, the length spec, prompts fitted to the tokenizer, and
`qwenpost eval --suite passkey --dca ...` end to end on the micro model (prompts longer than the DCA chunk)."""

from __future__ import annotations

import json

import pytest

from evals.passkey import PASSKEY_FILLER, parse_passkey_spec, passkey_answer, passkey_prompt, score_passkey
from evals.suites import load_suite
from pipeline.cli import main
from qwen25.attention.dca import parse_dca
from qwen25.tokenizer import load_tokenizer
from stagekit.config import ConfigError


def _item(length: int, key: str, i: int = 0) -> dict:
    return {"id": f"{length}-{i}", "length": length, "depth": 0.5, "reference": {"type": "passkey", "passkey": key}}


def test_scorer_on_known_answers():
    items = [_item(1024, "68231"), _item(1024, "10457", 1), _item(4096, "99001"), _item(4096, "31337", 1)]
    answers = [
        " 68231. Remember it.",  # right
        "The pass key is 10,457",  # right: thousands separator dropped
        "I think it is 12345, not 99001",  # wrong: the first number counts
        "no idea",  # wrong: no number
    ]
    rows, metrics = score_passkey(items, answers)
    assert [r["passed"] for r in rows] == [True, True, False, False]
    assert metrics == {"n": 4, "accuracy": 0.5, "accuracy@1024": 1.0, "accuracy@4096": 0.0}
    assert [r["extracted"] for r in rows] == ["68231", "10457", "12345", None]
    assert passkey_answer("683 is it") == "683" and passkey_answer("") is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("1024,4096", ([1024, 4096], 5)), ("128x3", ([128], 3)), (" 512 , 2048x1 ", ([512, 2048], 1))],
)
def test_length_spec(spec, expected):
    assert parse_passkey_spec(spec) == expected


@pytest.mark.parametrize("spec", ["abc", "1024x", "32", "1024x0", ""])
def test_bad_length_spec_names_the_flag(spec):
    with pytest.raises(ConfigError, match="--data"):
        load_suite("passkey", spec)


def test_items_are_seeded_and_spread_over_depths():
    items = load_suite("passkey", "256,512x4")
    assert [i["length"] for i in items] == [256] * 4 + [512] * 4
    assert [i["depth"] for i in items[:4]] == [0.125, 0.375, 0.625, 0.875]
    keys = [i["reference"]["passkey"] for i in items]
    assert all(len(k) == 5 and k.isdigit() for k in keys)
    assert keys == [i["reference"]["passkey"] for i in load_suite("passkey", "256,512x4")]  # same seed, same keys
    assert keys[:4] == [i["reference"]["passkey"] for i in load_suite("passkey", "256x4")]


def test_prompts_fit_the_length_and_hide_the_key(micro_base):
    tokenizer = load_tokenizer(micro_base)
    for length, depth in [(300, 0.1), (300, 0.9), (700, 0.5)]:
        messages, n_tokens = passkey_prompt(tokenizer, length, depth, "48213")
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert n_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= length
        assert n_tokens > length - 60  # filled up to within one filler sentence (~48 tokens for this tokenizer)
        content = messages[0]["content"]
        assert content.count("48213") == 2
        before = content[: content.index("48213")].count(PASSKEY_FILLER)
        total = content.count(PASSKEY_FILLER)
        assert before == round(total * depth)
    with pytest.raises(ConfigError, match="shorter than the bare prompt"):
        passkey_prompt(tokenizer, 64, 0.5, "48213")


def test_dca_flag():
    assert parse_dca(None) is None and parse_dca("off") is False
    assert parse_dca("32768,1024") == {"chunk_size": 32768, "local_size": 1024}
    for bad, message in [("32768", "CHUNK_SIZE,LOCAL_SIZE"), ("100,60", "local_size"), ("a,b", "CHUNK_SIZE")]:
        with pytest.raises(ConfigError, match=message):
            parse_dca(bad)


def test_eval_passkey_with_dca_on_the_micro_model(micro_base, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "--model", str(micro_base), "--suite", "passkey", "--data", "300,700x2", "--dca", "96,16",
                 "--max_new_tokens", "4", "--out", str(out), "--report_to", "none"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "eval_passkey.json").read_text())
    assert saved["settings"]["dca"] == {"chunk_size": 96, "local_size": 16}
    assert set(saved["metrics"]) == {"n", "accuracy", "accuracy@300", "accuracy@700"} and saved["metrics"]["n"] == 4
    assert all(96 < r["prompt_tokens"] <= r["length"] for r in saved["rows"])  # past the chunk: DCA's inter path
    assert "[eval] passkey on" in capsys.readouterr().out
    assert main(["eval", "--model", str(micro_base), "--suite", "passkey", "--dca", "4096,16", "--report_to",
                 "none", "--out", str(out)]) == 2  # fmt: skip
    assert "exceeds the trained length" in capsys.readouterr().err
