"""The arithmetic builder: determinism, verified rows, valid pairs, disjoint splits, exact schemas."""

import dataclasses
import json
import random
import re
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from data_builders.arithmetic import Problem, Step, build, build_with_stats, candidates, check_disjoint, draw_problem
from data_builders.config import DataConfig
from data_builders.records import (
    PREFERENCE_FIELDS,
    RL_QUERY_FIELDS,
    SFT_FIELDS,
    validate_preference_record,
    validate_rl_query_record,
    validate_sft_record,
)
from data_builders.writer import split_sha256
from verifiers import verify

SMOKE = Path(__file__).resolve().parents[2] / "configs" / "data" / "smoke.yaml"
EQUATION = re.compile(r"(\d+) ([-+×÷]) (\d+) = (\d+)")
BOXED = re.compile(r"\\boxed\{(\d+)\}")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b, "÷": lambda a, b: Fraction(a, b)}


def smoke_config(**overrides) -> DataConfig:
    return DataConfig(**{**yaml.safe_load(SMOKE.read_text()), **overrides})


@pytest.fixture(scope="module")
def built() -> tuple[dict[str, list[dict]], dict]:
    return build_with_stats(smoke_config())


def _reply_answer(text: str) -> int:
    """Check a solution independently of the builder: every equation right, boxed = last equation's result."""
    equations = EQUATION.findall(text)
    assert equations, text
    for a, op, b, c in equations:
        assert OPS[op](int(a), int(b)) == int(c), text
    assert BOXED.findall(text) == [equations[-1][3]], text
    return int(equations[-1][3])


def test_sizes_come_from_the_config(built):
    splits, _ = built
    config = smoke_config()
    assert {name: len(rows) for name, rows in splits.items()} == config.split_sizes()
    assert list(splits) == ["heldout", "preference_eval", "rl_queries", "preference", "sft"]


def test_rebuild_is_byte_identical_and_seed_matters(built):
    splits, _ = built
    again = build(smoke_config())
    assert {k: split_sha256(v) for k, v in again.items()} == {k: split_sha256(v) for k, v in splits.items()}
    assert json.dumps(again) == json.dumps(splits)
    other = build(smoke_config(seed=1))
    for name in splits:
        assert split_sha256(other[name]) != split_sha256(splits[name])


def test_training_sizes_do_not_move_eval_splits(built):
    splits, _ = built
    bigger = build(smoke_config(sft_size=100, preference_size=40))
    for name in ("heldout", "preference_eval", "rl_queries"):
        assert bigger[name] == splits[name]


def test_schemas_are_exact(built):
    splits, _ = built
    for name, fields, validate in [("sft", SFT_FIELDS, validate_sft_record),
                                   ("preference", PREFERENCE_FIELDS, validate_preference_record),
                                   ("preference_eval", PREFERENCE_FIELDS, validate_preference_record),
                                   ("rl_queries", RL_QUERY_FIELDS, validate_rl_query_record),
                                   ("heldout", RL_QUERY_FIELDS, validate_rl_query_record)]:
        for row in splits[name]:
            assert tuple(row) == fields
            validate(row)
            assert row["category"] == "math"
    ids = [row["id"] for rows in splits.values() for row in rows]
    assert len(ids) == len(set(ids))


def test_sft_rows_are_verified_and_reverify(built):
    splits, _ = built
    for row in splits["sft"]:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        reply = row["messages"][-1]["content"]
        answer = _reply_answer(reply)
        assert reply.endswith(f"The answer is \\boxed{{{answer}}}.")
        assert row["verification"]["verifier"] == "math" and row["verification"]["passed"] is True
        details = json.loads(row["verification"]["details"])
        assert details["expected"] == str(answer) and details["extracted"] == str(answer)
        assert verify(reply, {"type": "math", "answer": str(answer)}).passed


