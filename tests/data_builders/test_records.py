"""Record constructors and validators: exact fields, TRL conversational shapes, JSON-string columns."""

import json

import pytest

from data_builders.records import (
    PREFERENCE_FIELDS,
    RL_QUERY_FIELDS,
    SFT_FIELDS,
    preference_record,
    record_id,
    rl_query_record,
    sft_record,
    user_message,
    validate_preference_record,
    validate_rl_query_record,
    validate_sft_record,
)
from verifiers import verify

PROMPT = [user_message("Sam has 7 marbles and gets 5 more. How many marbles does Sam have now?")]
GOOD = "7 + 5 = 12. The answer is \\boxed{12}."


def test_id_is_a_stable_content_hash():
    first = record_id("math", PROMPT)
    assert first == record_id("math", [dict(m) for m in PROMPT])
    assert len(first) == 16 and int(first, 16) >= 0
    assert first != record_id("code", PROMPT)
    assert first != record_id("math", [user_message("Sam has 8 marbles.")])
    # the reply does not change the id: an SFT row and a preference row on one prompt share it
    assert record_id("math", [*PROMPT, {"role": "assistant", "content": GOOD}]) == first


def test_sft_record_fields_and_values():
    result = verify(GOOD, {"type": "math", "answer": "12"})
    row = sft_record("math", [*PROMPT, {"role": "assistant", "content": GOOD}], "procedural:arithmetic", result)
    assert tuple(row) == SFT_FIELDS
    assert row["id"] == record_id("math", PROMPT)
    assert row["messages"][-1] == {"role": "assistant", "content": GOOD}
    assert set(row["verification"]) == {"verifier", "passed", "details"}
    assert row["verification"]["verifier"] == "math" and row["verification"]["passed"] is True
    assert json.loads(row["verification"]["details"])["extracted"] == "12"


def test_sft_record_refuses_a_failed_verification():
    result = verify("The answer is \\boxed{13}.", {"type": "math", "answer": "12"})
    with pytest.raises(ValueError, match="passed"):
        sft_record("math", [*PROMPT, {"role": "assistant", "content": "x"}], "s", result)


def test_preference_record_is_trl_conversational():
    row = preference_record("math", PROMPT, GOOD, "7 + 5 = 13. The answer is \\boxed{13}.", "off_by_one: wrong")
    assert tuple(row) == PREFERENCE_FIELDS
    assert row["prompt"] == PROMPT
    assert row["chosen"] == [{"role": "assistant", "content": GOOD}]
    assert row["rejected"][0]["role"] == "assistant" and len(row["rejected"]) == 1


def test_rl_query_record_stores_reference_as_json():
    row = rl_query_record("math", PROMPT, {"type": "math", "answer": "12"})
    assert tuple(row) == RL_QUERY_FIELDS
    assert row["reference"] == '{"answer": "12", "type": "math"}'
    assert row["reward_variance"] is None
    assert rl_query_record("math", PROMPT, {"type": "math", "answer": "12"}, 0.25)["reward_variance"] == 0.25


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("reason"), "missing \\['reason'\\]"),
    (lambda r: r.update(extra=1), "extra \\['extra'\\]"),
    (lambda r: r.update(prompt=[*PROMPT, {"role": "assistant", "content": "x"}]), "end with the user turn"),
    (lambda r: r.update(chosen=[{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]),
     "one-message list"),
    (lambda r: r.update(rejected=[{"role": "user", "content": "a"}]), "one-message list"),
    (lambda r: r.update(rejected=r["chosen"]), "same reply"),
    (lambda r: r.update(prompt=[{"role": "robot", "content": "x"}]), "role 'robot'"),
    (lambda r: r.update(prompt=[{"role": "user"}]), "exactly 'role' and 'content'"),
    (lambda r: r.update(reason=""), "reason"),
])
def test_preference_validator_names_the_problem(mutate, message):
    row = preference_record("math", PROMPT, GOOD, "bad", "why")
    mutate(row)
    with pytest.raises(ValueError, match=message):
        validate_preference_record(row)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(reference={"type": "math", "answer": "1"}), "JSON string"),
    (lambda r: r.update(reference="{oops"), "not valid JSON"),
    (lambda r: r.update(reference='{"type": "chess"}'), "'chess'"),
    (lambda r: r.update(reward_variance="0.1"), "reward_variance"),
    (lambda r: r.update(reward_variance=True), "reward_variance"),
    (lambda r: r.update(id=""), "'id'"),
])
def test_rl_query_validator_names_the_problem(mutate, message):
    row = rl_query_record("math", PROMPT, {"type": "math", "answer": "12"})
    mutate(row)
    with pytest.raises(ValueError, match=message):
        validate_rl_query_record(row)


def test_sft_validator_wants_a_final_assistant_turn():
    row = sft_record("math", [*PROMPT, {"role": "assistant", "content": GOOD}], "s",
                     verify(GOOD, {"type": "math", "answer": "12"}))
    row["messages"] = PROMPT
    with pytest.raises(ValueError, match="end with the assistant turn"):
        validate_sft_record(row)
