"""Logical-reasoning area: the `logic` verifier (answer and stated reasoning), every solver re-checked by an
independent method, and the refinement loop for model backends."""

import itertools
import re
import statistics
from fractions import Fraction

import pytest

from data_builders.builders import logic
from data_builders.config import parse_area
from data_builders.generators import Candidate
from verifiers import verify

STEPS = ["ana > ben > chloe"]


@pytest.mark.parametrize("form, answer, response, passed, tag", [
    ("open", "Ana", "Chaining the facts gives Ana > Ben > Chloe.\nAnswer: Ana", True, None),
    ("open", "Ana", "Chaining the facts gives Ana > Ben > Chloe.\nAnswer: Ben", False, "wrong answer"),
    ("open", "Ana", "Chaining the facts gives Ben > Ana > Chloe.\nAnswer: Ana", False, "flawed reasoning"),
    ("open", "Ana", "Answer: Ana", False, "flawed reasoning"),
    ("multiple_choice", "B", "Chaining gives Ana > Ben > Chloe.\nAnswer: (B) Ana", True, None),
    ("multiple_choice", "B", "Chaining gives Ana > Ben > Chloe.\nAnswer: C", False, "wrong answer"),
    ("true_false", "false", "Chaining gives Ana > Ben > Chloe, so no.\nAnswer: False", True, None),
    ("true_false", "false", "Chaining gives Ana > Ben > Chloe.\nAnswer: yes", False, "wrong answer"),
    ("true_false", "false", "Chaining gives Ana > Ben > Chloe.", False, "no answer line"),
])
def test_logic_checker(form, answer, response, passed, tag):
    result = verify(response, {"type": "logic", "form": form, "answer": answer, "steps": STEPS})
    assert result.passed is passed and result.details.get("tag") == tag


def test_logic_checker_refuses_a_bad_reference():
    with pytest.raises(ValueError, match="form"):
        verify("Answer: 1", {"type": "logic", "form": "essay", "answer": "1"})


def _check_solver(kind: str, problem: logic.Problem) -> None:
    q = problem.question
    if kind == "deductive":
        facts = re.findall(r"(\w+) is taller than (\w+)\.", q)
        people = sorted({p for pair in facts for p in pair})
        orders = [o for o in itertools.permutations(people)
                  if all(o.index(a) < o.index(b) for a, b in facts)]  # brute force over every ordering
        assert len(orders) == 1
        k = ["tallest", "second tallest", "third tallest", "fourth tallest", "fifth tallest"].index(
            re.search(r"Who is the (.+)\?", q).group(1))
        assert problem.answer == orders[0][k]
    elif kind == "inductive":
        terms = [int(t) for t in re.findall(r"-?\d+", q.split("sequence")[1])]
        d1 = [b - a for a, b in itertools.pairwise(terms)]
        if len(set(d1)) == 1:
            expected = terms[-1] + d1[0]
        elif all(b == terms[0] * (terms[1] // terms[0]) ** i for i, b in enumerate(terms)):
            expected = terms[-1] * (terms[1] // terms[0])
        else:
            d2 = [b - a for a, b in itertools.pairwise(d1)]
            assert len(set(d2)) == 1
            expected = terms[-1] + d1[-1] + d2[0]
        assert int(problem.answer) == expected
    elif kind == "analogical":
        a, b, c = re.match(r"(\w+) is to (\w+) as (\w+) is to", q).groups()
        shift = (ord(b[0]) - ord(a[0])) % 26
        assert all((ord(y) - ord(x)) % 26 == shift for x, y in zip(a, b))
        assert problem.answer == "".join(chr((ord(x) - 65 + shift) % 26 + 65) for x in c)
    elif kind == "causal":
        rules = dict(re.findall(r"If (.+?), then (.+?)\.", q))
        event = re.search(r"Today (.+?)\. Which", q).group(1)
        while event in rules:  # forward chaining
            event = rules[event]
        assert problem.answer == event
    else:
        if "marbles" in q:
            red, blue, green = (int(x) for x in re.findall(r"(\d+) (?:red|blue|green)", q))
            assert Fraction(problem.answer) == Fraction(red, red + blue + green)
        else:
            kind_name = re.search(r"What is the (\w+) of", q).group(1)
            data = [int(x) for x in re.findall(r"\d+", q.split(" of ")[1])]
            expected = {"mean": statistics.mean, "median": statistics.median,
                        "range": lambda d: max(d) - min(d)}[kind_name](data)
            assert Fraction(problem.answer) == Fraction(expected)


@pytest.mark.parametrize("kind", list(logic.SOLVERS))
def test_every_solver_agrees_with_an_independent_check(kind):
    import random

    rng = random.Random(kind)
    for _ in range(40):
        _check_solver(kind, logic.SOLVERS[kind](rng))


def test_queries_cover_kinds_and_forms_and_candidates_verify_as_labelled():
    area = parse_area("logic", {"procedural": 45})
    queries, _ = logic.make_queries(area, seed=1)
    assert {q.source.split(":")[2] for q in queries} == set(logic.SOLVERS)
    assert {q.reference["form"] for q in queries} == {"multiple_choice", "true_false", "open"}
    for query in queries:
        for candidate in query.offline:
            assert verify(candidate.text, query.reference).passed is (candidate.kind == "correct"), candidate
        if query.reference["form"] == "multiple_choice":  # exactly one option holds the answer's value
            options = re.findall(r"^[A-D]\) (.+)$", query.messages[-1]["content"], re.MULTILINE)
            assert len(options) == len(set(options))


class ScriptedModel:
    """First answers wrong; asked again (a follow-up turn), answers with the gold response."""

    name = "scripted"

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold, self.calls = gold, 0

    def generate(self, queries, k):
        self.calls += 1
        out = []
        for q in queries:
            first = q.messages[0]["content"]
            out.append([Candidate(self.gold[first] if len(q.messages) > 1 else "Answer: nonsense")] * k)
        return out


def test_refinement_replaces_failed_candidates_with_checked_revisions():
    area = parse_area("logic", {"procedural": 5, "refine_rounds": 1})
    queries, _ = logic.make_queries(area, seed=0)
    model = ScriptedModel({q.messages[0]["content"]: q.gold for q in queries})
    refining = logic.response_generator(area, model, seed=0)
    candidates = refining.generate(queries, 2)
    assert refining.refined == 10 and model.calls == 2
    assert all(verify(c.text, q.reference).passed for q, cs in zip(queries, candidates) for c in cs)
    no_refine = logic.response_generator(parse_area("logic", {"procedural": 5, "refine_rounds": 0}), model, 0)
    assert not any(verify(c.text, q.reference).passed for q, cs in zip(queries, no_refine.generate(queries, 1))
                   for c in cs)
