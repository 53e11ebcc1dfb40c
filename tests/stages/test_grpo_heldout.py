"""The GRPO held-out curve's sampled estimate (online_rl/heldout.py): what it scores, in which order, with which
seed, and that it leaves the training RNG alone (exact resume depends on it)."""

from __future__ import annotations

import json

import pytest
import torch

from online_rl.heldout import HeldoutRewardCallback
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer

ROWS = [
    {"prompt": [{"role": "user", "content": f"Sam has {a} pens and gets {b} more. How many pens?"}],
     "reference": json.dumps({"type": "math", "answer": str(a + b)})}
    for a, b in [(1, 2), (3, 4), (2, 2)]
]  # fmt: skip


class RecordingClient:
    """Stands in for the reward service: scores a response by its length (a number the test can recompute) and
    records every item it was asked about."""

    def __init__(self):
        self.items: list[dict] = []

    def score(self, items):
        self.items.extend(items)
        out = []
        for item in items:
            v = (len(item["response"]) % 7) / 6  # in [0, 1], differs from response to response
            verifier = {"score": v, "passed": v > 0.5, "format_ok": True}
            out.append({"reward": 2 * v, "components": {"verifier": verifier}})
        return out


@pytest.fixture(scope="module")
def policy(micro_base):
    return load_model(micro_base).eval(), load_tokenizer(micro_base)


def test_sampled_points_score_k_samples_per_query_in_prompt_order(policy):
    model, tok = policy
    client = RecordingClient()
    cb = HeldoutRewardCallback(ROWS, client, every=1, max_new_tokens=6, samples=3, temperature=1.0, seed=5)
    point = cb.evaluate(model, tok, step=0)

    greedy, sampled = client.items[: len(ROWS)], client.items[len(ROWS) :]
    assert len(sampled) == 3 * len(ROWS)
    assert [it["reference"] for it in sampled] == [r["reference"] for r in ROWS for _ in range(3)]  # prompt-major
    expected = sum((len(it["response"]) % 7) / 6 for it in sampled) / len(sampled)
    assert point["sampled_verifier_mean"] == pytest.approx(expected)
    assert point["sampled_reward_mean"] == pytest.approx(2 * expected)
    assert point["verifier_mean"] == pytest.approx(sum((len(it["response"]) % 7) / 6 for it in greedy) / len(ROWS))
    assert point["samples"] == 3 and point["n"] == len(ROWS)
    assert len({it["response"] for it in sampled}) > 1  # really sampled, not the greedy answer k times


def test_sampling_uses_a_fixed_seed_and_leaves_the_training_rng_alone(policy):
    model, tok = policy
    torch.manual_seed(123)
    before = torch.get_rng_state()
    runs = []
    for _ in range(2):
        client = RecordingClient()
        HeldoutRewardCallback(ROWS, client, every=1, max_new_tokens=6, samples=2, seed=5).evaluate(model, tok, 0)
        runs.append([it["response"] for it in client.items])
    assert torch.equal(torch.get_rng_state(), before)  # the trainer's next draw is what it would have been
    assert runs[0] == runs[1]  # same stream at every evaluation
    client = RecordingClient()
    HeldoutRewardCallback(ROWS, client, every=1, max_new_tokens=6, samples=2, seed=6).evaluate(model, tok, 0)
    assert [it["response"] for it in client.items] != runs[0]  # the seed is what fixes it


def test_near_zero_temperature_samples_equal_the_greedy_answers(policy):
    model, tok = policy
    client = RecordingClient()
    HeldoutRewardCallback(ROWS, client, every=1, max_new_tokens=6, samples=2, temperature=1e-4).evaluate(model, tok, 0)
    greedy = [it["response"] for it in client.items[: len(ROWS)]]
    sampled = [it["response"] for it in client.items[len(ROWS) :]]
    assert sampled == [g for g in greedy for _ in range(2)]


def test_greedy_only_without_samples(policy):
    model, tok = policy
    client = RecordingClient()
    point = HeldoutRewardCallback(ROWS, client, every=1, max_new_tokens=6).evaluate(model, tok, 0)
    assert len(client.items) == len(ROWS) and "sampled_verifier_mean" not in point
