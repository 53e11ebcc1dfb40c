"""Verified builders end to end on a few queries per area, the code-verified instruction mode, config errors and
byte-identical rebuilds of verified_small.yaml."""

import json
from pathlib import Path

import pytest

from data_builders.__main__ import main
from data_builders.builders import build_area
from data_builders.builders import instruction_code as ic
from data_builders.builders.sampling import assign_splits, failure_reason
from data_builders.config import DataConfig, parse_area
from data_builders.generators import ProceduralGenerator
from data_builders.records import validate_preference_record, validate_rl_query_record, validate_sft_record
from verifiers import verify
from verifiers.instruction_code import verify_instruction_code

ROOT = Path(__file__).resolve().parents[2]
SPLITS = {"sft": 0.4, "preference": 0.4, "rl_queries": 0.2}


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def build(name: str, settings: dict) -> tuple[dict, object, dict]:
    """(rows per split, stats, prompt -> reference) of one area built with the procedural generator."""
    area = parse_area(name, {"splits": SPLITS, **settings})
    rows, stats = build_area(name, area, ProceduralGenerator(seed=0), seed=0, progress=False)
    module = __import__(f"data_builders.builders.{name}", fromlist=["make_queries"])
    queries, _ = module.make_queries(area, 0)
    references = {q.messages[-1]["content"]: q.reference for q in queries}
    return rows, stats, references


def check_rows(rows: dict, references: dict, category: str) -> None:
    """Every row validates; SFT answers and chosen replies pass their reference, rejected ones fail it for the
    stated reason; RL rows carry a reference `verify` accepts."""
    assert rows["sft"] and rows["preference"] and rows["rl_queries"]
    for row in rows["sft"]:
        validate_sft_record(row)
        assert row["category"] == category and row["verification"]["passed"] is True
        assert verify(row["messages"][-1]["content"], references[row["messages"][0]["content"]]).passed
    for row in rows["preference"]:
        validate_preference_record(row)
        reference = references[row["prompt"][0]["content"]]
        assert verify(row["chosen"][0]["content"], reference).passed
        rejected = verify(row["rejected"][0]["content"], reference)
        assert not rejected.passed
        assert row["reason"].endswith(failure_reason(rejected)) and ": " in row["reason"]
    for row in rows["rl_queries"]:
        validate_rl_query_record(row)
        assert json.loads(row["reference"]) == references[row["prompt"][0]["content"]]
        assert row["reward_variance"] is not None and 0.0 <= row["reward_variance"] <= 0.25


def test_math_area_with_gsm8k_math_seeds_and_procedural(tmp_path):
    gsm8k = write_jsonl(tmp_path / "gsm8k.jsonl", [
        {"question": f"Tom has {n} boxes of 4 pens. How many pens?", "answer": f"{n} * 4 = <<{n}*4={4 * n}>>{4 * n}."
         f"\n#### {4 * n}"} for n in range(3, 9)])
    math = write_jsonl(tmp_path / "math.jsonl", [
        {"problem": f"Solve $x + {n} = {2 * n}$.", "solution": f"Subtract {n}: $x = \\boxed{{{n}}}$."}
        for n in (2, 5)])
    broken = write_jsonl(tmp_path / "broken.jsonl", [  # its own solution has a wrong step: not usable data
        {"problem": "What is 2 + 3 + 1?", "solution": "First 2 + 3 = 6, then add 1: $\\boxed{6}$."}])
    rows, stats, references = build("math", {"seed_files": [gsm8k, math, broken], "procedural": 8, "k": 4})
    check_rows(rows, references, "math")
    assert stats.queries == 17 and stats.candidates > 0 and 0 < stats.passed < stats.candidates
    sources = {row["source"].split(":")[1] for row in rows["sft"]}
    assert "arithmetic" in sources and sources & {"gsm8k", "math"}
    assert "wrong final answer" in stats.failures and stats.dropped["reference rejects its gold answer"] == 1
    assert "What is 2 + 3 + 1?" not in json.dumps(rows)


