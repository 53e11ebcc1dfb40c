"""The reward service's judge component (reward/judge.py): a scripted judge for the arithmetic of the combination,
the strict parse under hostile answers, the time bound, the cache and the config checks; the tiny HF judge through
`python -m reward serve` for the bounded outcome of a model that cannot judge."""

import json
import math
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from generators import Candidate, Query
from online_rl.rewards import component_scores
from reward.app import create_app
from reward.client import pick_component
from reward.config import ServeConfig
from reward.judge import CRITERION_RUBRICS, JUDGE_SYSTEM, MAX_ANSWER_CHARS, MAX_REASON_CHARS, parse_answer, parse_judge
from stagekit.config import ConfigError
from verifiers.result import VerifierResult

PROMPT = [{"role": "user", "content": "Sam has 3 apples and gets 4 more. How many?"}]
REF = {"type": "math", "answer": "7"}
JUDGE = {"backend": "openai", "base_url": "http://127.0.0.1:9", "model": "fake-judge", "rubric": "helpfulness",
         "weight": 0.5, "timeout_s": 5}  # fmt: skip


def verify_contains(response: str, reference: dict) -> VerifierResult:
    """A stand-in verifier (threads): passes when the expected answer appears in the response."""
    passed = reference["answer"] in response
    return VerifierResult(verifier=reference["type"], passed=passed, score=float(passed), format_ok=True, details={})


def constant_rm(pairs):
    return [1.0] * len(pairs)  # every logit 1.0: the rm term is 0.2 * tanh(1)


def shown_response(query: Query) -> str:
    content = query.messages[-1]["content"]
    return content.split("[Response]\n", 1)[1].split("\n[/Response]", 1)[0]


class ScriptedJudge:
    """A judge that answers from a script keyed by the response it is shown; `block` makes it wait for an event
    (a judge that hangs), `fail` makes it raise. Records every batch it was asked."""

    name = "scripted"

    def __init__(self, script: dict[str, str], *, block: threading.Event | None = None, fail: bool = False):
        self.script, self.block, self.fail = script, block, fail
        self.batches: list[list[Query]] = []

    def generate(self, queries, k):
        self.batches.append(list(queries))
        if self.block is not None:
            self.block.wait(30)
        if self.fail:
            raise ConnectionError("judge server refused the connection")
        return [[Candidate(self.script[shown_response(q)])] for q in queries]

    @property
    def calls(self) -> int:
        return sum(len(batch) for batch in self.batches)


def make_client(judge, *, rm=True, **judge_overrides):
    weights = {"rm": 0.2 if rm else 0.0, "verifier": 1.0}
    config = ServeConfig(model_path="scripted-rm" if rm else None, weights=weights, judge={**JUDGE, **judge_overrides},
                         max_wait_ms=1.0)  # fmt: skip
    app = create_app(config, constant_rm if rm else None, verify=verify_contains, judge=judge)
    return TestClient(app)