def test_preference_pairs_chosen_passes_rejected_fails(built):
    splits, _ = built
    kinds = set()
    for row in splits["preference"] + splits["preference_eval"]:
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        reference = {"type": "math", "answer": str(_reply_answer(chosen))}
        assert verify(chosen, reference).passed
        failed = verify(rejected, reference)
        assert not failed.passed
        kind, _, why = row["reason"].partition(": ")
        assert why == failed.details["failure"]
        kinds.add(kind)
    assert kinds == {"off_by_one", "wrong_operation", "no_final_format", "wrong_step"}


def test_rl_references_answer_the_question(built):
    splits, _ = built
    for row in splits["rl_queries"] + splits["heldout"]:
        assert [m["role"] for m in row["prompt"]] == ["user"]
        reference = json.loads(row["reference"])
        assert set(reference) == {"type", "answer"} and reference["type"] == "math"
        assert row["reward_variance"] is None
        numbers = [int(n) for n in re.findall(r"\d+", row["prompt"][0]["content"])]
        assert 2 <= len(numbers) <= 3  # the question states its operands; the answer is not in it
        assert int(reference["answer"]) >= 0


def test_splits_share_no_prompt(built):
    splits, _ = built
    texts = {name: {json.dumps(r.get("prompt") or r["messages"][:-1]) for r in rows} for name, rows in splits.items()}
    names = list(texts)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not texts[a] & texts[b], (a, b)
    leaked = {**splits, "heldout": splits["heldout"] + [dict(splits["rl_queries"][0])]}
    with pytest.raises(ValueError, match="'heldout' and 'rl_queries' share the prompt"):
        check_disjoint(leaked)


def test_candidate_stats_count_every_verified_candidate(built):
    _, stats = built
    config = smoke_config()
    problems = config.sft_size + config.preference_size + config.preference_eval_size
    assert stats["correct"] == {"candidates": problems, "passed": problems}
    for flaw in ("off_by_one", "no_final_format", "wrong_step"):
        assert stats[flaw] == {"candidates": problems, "passed": 0}
    assert stats["wrong_operation"]["passed"] == 0


def test_numbers_stay_in_range():
    config = smoke_config(min_operand=3, max_operand=5, ops=["add", "sub", "mul"], two_step_fraction=0.0)
    rng = random.Random(0)
    for _ in range(200):
        problem = draw_problem(rng, config)
        assert all(3 <= n <= 5 for n in problem.numbers)
        assert problem.answer >= 0


def test_flawed_candidates_by_hand():
    problem = draw_problem(random.Random(0), smoke_config(two_step_fraction=0.0, ops=["add"]))
    problem = dataclasses.replace(problem, steps=(Step(7, "add", 5),))
    texts = dict(candidates(problem, ["off_by_one", "wrong_operation", "no_final_format", "wrong_step"],
                            random.Random(0)))
    assert texts["correct"].endswith("7 + 5 = 12. The answer is \\boxed{12}.")
    assert re.search(r"7 \+ 5 = (11|13)\. The answer is \\boxed\{(11|13)\}\.$", texts["off_by_one"])
    assert re.search(r"7 (-|×) 5 = (2|35)\. The answer is \\boxed\{(2|35)\}\.$", texts["wrong_operation"])
    assert "\\boxed" not in texts["no_final_format"] and "7 + 5 = 12." in texts["no_final_format"]
    assert re.search(r"7 \+ 5 = (11|13)\. The answer is \\boxed\{12\}\.$", texts["wrong_step"])


def test_two_step_problem_answer_is_computed():
    config = smoke_config(two_step_fraction=1.0)
    rng = random.Random(3)
    problems: list[Problem] = [draw_problem(rng, config) for _ in range(50)]
    for problem in filter(None, problems):
        assert len(problem.steps) == 2 and problem.steps[1].left == problem.steps[0].value
        assert _reply_answer(candidates(problem, [], rng)[0][1]) == problem.answer


@pytest.mark.e2e  # enumerates the whole problem space
def test_exhausted_problem_space_is_a_clear_error():
    config = smoke_config(min_operand=1, max_operand=1, ops=["add"], two_step_fraction=0.0, sft_size=5000)
    with pytest.raises(ValueError, match="distinct problems"):
        build(config)
