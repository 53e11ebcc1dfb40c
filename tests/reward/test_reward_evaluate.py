"""Evaluation: pairwise accuracy per group, the Reward Bench score on hand-derived numbers, `reward eval`."""

import json

import pytest

from reward.evaluate import EXAMPLE_COUNTS, SECTIONS, load_reward_bench, main, pairwise_accuracy, reward_bench_score
from stagekit.config import ConfigError


def test_pairwise_accuracy_groups_and_counts_ties_as_wrong():
    rows = [
        {"category": "math", "criterion": "helpfulness"},
        {"category": "math", "criterion": None},
        {"category": "code", "criterion": "helpfulness"},
        {"category": "code", "criterion": "helpfulness"},
    ]
    result = pairwise_accuracy(rows, [(1.0, 0.0), (0.5, 0.5), (2.0, 3.0), (0.1, -0.1)])
    assert result["accuracy"] == 0.5 and result["pairs"] == 4
    assert result["by_category"] == {"code": {"accuracy": 0.5, "pairs": 2}, "math": {"accuracy": 0.5, "pairs": 2}}
    assert result["by_criterion"] == {
        "helpfulness": {"accuracy": 2 / 3, "pairs": 3},
        "unlabelled": {"accuracy": 0.0, "pairs": 1},
    }


def test_reward_bench_sections_are_count_weighted_and_the_score_is_their_mean():
    accuracy = {  # one subset per section at a chosen accuracy, the rest at 1.0
        "alpacaeval-easy": 0.5, "mt-bench-hard": 0.0, "donotanswer": 0.25, "math-prm": 0.5,
    }  # fmt: skip
    subsets, correct = [], []
    for members in SECTIONS.values():
        for subset in members:
            right = int(4 * accuracy.get(subset, 1.0))
            subsets += [subset] * 4
            correct += [True] * right + [False] * (4 - right)
    subsets += ["anthropic_helpful"] * 2  # a prior set: reported, counted nowhere
    correct += [False, False]
    result = reward_bench_score(subsets, correct)

    def section(name: str, low: str, value: float) -> float:
        total = sum(EXAMPLE_COUNTS[s] for s in SECTIONS[name])
        return (total - EXAMPLE_COUNTS[low] * (1 - value)) / total

    chat = section("Chat", "alpacaeval-easy", 0.5)  # (358 - 50) / 358
    assert chat == pytest.approx(308 / 358)
    reasoning = section("Reasoning", "math-prm", 0.5)  # math counts as much as the six code subsets together
    assert reasoning == pytest.approx(0.75)
    expected = {
        "Chat": chat,
        "Chat Hard": section("Chat Hard", "mt-bench-hard", 0.0),
        "Safety": section("Safety", "donotanswer", 0.25),
        "Reasoning": reasoning,
    }
    assert result["sections"] == pytest.approx(expected)
    assert result["score"] == pytest.approx(sum(expected.values()) / 4)
    assert result["complete"] is True and result["unmapped_subsets"] == ["anthropic_helpful"]
    assert result["subsets"]["donotanswer"] == {"accuracy": 0.25, "pairs": 4}

    partial = reward_bench_score(["alpacaeval-easy", "hep-go"], [True, False])
    assert partial["score"] is None and partial["complete"] is False
    assert partial["sections"] == {"Chat": 1.0, "Reasoning": 0.0}


def test_the_subset_map_is_reward_benchs():
    assert sum(len(v) for v in SECTIONS.values()) == 23 == len(EXAMPLE_COUNTS)
    assert sum(EXAMPLE_COUNTS[s] for s in SECTIONS["Chat"]) == 358
    assert EXAMPLE_COUNTS["math-prm"] == 6 * EXAMPLE_COUNTS["hep-python"]


def bench_lines() -> list[str]:
    rows = []
    for section, members in SECTIONS.items():
        for subset in members[:1]:
            for a in range(2):
                rows.append({"prompt": f"Sam has {a} apples and gets 2 more. How many?", "chosen": f"{a + 2}.",
                             "rejected": f"{a + 3}.", "subset": subset, "id": len(rows)})  # fmt: skip
    return [json.dumps(row) for row in rows]


def test_load_reward_bench_names_file_and_line(tmp_path):
    path = tmp_path / "rb.jsonl"
    path.write_text("\n".join(bench_lines()) + "\n")
    rows = load_reward_bench(path)
    assert len(rows) == 8 and rows[0]["prompt"] == [{"role": "user", "content": rows[0]["prompt"][0]["content"]}]
    path.write_text(bench_lines()[0] + '\n{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    with pytest.raises(ConfigError, match=r"rb.jsonl:2: column\(s\) \['subset'\] missing"):
        load_reward_bench(path)
    path.write_text("{oops\n")
    with pytest.raises(ConfigError, match=r"rb.jsonl:1: not valid JSON"):
        load_reward_bench(path)


@pytest.mark.e2e  # scores with the trained micro reward model
def test_reward_eval_command_writes_the_standard_score(trained_rm, preference_data, rm_scorer, tmp_path, capsys):
    bench = tmp_path / "rb.jsonl"
    bench.write_text("\n".join(bench_lines()) + "\n")
    out = tmp_path / "eval"
    argv = ["--model", str(trained_rm[0]), "--reward_bench", str(bench), "--device", "cpu", "--output_dir", str(out)]
    argv += ["--preference_files", str(preference_data / "local_eval.jsonl")]
    result = main(argv)
    rows = load_reward_bench(bench)
    expected = []
    for row in rows:
        responses = [row[side][0]["content"] for side in ("chosen", "rejected")]
        chosen, rejected = rm_scorer([(row["prompt"], response) for response in responses])
        expected.append(chosen > rejected)
    assert result["reward_bench"] == reward_bench_score([r["subset"] for r in rows], expected)
    assert result["reward_bench"]["complete"] is True
    assert json.loads((out / "eval.json").read_text())["reward_bench"]["score"] == result["reward_bench"]["score"]
    assert set(result["pairwise"]["by_criterion"]) == {"helpfulness", "truthfulness"}
    assert "Reward Bench score:" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        main(["--model", str(trained_rm[0])])