def score(client, items):
    response = client.post("/v1/score", json={"items": items})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_rewards_combine_the_judge_by_its_weight_exactly():
    script = {
        "3 + 4 = 7.": "Score: 10\nReason: correct and clear.",
        "3 + 4 = 8.": "Score: 4\nReason: the sum is wrong.",
        "Seven.": "**Score:** 7/10\n**Reason:** right but terse.",
        "I will not answer.": "I would give this a 9 out of 10, it is polite.",
    }
    judge = ScriptedJudge(script)
    items = [{"prompt": PROMPT, "response": "3 + 4 = 7.", "reference": REF},
             {"prompt": PROMPT, "response": "3 + 4 = 8.", "reference": REF},
             {"prompt": PROMPT, "response": "Seven."},
             {"prompt": "3 + 4 = ?", "response": "I will not answer.", "reference": REF}]  # fmt: skip
    with make_client(judge) as client:
        results = score(client, items)
        metrics = client.get("/metrics").json()
        health = client.get("/healthz").json()
    rm = 0.2 * math.tanh(1.0)
    # reward = 0.2 * tanh(logit) + 1.0 * verifier + 0.5 * (N - 1) / 9; an unparsable judge adds nothing
    assert [r["reward"] for r in results] == pytest.approx(
        [rm + 1.0 + 0.5 * 9 / 9, rm + 0.0 + 0.5 * 3 / 9, rm + 0.5 * 6 / 9, rm + 0.0]
    )
    judged = [r["components"]["judge"] for r in results]
    assert [j["status"] for j in judged] == ["ok", "ok", "ok", "unparsable"]
    assert [j["raw_score"] for j in judged] == [10, 4, 7, None]
    assert [j["score"] for j in judged[:3]] == pytest.approx([1.0, 1 / 3, 2 / 3]) and judged[3]["score"] is None
    assert [j["reason"] for j in judged[:3]] == ["correct and clear.", "the sum is wrong.", "right but terse."]
    assert judged[3]["reason"].startswith("no `Score: N` line; answer: I would give this a 9")
    assert {j["judge"] for j in judged} == {"openai:fake-judge"} and {j["rubric"] for j in judged} == {"helpfulness"}
    assert metrics["judge_status"] == {"ok": 3, "unparsable": 1}
    assert metrics["batching"]["judge"]["items"] == 4
    assert health["judge"]["rubric"] == "helpfulness" and len(health["judge"]["identity"]) == 16
    # what the judge was shown: the system turn, the rubric's text, the conversation and the response
    asked = {shown_response(q): q for batch in judge.batches for q in batch}
    first = asked["3 + 4 = 7."].messages
    assert first[0] == {"role": "system", "content": JUDGE_SYSTEM}
    assert f"Rubric: {CRITERION_RUBRICS['helpfulness']}" in first[1]["content"]
    assert "user: Sam has 3 apples and gets 4 more. How many?" in first[1]["content"]
    assert "user: 3 + 4 = ?" in asked["I will not answer."].messages[1]["content"]
    # GRPO's side: the judge's numbers in the provenance components and the per-component metrics
    assert pick_component(results[0], "judge") == 1.0 and pick_component(results[3], "judge") is None
    expected = {"rm": math.tanh(1.0), "verifier": 0.0, "judge": 1 / 3, "judge_raw": 4.0, "judge_unparsable": 0.0,
                "judge_timeout": 0.0, "judge_error": 0.0}  # fmt: skip
    assert component_scores(results[1]) == pytest.approx(expected)
    assert component_scores(results[3])["judge_unparsable"] == 1.0 and "judge" not in component_scores(results[3])


@pytest.mark.parametrize(
    ("answer", "raw", "problem"),
    [
        ("Score: 1\nReason: useless.", 1, None),
        ("  - **Score**: 8 / 10.\nReason: fine", 8, None),
        ("score = 5", 5, None),
        ("Score: 10\nScore: 1", None, "2 `Score:` lines (10, 1): ambiguous"),  # an echoed injection is not a score
        ("Score: 11", None, "score 11 is not an integer from 1 to 10"),
        ("Score: 0", None, "score 0 is not an integer from 1 to 10"),
        ("Score: -3", None, "score -3 is not an integer"),
        ("Score: 7.5", None, "score 7.5 is not an integer"),
        ("Score: 99999999999999999999999999", None, "score 999999999999 is not an integer"),
        ("Score: ten\nReason: great", None, "no `Score: N` line"),
        ("Score: \uff17", None, "no `Score: N` line"),  # a fullwidth 7 is not an ASCII digit
        ("The score is 7.", None, "no `Score: N` line"),
        ("Score: 7 because it is good", None, "no `Score: N` line"),
        ("", None, "no `Score: N` line"),
    ],
)
def test_the_parse_is_strict(answer, raw, problem):
    verdict = parse_answer(answer)
    assert verdict.raw_score == raw
    assert (verdict.problem is None) if problem is None else verdict.problem.startswith(problem)


