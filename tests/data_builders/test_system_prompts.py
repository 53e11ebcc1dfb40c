"""Robust system instructions: hundreds of distinct system prompts, and the format rule they carry verified on
the response by the instruction verifier."""

import random

import pytest

from data_builders.builders import system
from data_builders.config import parse_area
from verifiers import verify


def test_hundreds_of_distinct_system_prompts():
    rng = random.Random(0)
    prompts = {system.system_prompt(rng, rng.randint(1, 2), "text about chess")[0] for _ in range(400)}
    assert len(prompts) >= 350
    assert len(system.PERSONAS) * len(system.TONES) * len(system.POLICIES) >= 500


def test_format_rule_in_the_system_prompt_is_verified_on_the_response():
    reference = {"type": "instruction", "prompt": "You are a tutor. Your entire response should be in English, "
                 "and in all lowercase letters. No capital letters are allowed.",
                 "constraints": [{"kind": "change_case:english_lowercase"}]}
    assert verify("chess rewards patience and planning.", reference).passed
    assert not verify("Chess rewards patience and planning.", reference).passed


@pytest.mark.e2e  # builds a whole area
def test_conversations_keep_the_system_prompt_and_candidates_verify_as_labelled():
    area = parse_area("system", {"procedural": 30, "max_constraints": 2})
    queries, dropped = system.make_queries(area, seed=0)
    assert len(queries) == 30 and sum(dropped.values()) < 10
    for query in queries:
        assert [m["role"] for m in query.messages] == ["system", "user"]
        assert "Format rules for every reply:" in query.messages[0]["content"]
        kinds = [(c.kind, verify(c.text, query.reference).passed) for c in query.offline]
        assert all(passed is (kind == "correct") for kind, passed in kinds), kinds
        assert any(kind != "correct" for kind, _ in kinds)
