"""The reward model's six-criteria preference build (data_builders/rm_preferences.py): labels derived by hand for
scripted policies and a scripted judge, then the real thing on micro checkpoints with the HF backend as judge and a
per-criterion reward model trained on the result."""

from __future__ import annotations

import json
import math

import pytest
import torch

from data_builders.generators.base import Candidate
from data_builders.rm_preferences import RMPreferenceConfig, build, parse_verdict
from reward.preference_data import read_preference_jsonl
from stagekit.config import ConfigError, parse_config

RIGHT = "The answer is \\boxed{5}."
WRONG = "The answer is \\boxed{6}."
VERBOSE = "Let me think step by step about apples, pears and everything else first. " * 3 + RIGHT


class Policy:
    """Answers every query with one fixed text (whatever the temperature)."""

    name = "scripted"

    def __init__(self, text: str):
        self.text, self.temperature = text, 0.7

    def generate(self, queries, k):
        return [[Candidate(self.text)] * k for _ in queries]


class Judge:
    """Prefers the shorter response, naming its position; position-biased (always A) on harmlessness, and no
    verdict at all on relevance."""

    name = "scripted-judge"

    def __init__(self):
        self.asked = []

    def generate(self, queries, k):
        out = []
        for q in queries:
            self.asked.append(q)
            text = q.messages[-1]["content"]
            a = text.split("[Response A]\n")[1].split("\n\n[Response B]")[0]
            b = text.split("[Response B]\n")[1].split("\n\n(Responses longer")[0]
            if "Criterion: relevance." in text:
                answer = "Both are fine, I think."
            elif "Criterion: harmlessness." in text:
                answer = "Verdict: A\nReason: A comes first."
            else:
                answer = f"Verdict: {'A' if len(a) < len(b) else 'B'}\nReason: it is shorter."
            out.append([Candidate(answer)] * k)
        return out


def _config(tmp_path, **extra) -> RMPreferenceConfig:
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"id": "q1", "category": "math", "prompt": "Sam has 2 apples and gets 3 more.",
                                   "reference": json.dumps({"type": "math", "answer": "5"})}) + "\n")
    values = {"queries_path": str(queries), "output_dir": str(tmp_path / "out"), "temperatures": [0.7, 1.0],
              "policies": [{"name": n, "backend": "procedural"} for n in ("good", "bad", "verbose")],
              "pairs_per_query": 3, "eval_percent": 0, **extra}  # fmt: skip
    return RMPreferenceConfig(**values)