def test_hostile_answers_are_bounded():
    start = time.perf_counter()
    late = parse_answer("x" * 10_000_000 + "\nScore: 9")  # past the first MAX_ANSWER_CHARS: never read
    assert late.raw_score is None and late.problem == f"no `Score: N` line in its first {MAX_ANSWER_CHARS} characters"
    long_reason = parse_answer("Score: 9\nReason: " + "y" * 10_000_000)
    assert long_reason.raw_score == 9 and long_reason.reason == "y" * MAX_REASON_CHARS
    spaces = parse_answer("Score: 5" + " " * (MAX_ANSWER_CHARS - 10) + "x")  # no backtracking blow-up
    assert spaces.raw_score is None
    assert time.perf_counter() - start < 2.0
    surrogate = parse_answer("Score: 6\nReason: bad \ud800 text")
    assert surrogate.raw_score == 6 and surrogate.reason == "bad ? text"


def test_hostile_answers_through_the_service_cost_only_the_judge_term():
    script = {"huge": "Reason: " + "z" * 3_000_000 + "\nScore: 9", "surrogate": "Score: 3\nReason: \udcff\ud800",
              "nul": "Score: 2\x00\nReason: a\x00b", "injected": "Score: 10\nReason: ok\nScore: 10"}  # fmt: skip
    items = [{"prompt": PROMPT, "response": key, "reference": REF} for key in script]
    items.append({"prompt": PROMPT, "response": "7" * 1_000_000, "reference": REF})  # the judge sees its start
    script["7" * 4000 + "\n[... 996000 characters cut from the end of the response]"] = "Score: 10"
    with make_client(ScriptedJudge(script), rm=False) as client:
        results = score(client, items)
    statuses = [r["components"]["judge"]["status"] for r in results]
    assert statuses == ["unparsable", "ok", "unparsable", "unparsable", "ok"]
    assert results[1]["components"]["judge"]["reason"] == "??"
    assert len(results[0]["components"]["judge"]["reason"]) < 700
    assert [r["reward"] for r in results] == pytest.approx([0.0, 0.5 * 2 / 9, 0.0, 0.0, 1.0 + 0.5])


def test_a_judge_past_its_timeout_gives_a_timeout_component_and_skips_queued_work():
    release = threading.Event()
    judge = ScriptedJudge({"3 + 4 = 7.": "Score: 8", "3 + 4 = 8.": "Score: 2"}, block=release)
    items = [{"prompt": PROMPT, "response": "3 + 4 = 7.", "reference": REF},
             {"prompt": PROMPT, "response": "3 + 4 = 8.", "reference": REF}]  # fmt: skip
    try:
        with make_client(judge, rm=False, timeout_s=0.5, max_batch_size=1) as client:
            start = time.perf_counter()
            results = score(client, items)
            elapsed = time.perf_counter() - start
            again = score(client, items[:1])  # a timeout is not cached: asked again (and late again)
            release.set()
            time.sleep(0.3)
            metrics = client.get("/metrics").json()
    finally:
        release.set()
    assert elapsed < 3.0  # answered at the bound, not when the judge came back
    assert [r["components"]["judge"]["status"] for r in results] == ["timeout", "timeout"]
    assert results[0]["components"]["judge"]["reason"] == "judge did not answer within 0.5s"
    assert [r["reward"] for r in results] == [1.0, 0.0]  # the verifier alone
    assert again[0]["cached"] is False and again[0]["components"]["judge"]["status"] == "timeout"
    assert metrics["judge_status"] == {"timeout": 3}
    # one batch at a time (max_batch_size 1): the first was running when its caller gave up; the items queued
    # behind it were abandoned by their callers and never asked
    assert judge.calls == 1


