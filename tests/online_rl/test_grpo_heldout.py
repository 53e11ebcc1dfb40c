"""GRPO's end-of-run reports, without a training run: the held-out curve's sampled estimate (online_rl/heldout.py:
what it scores, in which order, with which seed, and that it leaves the training RNG alone, which exact resume
depends on) and the wandb table of provenance samples (online_rl/rewards.py)."""

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


# ---------------------------------------------------------------- the provenance table (online_rl/rewards.py)


def _provenance_rows(n: int) -> list[dict]:
    return [
        {"policy_step": i // 4, "query_id": f"q{i // 4}", "sample_index": i % 4, "prompt": [{"role": "user",
         "content": f"p{i}"}], "completion": f"c{i}", "reward": i / n, "components": {"verifier": float(i % 2)},
         "verifier": {"passed": bool(i % 2), "details": {"got": str(i)}}}
        for i in range(n)
    ]  # fmt: skip


def _end_args(report_to):
    return (type("Args", (), {"report_to": report_to})(), type("State", (), {"is_world_process_zero": True})())


def test_provenance_table_samples_rows_into_wandb(tmp_path, monkeypatch):
    import wandb

    from online_rl.rewards import ProvenanceCallback, ProvenanceLog

    log = ProvenanceLog(tmp_path / "provenance.jsonl")
    log.append(_provenance_rows(20))
    logged: list[dict] = []
    monkeypatch.setattr(wandb, "run", object())  # an active run, without starting one
    monkeypatch.setattr(wandb, "log", logged.append)
    args, state = _end_args(["wandb"])
    ProvenanceCallback(log, table_rows=6, seed=3).on_train_end(args, state, None)

    (entry,) = logged
    table = entry["provenance_samples"]
    assert entry["provenance_rows"] == 20 and len(table.data) == 6
    assert table.columns[:3] == ["policy_step", "query_id", "sample_index"]
    by_completion = {r["completion"]: r for r in log.rows()}
    for step, qid, index, _prompt, completion, reward, components, passed, details in table.data:
        source = by_completion[completion]  # every table row is a logged sample, its fields intact
        assert (step, qid, index, reward, passed) == (
            source["policy_step"], source["query_id"], source["sample_index"], source["reward"],
            source["verifier"]["passed"],
        )  # fmt: skip
        assert json.loads(components) == source["components"] and json.loads(details) == source["verifier"]["details"]
    keys = [(row[0], row[1], row[2]) for row in table.data]
    assert keys == sorted(keys)  # ordered by step, query, sample
    logged.clear()  # the same seed draws the same rows
    ProvenanceCallback(log, table_rows=6, seed=3).on_train_end(args, state, None)
    assert [row[4] for row in logged[0]["provenance_samples"].data] == [row[4] for row in table.data]


def test_provenance_table_only_when_wandb_reports(tmp_path, monkeypatch):
    import wandb

    from online_rl.rewards import ProvenanceCallback, ProvenanceLog

    log = ProvenanceLog(tmp_path / "provenance.jsonl")
    log.append(_provenance_rows(4))
    logged: list[dict] = []
    monkeypatch.setattr(wandb, "run", object())
    monkeypatch.setattr(wandb, "log", logged.append)
    ProvenanceCallback(log, table_rows=6, seed=0).on_train_end(*_end_args(["none"]), None)
    ProvenanceCallback(log, table_rows=0, seed=0).on_train_end(*_end_args(["wandb"]), None)
    assert logged == []
    ProvenanceCallback(log, table_rows=6, seed=0).on_train_end(*_end_args(["wandb"]), None)
    assert len(logged[0]["provenance_samples"].data) == 4  # fewer rows than asked for: all of them