def test_rows_do_not_depend_on_where_seed_files_live(tmp_path):
    rows = [
        {"question": f"Ann has {n} cats and {n} dogs. How many pets?", "answer": f"{n} + {n} = {2 * n}\n#### {2 * n}"}
        for n in range(2, 8)
    ]
    builds = []
    for folder in ("a", "b/deeper"):
        (tmp_path / folder).mkdir(parents=True)
        seeds = write_jsonl(tmp_path / folder / "gsm8k.jsonl", rows)
        builds.append(build("math", {"seed_files": [seeds], "k": 5})[0])  # k = pool size: always a correct one
    assert builds[0] == builds[1] and builds[0]["sft"][0]["source"].startswith("seed:gsm8k:gsm8k.jsonl:")


@pytest.mark.e2e  # builds a whole area
def test_code_area_with_mbpp_humaneval_seeds_and_procedural(tmp_path):
    seeds = write_jsonl(tmp_path / "code.jsonl", [
        {"text": "Write a function to double every number in a list.", "task_id": 1,
         "code": "def double_all(xs):\n    out = []\n    for i in range(len(xs)):\n        out.append(2 * xs[i])\n"
                 "    return out",
         "test_list": ["assert double_all([1, 2]) == [2, 4]", "assert double_all([]) == []"]},
        {"task_id": "HumanEval/1", "prompt": "def add_one(x):\n    \"\"\"Return x plus one.\"\"\"\n",
         "canonical_solution": "    y = x + 1\n    return y\n", "entry_point": "add_one",
         "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n"},
    ])
    rows, stats, references = build("code", {"seed_files": [seeds], "procedural": 3, "k": 2,
                                             "languages": ["javascript"]})  # no infinite-loop bugs: fast
    check_rows(rows, references, "code")
    assert stats.queries == 5 and stats.dropped.get("reference rejects its gold answer", 0) == 0
    assert any(tag.startswith("failed") for tag in stats.failures)
    kept = [row["messages"][-1]["content"] for row in rows["sft"]]
    assert all("```" in text for text in kept)


@pytest.mark.e2e  # builds a whole area
def test_procedural_code_tasks_correct_code_passes_and_bugs_fail():
    """Python and JavaScript, every family and bug except the infinite loops (each costs a 6 s timeout; the
    benchmark and verified_small.yaml run those)."""
    from data_builders.builders.code_tasks import FAMILIES, FENCES, render_tests
    from verifiers.code import verify_code_many

    items, kinds = [], []
    for family in FAMILIES:
        for language in ("python", "javascript"):
            reference = {"type": "code", "language": language, "tests": render_tests(family, language),
                         "entry_point": family.entry}
            for kind, code in family.code.get(language, {}).items():
                if kind != "infinite_loop":
                    items.append((f"```{FENCES[language]}\n{code}```", reference))
                    kinds.append(kind)
    verdicts = [result.passed for result in verify_code_many(items)]
    assert len(items) > 25 and verdicts == [kind == "correct" for kind in kinds]


def test_cpp_task_gold_passes_and_bug_fails():
    from data_builders.builders.code_tasks import FAMILIES, render_tests

    family = next(f for f in FAMILIES if f.name == "sum_to_n")
    reference = {"type": "code", "language": "cpp", "tests": render_tests(family, "cpp"), "entry_point": None}
    good = verify(f"```cpp\n{family.code['cpp']['correct']}```", reference)
    bad = verify(f"```cpp\n{family.code['cpp']['syntax_error']}```", reference)
    assert good.passed and not bad.passed and bad.details["status"] == "compile_error"