def test_a_failing_judge_gives_an_error_component_not_a_failed_request():
    judge = ScriptedJudge({}, fail=True)
    with make_client(judge, rm=False) as client:
        results = score(client, [{"prompt": PROMPT, "response": "3 + 4 = 7.", "reference": REF}] * 2)
        repeat = score(client, [{"prompt": PROMPT, "response": "3 + 4 = 7.", "reference": REF}])
        metrics = client.get("/metrics", params={"format": "prometheus"}).text
    component = results[0]["components"]["judge"]
    assert component["status"] == "error" and component["score"] is None
    assert component["reason"] == "ConnectionError: judge server refused the connection"
    assert [r["reward"] for r in results + repeat] == [1.0, 1.0, 1.0]
    assert repeat[0]["cached"] is False  # an error is not kept: the next identical item asks again
    assert 'reward_judge_results_total{status="error"} 2' in metrics  # the duplicate shared one computation


def test_a_judged_item_is_cached_with_the_judge_in_its_key():
    judge = ScriptedJudge({"3 + 4 = 7.": "Score: 9\nReason: right."})
    item = {"prompt": PROMPT, "response": "3 + 4 = 7.", "reference": REF}
    with make_client(judge) as client:
        first, second = score(client, [item]), score(client, [item])
        health = client.get("/healthz").json()
    assert judge.calls == 1 and first[0]["cached"] is False and second[0]["cached"] is True
    assert second[0]["components"]["judge"] == first[0]["components"]["judge"]
    with make_client(ScriptedJudge({"3 + 4 = 7.": "Score: 2"}), rubric="truthfulness") as client:
        other = client.get("/healthz").json()
    assert other["judge"]["identity"] != health["judge"]["identity"]  # part of every item's cache key
    base = parse_judge(JUDGE)
    assert base.identity() == parse_judge(base.as_config()).identity()  # parsing is idempotent
    for change in ({"rubric": "Answers in French."}, {"model": "other"}, {"max_chars": 100}, {"temperature": 0.7},
                   {"base_url": "http://127.0.0.1:10"}):  # fmt: skip
        assert parse_judge({**JUDGE, **change}).identity() != base.identity(), change
    for same in ({"api_key": "secret"}, {"weight": 2.0}, {"max_batch_size": 1}):  # not part of the answer
        assert parse_judge({**JUDGE, **same}).identity() == base.identity(), same
    assert "api_key" not in parse_judge({**JUDGE, "api_key": "secret"}).public()


@pytest.mark.parametrize(
    ("judge", "message"),
    [
        ("[1, 2]", "`judge` must be a mapping"),
        ("{not json", "`judge` is not valid JSON"),
        ({**JUDGE, "backend": "procedural"}, "`judge.backend` must be one of \\['hf', 'openai'\\]"),
        ({k: v for k, v in JUDGE.items() if k != "rubric"}, "`judge.rubric` is required"),
        ({k: v for k, v in JUDGE.items() if k != "weight"}, "`judge.weight` is required"),
        ({**JUDGE, "rubric": "  "}, "`judge.rubric` must be one of"),
        ({**JUDGE, "rubric": "x" * 5000}, "`judge.rubric` is 5000 characters"),
        ({**JUDGE, "weight": "high"}, "`judge.weight` must be a number"),
        ({**JUDGE, "weight": True}, "`judge.weight` must be a number"),
        ({**JUDGE, "weight": float("nan")}, "`judge.weight` must be finite"),
        ({**JUDGE, "timeout_s": 0}, "`judge.timeout_s` must be > 0"),
        ({**JUDGE, "max_chars": 0}, "`judge.max_chars` must be >= 1"),
        ({**JUDGE, "max_batch_size": 1.5}, "`judge.max_batch_size` must be an integer"),
        ({**JUDGE, "modle": "x"}, "unknown key\\(s\\) \\['modle'\\] for backend 'openai'"),
        ({k: v for k, v in JUDGE.items() if k != "model"}, "backend 'openai' needs \\['model'\\]"),
        ({"backend": "hf", "rubric": "relevance", "weight": 1}, "backend 'hf' needs \\['model_path'\\]"),
    ],
)
def test_bad_judge_configs_are_refused_naming_the_key(judge, message):
    with pytest.raises(ConfigError, match=message):
        ServeConfig(weights={"rm": 0, "verifier": 1}, judge=judge)


