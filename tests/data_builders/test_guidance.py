"""Reward-guided rejection sampling (builders/sampling.py `_row` with scores), computed by hand.

One math query, answer 12, four candidates in this order, with the reward model's scores (the scorer below plays
the reward service: it answers each item with the score written next to the text):

    A  passes  "... \\boxed{12}"  0.2
    B  passes  "... \\boxed{12}"  0.9
    C  fails   "... \\boxed{13}"  0.5
    D  fails   "... \\boxed{11}"  0.7

Answer-only selection keeps the first passing candidate (A) and pairs it with the first failing one (C). Guided by
the reward model it keeps the best-scored passing one (B) and pairs it with the failing one the reward model rates
highest (D, the hard negative), with both scores in the record.
"""

import json

from data_builders.builders.sampling import AreaStats, finish_batch, prepare_batch
from data_builders.generators import Candidate, Query

TEXTS = {
    "A": ("3 boxes of 4 is 3 x 4 = 12. The answer is \\boxed{12}.", 0.2),
    "B": ("Each box holds 4, and there are 3 boxes: 4 + 4 + 4 = 12. The answer is \\boxed{12}.", 0.9),
    "C": ("3 boxes of 4 is 3 x 4 = 13. The answer is \\boxed{13}.", 0.5),
    "D": ("Each box holds 4, and 3 boxes make 4 + 4 + 3 = 11. The answer is \\boxed{11}.", 0.7),
}
SCORE = {text: score for text, score in TEXTS.values()}
QUERY = Query("math", ({"role": "user", "content": "Ann has 3 boxes with 4 pens in each. How many pens?"},),
              {"type": "math", "answer": "12"}, "test", key="pens")


class Scripted:
    """k candidates in a fixed order (A, B, C, D), whatever k is."""

    name = "scripted"

    def generate(self, queries, k):
        return [[Candidate(text) for text, _ in TEXTS.values()] for _ in queries]


class HandScorer:
    """The reward service's answer shape: one {"reward": x} per item, in order; records what it was asked."""

    def __init__(self):
        self.items = []

    def score(self, items):
        self.items.extend(items)
        return [{"reward": SCORE[item["response"]]} for item in items]


def rows(split: str, scorer=None, stats: AreaStats | None = None) -> list[dict]:
    stats = AreaStats() if stats is None else stats
    prepared = prepare_batch([(split, QUERY)], Scripted(), k=4)
    return [row for _, row in finish_batch(prepared, stats, scorer=scorer)]


def test_answer_only_selection_keeps_the_first_passing_candidate():
    (sft,) = rows("sft")
    assert sft["messages"][-1]["content"] == TEXTS["A"][0]
    assert "reward_model" not in json.loads(sft["verification"]["details"])
    (pair,) = rows("preference")
    assert (pair["chosen"][0]["content"], pair["rejected"][0]["content"]) == (TEXTS["A"][0], TEXTS["C"][0])


def test_reward_guidance_keeps_the_best_passing_candidate_and_the_hard_negative():
    scorer = HandScorer()
    (sft,) = rows("sft", scorer)
    assert sft["messages"][-1]["content"] == TEXTS["B"][0]  # 0.9 > 0.2 among the passing ones
    assert json.loads(sft["verification"]["details"])["reward_model"] == 0.9
    # every candidate was scored once, without the reference (the reward model's own judgement)
    assert [item["response"] for item in scorer.items] == [text for text, _ in TEXTS.values()]
    assert all(item["reference"] is None and item["prompt"] == list(QUERY.messages) for item in scorer.items)
    stats = AreaStats()
    (pair,) = rows("preference", HandScorer(), stats)
    assert (pair["chosen"][0]["content"], pair["rejected"][0]["content"]) == (TEXTS["B"][0], TEXTS["D"][0])
    assert pair["reason"].endswith("[reward model: chosen 0.9000, rejected 0.7000]")
    rows("sft", HandScorer(), stats)
    # counted: guidance decided one pair and one SFT row, and chose otherwise than answer-only in both
    assert stats.as_dict()["guidance"] == {"pairs": 1, "rejected_changed": 1, "sft": 1, "sft_changed": 1}
    assert "guidance" not in rows_stats_unguided()


def rows_stats_unguided() -> dict:
    stats = AreaStats()
    rows("sft", None, stats)
    return stats.as_dict()


def test_rl_query_rows_are_not_changed_by_guidance():
    assert rows("rl_queries", HandScorer()) == rows("rl_queries")