def test_each_criterion_is_labelled_by_verifier_rule_or_consistent_judge_as_derived_by_hand(tmp_path):
    judge = Judge()
    summary = build(_config(tmp_path), policies={"good": Policy(RIGHT), "bad": Policy(WRONG),
                                                 "verbose": Policy(VERBOSE)}, judge=judge, progress=lambda _: None)
    # 3 policies x 2 temperatures = 6 responses, 3 distinct texts -> 3 pairs
    assert summary["responses"] == 6 and summary["pairs"] == 3
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    got = {(r["criterion"], r["label_source"], r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows}
    expected = {
        # the verifier separates RIGHT/WRONG and VERBOSE/WRONG on truthfulness and helpfulness
        *((c, "verifier", RIGHT, WRONG) for c in ("truthfulness", "helpfulness")),
        *((c, "verifier", VERBOSE, WRONG) for c in ("truthfulness", "helpfulness")),
        # both pass: the judge (shorter wins, in both orders)
        # debiasing has no verifier: the judge on every pair
        *((c, "judge", RIGHT, VERBOSE) for c in ("truthfulness", "helpfulness", "debiasing")),
        ("debiasing", "judge", WRONG, VERBOSE), ("debiasing", "judge", RIGHT, WRONG),
        # conciseness: RIGHT vs VERBOSE both pass and differ > 1.5x in length -> rule; the other two pairs are
        # separated by the verifier, so the judge decides them (shorter wins)
        ("conciseness", "rule", RIGHT, VERBOSE), ("conciseness", "judge", WRONG, VERBOSE),
        ("conciseness", "judge", RIGHT, WRONG),
    }
    # RIGHT vs WRONG have equal length: the scripted judge says B both times, which is inconsistent -> dropped
    expected.discard(("debiasing", "judge", RIGHT, WRONG))
    expected.discard(("conciseness", "judge", RIGHT, WRONG))
    assert got == expected
    assert summary["labels"]["relevance/judge_unparsable"] == 3
    assert summary["labels"]["harmlessness/judge_inconsistent"] == 3
    assert summary["labels"]["debiasing/judge_inconsistent"] == 1
    assert summary["by_criterion"]["relevance"] == summary["by_criterion"]["harmlessness"] == 0
    judged = [r for r in rows if r["label_source"] == "judge"]
    assert judged and all(r["reason"] == "judge: it is shorter." for r in judged)
    verified = [r for r in rows if r["label_source"] == "verifier"]
    assert all("fails" in r["reason"] for r in verified)
    assert {r["chosen_from"]["policy"] for r in verified} == {"good", "verbose"}
    # the judge was asked only where no verifier or rule decided (truthfulness 1, helpfulness 1, conciseness 2,
    # relevance, harmlessness, debiasing 3 each), twice each (A/B, then swapped)
    assert len(judge.asked) == 2 * 13
    assert judge.asked[0].messages[-1]["content"].split("[Response A]")[1] != \
        judge.asked[1].messages[-1]["content"].split("[Response A]")[1]
    # reward training reads the rows with their criterion
    read = read_preference_jsonl(str(tmp_path / "out" / "train.jsonl"))
    assert len(read) == len(rows) and {r["criterion"] for r in read} == {"truthfulness", "helpfulness",
                                                                          "conciseness", "debiasing"}


def test_dpo_pairs_are_added_with_their_criterion_and_queries_split_by_id(tmp_path, stage_data):
    config = _config(tmp_path, dpo_pairs_path=str(stage_data["preference"]), eval_percent=50,
                     criteria=["truthfulness"])  # fmt: skip
    summary = build(config, policies={"good": Policy(RIGHT), "bad": Policy(WRONG)}, judge=None,
                    progress=lambda _: None)  # fmt: skip
    rows = [json.loads(line) for name in ("train", "eval")
            for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]  # fmt: skip
    dpo = [r for r in rows if r["label_source"] == "dpo"]
    assert len(dpo) == summary["labels"]["truthfulness/dpo"] > 0
    assert all(r["criterion"] == "truthfulness" for r in dpo)
    assert summary["rows"]["train"] > 0 and summary["rows"]["eval"] > 0
    train_ids = {json.loads(x)["query_id"] for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()}
    eval_ids = {json.loads(x)["query_id"] for x in (tmp_path / "out" / "eval.jsonl").read_text().splitlines()}
    assert not train_ids & eval_ids  # a query's pairs are on one side only


@pytest.mark.parametrize(("text", "verdict"), [
    ("Verdict: A\nReason: clearer", "A"), ("**Verdict:** b\nReason: x", "B"), ("B", "B"), ("I like both", None),
    ("Verdict: C", None),
])  # fmt: skip
def test_parse_verdict(text, verdict):
    assert parse_verdict(text)[0] == verdict


@pytest.mark.parametrize(("extra", "message"), [
    (["--criteria", "politeness"], "criteria"),
    (["--temperatures", "3.0"], "temperatures"),
    (["--policies", "[{\"backend\": \"hf\"}]"], "policies\\[0\\]"),
    (["--policies", "[{\"name\": \"a\"}, {\"name\": \"a\"}]"], "unique"),
    (["--policies", "[{\"name\": \"a\", \"temperature\": 1}]"], "temperatures"),
])  # fmt: skip
def test_bad_config_is_refused_naming_the_key(tmp_path, extra, message):
    base = ["--queries_path", "q.jsonl", "--output_dir", str(tmp_path), "--policies", "[{\"name\": \"a\"}]"]
    with pytest.raises(ConfigError, match=message):
        parse_config(RMPreferenceConfig, [*base, *extra])


@pytest.mark.e2e
def test_hf_checkpoints_and_hf_judge_then_a_per_criterion_reward_model(micro_base, stage_data, tmp_path):
    """Two checkpoints (the micro base and a perturbed copy) x two temperatures, the micro base as judge through the
    HF backend, the DPO pairs added; then `python -m reward train --criterion truthfulness` on the rows."""
    from transformers import AutoModelForCausalLM

    from data_builders.rm_preferences import main
    from reward.train import main as train

    other = tmp_path / "other"
    model = AutoModelForCausalLM.from_pretrained(micro_base)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(other)
    for f in micro_base.iterdir():
        if "token" in f.name or f.name.endswith(".jinja"):
            (other / f.name).write_bytes(f.read_bytes())
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"id": f"q{a}", "category": "math", "prompt": f"Sam has {a} apples and "
                                           f"gets 2 more. How many?", "reference": json.dumps(
                                               {"type": "math", "answer": str(a + 2)})}) + "\n" for a in range(4)))
    out = tmp_path / "rm_data"
    hf = {"backend": "hf", "max_new_tokens": 8, "device": "cpu", "dtype": "float32"}
    summary = main([
        "--queries_path", str(queries), "--output_dir", str(out), "--temperatures", "0.7", "1.2",
        "--policies", json.dumps([{"name": "base", "model_path": str(micro_base), **hf},
                                  {"name": "other", "model_path": str(other), **hf}]),
        "--judge", json.dumps({"model_path": str(micro_base), **hf, "temperature": 0}),
        "--dpo_pairs_path", str(stage_data["preference"]), "--pairs_per_query", "2", "--eval_percent", "30",
    ])  # fmt: skip
    assert summary["responses"] == 4 * 2 * 2
    assert set(summary["responses_per_setting"]) == {"base@0.7", "base@1.2", "other@0.7", "other@1.2"}
    judged = sum(v for k, v in summary["labels"].items() if "/judge" in k)
    assert judged > 0  # the judge was asked (a random micro model rarely gives a verdict: counted, not crashed)
    assert summary["by_criterion"]["truthfulness"] > 0

    rm = train([
        "--config", "configs/reward/smoke.yaml", "--model_name_or_path", str(micro_base), "--dataset_path", "",
        "--eval_dataset_path", "", "--preference_files", str(out / "train.jsonl"),
        "--eval_preference_files", str(out / "eval.jsonl"), "--criterion", "truthfulness",
        "--output_dir", str(tmp_path / "rm_truthfulness"),
    ])  # fmt: skip
    assert rm["criterion"] == "truthfulness" and 0.0 <= rm["eval_accuracy"] <= 1.0
    assert math.isfinite(rm["train_loss"]) and set(rm["eval_by_criterion"]) == {"truthfulness"}