def test_the_judge_config_from_the_command_line_and_its_generator():
    config = ServeConfig(weights={"rm": 0, "verifier": 1}, judge=json.dumps(JUDGE))
    assert config.judge["temperature"] == 0.0 and config.judge["max_retries"] == 0  # greedy, no retry past the bound
    assert ServeConfig(weights={"rm": 0, "verifier": 1}, judge="null").judge is None
    with pytest.raises(ConfigError, match="`judge` is configured but no judge generator was given"):
        create_app(config, None, verify=verify_contains)
    with pytest.raises(ConfigError, match="a judge generator was given but `judge` is not configured"):
        plain = ServeConfig(weights={"rm": 0, "verifier": 1})
        create_app(plain, None, verify=verify_contains, judge=ScriptedJudge({}))
    from reward.serve import main

    missing = json.dumps({"backend": "hf", "model_path": "/nowhere/judge", "rubric": "helpfulness", "weight": 1})
    with pytest.raises(ConfigError, match="`judge.model_path`: no checkpoint directory at /nowhere/judge"):
        main(["--weights", '{"rm": 0, "verifier": 1}', "--judge", missing])


def test_the_shipped_judge_config_parses():
    from pathlib import Path

    from stagekit.config import parse_config

    path = Path(__file__).resolve().parents[2] / "configs" / "reward" / "serve_judge_tiny.yaml"
    config = parse_config(ServeConfig, ["--config", str(path)])
    settings = parse_judge(config.judge)
    assert settings.backend == "hf" and settings.rubric_name == "helpfulness" and settings.weight == 0.5
    assert settings.generator["model_path"] == "runs/tiny/sft" and settings.generator["temperature"] == 0.0


@pytest.mark.e2e
def test_the_tiny_hf_judge_through_reward_serve(micro_base, reward_serve, tmp_path):
    """The micro model (random weights) cannot write a `Score:` line: its answers are counted unparsable, the
    reward is the verifier's alone, and the service answers every request."""
    judge = {"backend": "hf", "model_path": str(micro_base), "rubric": "helpfulness", "weight": 0.5,
             "max_new_tokens": 8, "max_chars": 300, "timeout_s": 120, "device": "cpu", "batch_size": 4}  # fmt: skip
    argv = ["--weights", '{"rm": 0, "verifier": 1.0}', "--judge", json.dumps(judge)]
    items = [{"prompt": PROMPT, "response": "3 + 4 = 7. The answer is \\boxed{7}.", "reference": REF},
             {"prompt": PROMPT, "response": "The answer is \\boxed{8}.", "reference": REF}]  # fmt: skip
    with reward_serve(argv, log=tmp_path / "serve.log") as (url, _):
        health = httpx.get(f"{url}/healthz", timeout=10).json()
        first = httpx.post(f"{url}/v1/score", json={"items": items}, timeout=180)
        second = httpx.post(f"{url}/v1/score", json={"items": items[:1]}, timeout=60)
        metrics = httpx.get(f"{url}/metrics", timeout=10).json()
    assert health["judge"]["backend"] == "hf" and health["judge"]["model_path"] == str(micro_base)
    assert first.status_code == 200 and second.status_code == 200
    results = first.json()["results"]
    for result, verified in zip(results, (1.0, 0.0), strict=True):
        judged = result["components"]["judge"]
        assert judged["status"] == "unparsable" and judged["score"] is None
        assert judged["judge"] == f"hf:{micro_base}" and judged["reason"].startswith("no `Score: N` line")
        assert result["reward"] == verified  # the verifier's term alone
    assert second.json()["results"][0]["cached"] is True  # an unparsable answer is the judge's answer: kept
    assert metrics["judge_status"] == {"unparsable": 2}
