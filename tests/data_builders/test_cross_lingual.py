"""Cross-lingual area: the `cross_lingual` verifier on aligned and unaligned replies, templated tasks in every
language, and translation by a model with unfaithful translations dropped."""

import re

import pytest

from data_builders.builders import cross_lingual
from data_builders.config import parse_area
from data_builders.generators.openai_http import OpenAIGenerator
from verifiers import verify

REF = {"type": "cross_lingual", "language": "sw", "answer": "15",
       "original": "Compute the sum of these numbers: 7, 8."}


@pytest.mark.parametrize("response, passed, tag", [
    ("Namba ni 7, 8. Jumla ya namba hizi ni 15.\nJibu: 15", True, None),
    ("Namba ni 7, 8. Jumla ya namba hizi ni 16.\nJibu: 16", False, "not aligned with the original"),
    ("The numbers are 7 and 8. The sum is 15.\nAnswer: 15", False, "no answer line"),
    ("Jibu: 15", False, "wrong language"),
])
def test_cross_lingual_checker(response, passed, tag):
    result = verify(response, REF)
    assert result.passed is passed and result.details.get("tag") == tag


def test_every_language_and_task_has_checked_templates():
    area = parse_area("cross_lingual", {"procedural": 40})
    queries, _ = cross_lingual.make_queries(area, seed=0)
    assert {q.reference["language"] for q in queries} == {"fr", "es", "de", "sw", "id"}
    assert {q.source.split(":")[2] for q in queries} == set(cross_lingual.TEMPLATES)
    for query in queries:
        numbers = [int(x) for x in re.findall(r"\d+", query.reference["original"])]
        task = query.source.split(":")[2]
        expected = {"sum": str(sum(numbers)), "max": str(max(numbers)),
                    "even": str(sum(n % 2 == 0 for n in numbers)),
                    "sort": ", ".join(map(str, sorted(numbers)))}[task]
        assert query.reference["answer"] == expected
        for candidate in query.offline:
            assert verify(candidate.text, query.reference).passed is (candidate.kind == "correct"), candidate


def test_translation_by_a_model_is_checked(chat_stub):
    def respond(body, index):
        original = body["messages"][-1]["content"].split("\n\n", 1)[1]
        if index % 2:  # a faithful translation (numbers kept, answer word present)
            return 200, ["[sw] " + original.replace("Answer", "Jibu")], 0.0
        return 200, ["[sw] a translation that dropped the numbers. Jibu: ..."], 0.0

    stub = chat_stub(respond)
    area = parse_area("cross_lingual", {"procedural": 8, "languages": ["sw"]})
    queries, dropped = cross_lingual.make_queries(area, seed=0, generator=OpenAIGenerator(stub.url, "m",
                                                                                           concurrency=1))
    assert len(queries) == 4 and dropped == {"translation lost a number or the answer word": 4}
    for query in queries:
        assert query.messages[-1]["content"].startswith("[sw] ") and query.source.endswith(":generated")
        assert query.offline == () and query.gold is None  # the model answers the translated prompt itself


def test_model_path_translates_answers_and_verifies_through_build_area(chat_stub):
    """The whole model path of the area: the stub translates (keeping numbers), then answers in Swahili; rows are
    kept only where its answer agrees with the original task's."""
    from data_builders.builders import build_area

    def respond(body, index):
        text = body["messages"][-1]["content"]
        if text.startswith("Translate the following task"):
            return 200, ["[sw] " + text.split("\n\n", 1)[1].replace("Answer", "Jibu")], 0.0
        numbers = [int(x) for x in re.findall(r"\d+", text)]
        if "sum" in text:
            answer = str(sum(numbers))
        elif "largest" in text:
            answer = str(max(numbers) + 1)  # a wrong answer: these rows must not survive
        elif "even" in text:
            answer = str(sum(n % 2 == 0 for n in numbers))
        else:
            answer = ", ".join(map(str, sorted(numbers)))
        return 200, [f"Jibu la swali hili ni hesabu ya namba hizi.\nJibu: {answer}"] * body["n"], 0.0

    stub = chat_stub(respond)
    area = parse_area("cross_lingual", {"procedural": 8, "languages": ["sw"], "k": 2, "splits": {"sft": 1}})
    rows, stats = build_area("cross_lingual", area, OpenAIGenerator(stub.url, "m"), seed=0, progress=False)
    kept = [row["messages"][-1]["content"] for row in rows["sft"]]
    assert len(kept) == 6 and stats.dropped == {"no passing candidate": 2}  # the two "largest" tasks
    assert all(row["source"].endswith(":generated") for row in rows["sft"])
    assert stats.failures == {"not aligned with the original": 4}
