"""`qwenpost eval`: each suite's loader and scorer on known right and wrong answers, then real generation."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset

from evals.suites import SUITES, evaluate_suite, load_suite
from pipeline.cli import main
from stagekit.config import ConfigError


def _jsonl(path, rows) -> str:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


GSM8K = [
    {"question": "Tom has 3 bags of 24 apples. How many apples?", "answer": "3 * 24 = <<3*24=72>>72\n#### 72"},
    {"question": "A pen costs $1,250 in total for 5. What is the total?", "answer": "Given.\n#### 1,250"},
    {"question": "What is 10 - 4?", "answer": "10 - 4 = 6\n#### 6"},
]
MATH = [
    {"problem": "What is $1/2$ of $1$?", "solution": "Half of one is $\\boxed{\\frac{1}{2}}$.", "level": "Level 1"},
    {"problem": "Solve $x + 2 = 5$.", "solution": "So $x = \\boxed{3}$."},
]
HUMANEVAL = [{
    "task_id": "HumanEval/0", "entry_point": "add",
    "prompt": "def add(a: int, b: int) -> int:\n    \"\"\"Return a + b.\"\"\"\n",
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
}]  # fmt: skip
MBPP = [{
    "task_id": 11, "text": "Write a function to square a number.", "code": "def square(x):\n    return x * x",
    "test_list": ["assert square(3) == 9", "assert square(-2) == 4"], "test_setup_code": "", "challenge_test_list": [],
}]  # fmt: skip
IFEVAL = [
    {"key": 1, "prompt": "Write a line without commas.", "instruction_id_list": ["punctuation:no_comma"],
     "kwargs": [{}]},
    {"key": 2, "prompt": "Write in lowercase, no commas.",
     "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]},
    {"key": 3, "prompt": "Write in lowercase, no commas.",
     "instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]},
]  # fmt: skip


def _score(suite: str, path: str, answers: list[str]) -> tuple[list[dict], dict]:
    items = load_suite(suite, path)
    return SUITES[suite].score(items, answers)


def test_gsm8k_right_wrong_and_unformatted_answers(tmp_path):
    path = _jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    items = load_suite("gsm8k", path)
    assert items[1]["reference"] == {"type": "math", "answer": "1250", "check_steps": False}  # "1,250" normalised
    assert "\\boxed{}" in items[0]["prompt"][0]["content"]
    rows, metrics = _score("gsm8k", path, [
        "3 bags of 24 is 3 * 24 = 70, so \\boxed{72}",  # right (a wrong step is not what GSM8K scores)
        "The answer is 1250.",                          # right, in the 'answer is' form
        "10 - 4 = 6 apples",                            # right number, but not boxed: flexible only
    ])  # fmt: skip
    assert metrics == {"n": 3, "accuracy": 2 / 3, "format_rate": 2 / 3, "accuracy_flexible": 1.0}
    assert [r["passed"] for r in rows] == [True, True, False]
    _, wrong = _score("gsm8k", path, ["\\boxed{71}", "The answer is 125.", "\\boxed{6}"])
    assert wrong["accuracy"] == 1 / 3 and wrong["accuracy_flexible"] == 1 / 3


def test_math_equivalent_forms_and_a_wrong_answer(tmp_path):
    path = _jsonl(tmp_path / "math.jsonl", MATH)
    _, metrics = _score("math", path, ["It is \\boxed{\\dfrac{1}{2}}.", "x = \\boxed{2}"])
    assert metrics["accuracy"] == 0.5 and metrics["n"] == 2
    _, metrics = _score("math", path, ["\\boxed{0.5}", "\\boxed{3}"])
    assert metrics["accuracy"] == 1.0


def test_humaneval_and_mbpp_pass_at_1_in_the_sandbox(tmp_path):
    he = _jsonl(tmp_path / "he.jsonl", HUMANEVAL * 3)
    rows, metrics = _score("humaneval", he, [
        "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```",
        "```python\ndef add(a, b):\n    return a - b\n```",
        "I cannot write code.",
    ])  # fmt: skip
    assert metrics == {"n": 3, "pass@1": 1 / 3, "format_rate": 2 / 3}
    assert [r["details"]["status"] for r in rows][:2] == ["passed", "failed"]
    mbpp = _jsonl(tmp_path / "mbpp.jsonl", MBPP * 2)
    items = load_suite("mbpp", mbpp)
    assert "assert square(3) == 9" in items[0]["prompt"][0]["content"]
    _, metrics = _score("mbpp", mbpp, ["```python\ndef square(x):\n    return x ** 2\n```",
                                       "```python\ndef square(x):\n    return 2 * x\n```"])
    assert metrics["pass@1"] == 0.5


def test_ifeval_strict_and_loose_accuracies(tmp_path):
    path = _jsonl(tmp_path / "ifeval.jsonl", IFEVAL)
    rows, metrics = _score("ifeval", path, [
        "Sure, here it is:\nno commas on this line",  # strict: comma in line 1; loose drops the first line: passes
        "all lowercase and no commas here",            # follows both, strict and loose
        "Has Capitals, and a comma",                   # breaks both; one line, so loose cannot drop it
    ])  # fmt: skip
    assert metrics == {
        "n": 3,
        "prompt_level_strict_acc": 1 / 3, "inst_level_strict_acc": 2 / 5,
        "prompt_level_loose_acc": 2 / 3, "inst_level_loose_acc": 3 / 5,
    }  # fmt: skip
    assert rows[0]["follow_instruction_list_strict"] == [False] and rows[0]["follow_instruction_list_loose"] == [True]


def test_bad_suite_input_names_the_file_or_flag(tmp_path):
    with pytest.raises(ConfigError, match="--suite gsm8k needs --data FILE"):
        load_suite("gsm8k", None)
    with pytest.raises(ConfigError, match="nope.jsonl not found"):
        load_suite("ifeval", tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GSM8K[0]) + "\n" + json.dumps({"question": "q", "answer": "no final line"}) + "\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: .*####"):
        load_suite("gsm8k", bad)
    with pytest.raises(ConfigError, match="MATH-style row in a gsm8k suite"):
        load_suite("gsm8k", _jsonl(tmp_path / "m.jsonl", MATH))
    with pytest.raises(ConfigError, match="unknown instruction id"):
        load_suite("ifeval", _jsonl(tmp_path / "i.jsonl", [{**IFEVAL[0], "instruction_id_list": ["x:y"]}]))


@pytest.mark.e2e  # generates with the micro model on every checkpoint
def test_eval_generates_with_the_micro_model_and_writes_json(micro_base, tmp_path, capsys):
    heldout = tmp_path / "heldout"
    Dataset.from_list([
        {"id": f"q{a}", "prompt": [{"role": "user", "content": f"Sam has {a} apples and gets 1 more. How many?"}],
         "reference": json.dumps({"type": "math", "answer": str(a + 1)})}
        for a in range(5)
    ]).save_to_disk(str(heldout))  # fmt: skip
    result = evaluate_suite(micro_base, "tiny_heldout", data=heldout, limit=4, batch_size=3, max_new_tokens=6,
                            out=tmp_path / "out", report_to="none")
    saved = json.loads((tmp_path / "out" / "eval_tiny_heldout.json").read_text())
    assert saved["metrics"]["n"] == 4 and len(saved["rows"]) == 4 and saved["settings"]["max_new_tokens"] == 6
    assert saved["metrics"]["accuracy"] == sum(r["passed"] for r in saved["rows"]) / 4
    assert [r["id"] for r in saved["rows"]] == ["q0", "q1", "q2", "q3"]
    assert all(isinstance(r["response"], str) for r in saved["rows"]) and result["path"].endswith(".json")
    # the command line, on a GSM8K file, with wandb offline: the eval run is grouped and typed
    gsm8k = _jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    code = main(["eval", "--model", str(micro_base), "--suite", "gsm8k", "--data", gsm8k, "--limit", "2",
                 "--max_new_tokens", "4", "--out", str(tmp_path / "cli"), "--experiment", "micro_eval_group"])
    assert code == 0
    out = capsys.readouterr().out
    assert "[eval] gsm8k on" in out and "accuracy_flexible" in out
    assert json.loads((tmp_path / "cli" / "eval_gsm8k.json").read_text())["metrics"]["n"] == 2
    assert "(group micro_eval_group, job_type eval)" in out
    (run_dir,) = (tmp_path / "cli").glob("wandb/offline-run-*")  # one offline wandb run, under --out
    assert (run_dir / "files").is_dir()
    assert main(["eval", "--model", str(tmp_path), "--suite", "gsm8k", "--data", gsm8k]) == 2
    assert "is not an HF checkpoint directory" in capsys.readouterr().err


def test_pipeline_eval_suites_key_is_checked_before_any_stage(tmp_path):
    from pipeline.run import Pipeline, PipelineConfig

    with pytest.raises(ConfigError, match=r"eval_suites: unknown suite\(s\) \['gsm9k'\]"):
        PipelineConfig(eval_suites={"gsm9k": "x.jsonl"})
    missing = tmp_path / "gsm8k_test.jsonl"
    cfg = PipelineConfig(run_dir=str(tmp_path / "run"), eval_suites={"tiny_heldout": None, "gsm8k": str(missing)})
    with pytest.raises(ConfigError, match="gsm8k_test.jsonl not found"):
        Pipeline(cfg).validate()
    _jsonl(missing, GSM8K)
    Pipeline(cfg).validate()
    assert not (tmp_path / "run").exists()


@pytest.mark.e2e  # generates with the micro model on every checkpoint
def test_pipeline_runs_the_suites_on_every_checkpoint(micro_base, tmp_path, monkeypatch):
    from pipeline.run import Pipeline, PipelineConfig, evaluate_suites, format_table

    monkeypatch.setenv("WANDB_MODE", "disabled")
    heldout = tmp_path / "heldout"
    Dataset.from_list([{"prompt": [{"role": "user", "content": "Sam has 2 apples and gets 1 more. How many?"}],
                        "reference": json.dumps({"type": "math", "answer": "3"})}] * 3).save_to_disk(str(heldout))
    cfg = PipelineConfig(run_dir=str(tmp_path / "run"), eval_suites={"tiny_heldout": str(heldout)}, eval_limit=2,
                         eval_max_new_tokens=4, eval_batch_size=2)
    pipe = Pipeline(cfg)
    pipe.paths.update(base=micro_base, sft=micro_base, dpo=micro_base, grpo=micro_base)  # four stand-in checkpoints
    suites = evaluate_suites(pipe, cfg)
    assert set(suites) == {"base", "sft", "dpo", "grpo"} and all(s["tiny_heldout"]["n"] == 2 for s in suites.values())
    saved = json.loads((tmp_path / "run" / "eval" / "dpo" / "eval_tiny_heldout.json").read_text())
    assert saved["settings"]["max_new_tokens"] == 4 and saved["metrics"] == suites["dpo"]["tiny_heldout"]
    evaluation = {"n": 2, "accuracy": 0.0, "format_rate": 0.0, "mean_reward": 0.0}
    table = format_table({"experiment": "t", "wall_time_s": 1.0, "stage_time_s": {}, "stage_summaries": {},
                          "evaluations": {"base": evaluation}, "suites": suites})
    acc = suites["grpo"]["tiny_heldout"]["accuracy"]
    assert f"Benchmarks, grpo: tiny_heldout accuracy {acc:.3f}, format_rate" in table