@pytest.mark.e2e  # builds a whole area
def test_instruction_area_with_ifeval_seeds_and_procedural(tmp_path):
    seeds = write_jsonl(tmp_path / "ifeval.jsonl", [
        {"key": 1, "prompt": "Describe your town. Do not use any commas.", "instruction_id_list":
         ["punctuation:no_comma"], "kwargs": [{}]},
        {"key": 2, "prompt": "Describe your town in Hindi.", "instruction_id_list": ["language:response_language"],
         "kwargs": [{"language": "hi"}]},
    ])
    rows, stats, references = build("instruction", {"seed_files": [seeds], "procedural": 14, "k": 4})
    check_rows(rows, references, "instruction")
    assert stats.queries == 16
    assert stats.dropped.get("reference rejects its gold answer", 0) == 0
    assert any(tag.startswith("not followed: ") for tag in stats.failures)
    for row in rows["sft"]:  # prompts are a base task plus constraints phrased by the registry's describe
        reference = references[row["messages"][0]["content"]]
        assert 1 <= len(reference["constraints"]) <= 3


def test_instruction_area_drops_seed_prompts_only_a_model_can_answer_offline(tmp_path):
    seeds = write_jsonl(tmp_path / "ifeval.jsonl", [
        {"key": 2, "prompt": "Describe your town in Hindi.", "instruction_id_list": ["language:response_language"],
         "kwargs": [{"language": "hi"}]}])
    rows, stats, _ = build("instruction", {"seed_files": [seeds], "procedural": 0, "k": 2, "splits": {"sft": 1.0}})
    assert rows["sft"] == [] and stats.dropped["no candidates (needs a model backend)"] == 1


def test_ifeval_seed_with_bad_kwargs_names_file_and_line(tmp_path):
    seeds = write_jsonl(tmp_path / "ifeval.jsonl", [
        {"prompt": "Write.", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
        {"prompt": "Write more.", "instruction_id_list": ["length_constraints:number_words"],
         "kwargs": [{"num_words": 50, "relation": "around"}]}])
    with pytest.raises(ValueError, match=r"ifeval\.jsonl:2: length_constraints:number_words.*relation"):
        build("instruction", {"seed_files": [seeds], "procedural": 0})


CHECK = "def check(response: str) -> bool:\n    return response.strip().endswith('?')\n"
GOOD_TESTS = "from instruction_check import check\nassert check('Why?') is True\nassert check('No.') is False\n"
BUGGY = "def check(response: str) -> bool:\n    return '?' in response\n"
BUGGY_TESTS = GOOD_TESTS + "assert check('Why? Because.') is False\n"


def task(function: str, tests: str) -> ic.CheckTask:
    return ic.CheckTask("Ask me a question.", function, tests, False, (), "Why?", "test")


def test_check_function_is_accepted_only_if_its_own_tests_pass():
    assert ic.accept([task(CHECK, GOOD_TESTS), task(BUGGY, BUGGY_TESTS), task(CHECK + "def (", GOOD_TESTS)]) == [
        True, False, False]


def test_accepted_check_function_selects_passing_responses():
    reference = {"type": "instruction_code", "function": CHECK, "entry_point": "check"}
    verdicts = [verify(text, reference) for text in ("Is it?", "It is.", "", "x')\nimport os\nos._exit(0)\n#?")]
    assert [v.passed for v in verdicts] == [True, False, False, True]  # the last one is data, not code
    assert verdicts[1].details["failure"] == "check function returned False"
    raising = verify_instruction_code("hi", {**reference, "function": "def check(r):\n    raise KeyError(r)\n"})
    assert not raising.passed and raising.details["status"] == "failed" and "KeyError" in raising.details["failure"]
    not_bool = verify_instruction_code("hi", {**reference, "function": "def check(r):\n    return 1\n"})
    assert not not_bool.passed and not_bool.details["failure"] == "check function returned int, not bool"
    with pytest.raises(ValueError, match="entry_point"):
        verify_instruction_code("hi", {**reference, "entry_point": "import os"})


@pytest.mark.e2e  # builds a whole area
def test_every_written_check_function_passes_its_tests_and_every_buggy_one_fails():
    import random

    rng = random.Random(0)
    families = [family for family in ic.FAMILIES for _ in range(2)]
    correct = [ic.write_task(rng, 0.0, family) for family in families]
    buggy = [ic.write_task(rng, 1.0, family) for family in families]
    assert [t.family for t in correct] == [f.name for f in families] and all(t.flawed for t in buggy)
    assert ic.accept(correct) == [True] * len(families)
    assert ic.accept(buggy) == [False] * len(families)


@pytest.mark.e2e  # a whole area build
def test_instruction_code_area_end_to_end():
    rows, stats, references = build("instruction_code", {"procedural": 10, "k": 3, "flawed_check_fraction": 0.3})
    check_rows(rows, references, "instruction_code")
    assert stats.dropped["check function failed its own tests (written buggy)"] >= 1
    assert stats.queries + sum(stats.dropped.values()) >= 10
    for row in rows["rl_queries"]:
        reference = json.loads(row["reference"])
        assert reference["type"] == "instruction_code" and reference["entry_point"] == "check"
        assert "def check(response: str) -> bool:" in reference["function"]


def test_assign_splits_partitions_by_share():
    from data_builders.generators import Query

    queries = [Query("math", ({"role": "user", "content": str(i)},), {"type": "math", "answer": "1"}, "t")
               for i in range(10)]
    splits = assign_splits(queries, {"sft": 0.5, "preference": 0.3, "rl_queries": 0.2}, 0, "math")
    assert [len(v) for v in splits.values()] == [5, 3, 2]
    assert sorted(q.messages[0]["content"] for v in splits.values() for q in v) == sorted(str(i) for i in range(10))


@pytest.mark.parametrize("areas, generator, message", [
    ({"maths": {}}, None, "areas.*unknown: \\['maths'\\]"),
    ({"math": {"procedurall": 3}}, None, "areas.math.*unknown: \\['procedurall'\\]"),
    ({"math": {"k": 0}}, None, "areas.math.k"),
    ({"math": {"splits": {"train": 1.0}}}, None, "areas.math.splits"),
    ({"code": {"languages": ["cobol"]}}, None, "areas.code.languages"),  # 20 languages are accepted, not any
    ({}, {"backend": "hf"}, "generator.model_path"),
    ({}, {"backend": "openai", "base_url": "http://x/v1", "model": "m", "temprature": 1}, "temprature"),
])
def test_config_refuses_bad_area_and_generator_settings(areas, generator, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(areas=areas, generator=generator or {"backend": "procedural"})


@pytest.mark.e2e  # a whole area build
def test_cli_prints_per_area_summary(tmp_path, capsys):
    config = tmp_path / "areas.yaml"
    config.write_text("sft_size: 0\npreference_size: 0\npreference_eval_size: 0\nrl_queries_size: 0\n"
                      "heldout_size: 0\nareas:\n  math: {procedural: 12, k: 3}\n")
    assert main(["--config", str(config), "--output_dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    assert "math: 12 queries" in out.out and "candidates rejected: " in out.out and "wrong final answer" in out.out
    assert "query/s" in out.err or "query" in out.err  # the progress bar went to stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["areas"]["math"]["queries"] == 12 and manifest["config"]["areas"]["math"]["k"] == 3


@pytest.mark.e2e  # a whole area build
def test_verified_small_rebuild_is_byte_identical(tmp_path, capsys):
    config = ROOT / "configs" / "data" / "verified_small.yaml"
    for name in ("a", "b"):
        assert main(["--config", str(config), "--output_dir", str(tmp_path / name)]) == 0
    a, b = (json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("a", "b"))
    assert a["splits"] == b["splits"] and a["areas"] == b["areas"]
    assert set(a["areas"]) == {"math", "code", "instruction", "instruction_code"}
    assert all(a["splits"][split]["rows"] > 0 for split in ("sft", "preference", "rl_queries"))
    from datasets import load_from_disk

    assert set(load_from_disk(str(tmp_path / "a" / "sft"))["category"]) == {"math", "code", "instruction",
                                                                          "instruction_code"}
    for split in a["splits"]:
        files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a" / split).rglob("*") if p.is_file())
        for rel in files:
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
