"""The mixture (weights, quotas, length report, PNG) and the new areas through `python -m data_builders`:
records in DESIGN.md's format, byte-identical rebuilds, config errors named before any work."""

import json
from collections import Counter

import pytest

from data_builders.__main__ import main
from data_builders.config import DataConfig
from data_builders.mixture import apply_mixture, histogram_png, parse_mixture, quotas
from data_builders.records import SFT_FIELDS, validate_sft_record

NEW_AREAS = ("long", "structured", "logic", "cross_lingual", "system")


def test_quotas_add_up_by_largest_remainder():
    assert quotas({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert quotas({"a": 0.5, "b": 0.25, "c": 0.25}, 1_000_000) == {"a": 500_000, "b": 250_000, "c": 250_000}
    assert sum(quotas({"x": 0.3, "y": 0.3, "z": 0.4}, 7).values()) == 7


def _rows(category: str, n: int) -> list[dict]:
    return [{"id": f"{category}{i}", "category": category,
             "messages": [{"role": "user", "content": "q " * i}, {"role": "assistant", "content": "a"}]}
            for i in range(n)]


@pytest.mark.e2e  # builds a whole area
def test_apply_mixture_cuts_each_area_to_its_quota_and_reports_lengths():
    rows = _rows("a", 10) + _rows("b", 3)
    config = parse_mixture({"weights": {"a": 3, "b": 1}, "sft_rows": 8}, ["a", "b"])
    kept, report = apply_mixture(rows, config, seed=0)
    assert Counter(r["category"] for r in kept) == {"a": 6, "b": 2}
    assert report["a"]["target"] == 6 and report["a"]["built"] == 10 and report["b"]["kept"] == 2
    lengths = sorted(i + 1 for i in range(10) if f"a{i}" in {r["id"] for r in kept})  # "q " * i + "a" -> i + 1
    assert report["a"]["tokens"]["lengths"] == lengths and report["a"]["tokens"]["max"] == lengths[-1]
    # an area's choice does not depend on the others, and order follows the build
    alone, _ = apply_mixture(_rows("a", 10), parse_mixture({"weights": {"a": 1}, "sft_rows": 6}, ["a"]), seed=0)
    assert [r["id"] for r in alone] == [r["id"] for r in kept if r["category"] == "a"]
    short, report = apply_mixture(rows, parse_mixture({"weights": {"a": 1, "b": 1}, "sft_rows": 20}, ["a", "b"]), 0)
    assert len(short) == 13 and report["b"]["target"] == 10 and report["b"]["kept"] == 3  # shortfall shown
    png = histogram_png(report)
    assert png.startswith(b"\x89PNG") and png == histogram_png(report)


@pytest.mark.parametrize("values, message", [
    ({"weights": {"a": 1}}, r"mixture.weights.*missing \['b'\]"),
    ({"weights": {"a": 1, "b": -1}}, r"mixture.weights.b"),
    ({"weights": {"a": 0, "b": 0}}, r"add up to more than 0"),
    ({"weights": {"a": 1, "b": 1}, "sft_rows": -5}, r"mixture.sft_rows"),
    ({"sft_rows": 5}, r"weights when sft_rows"),
    ({"weight": {}}, r"unknown key"),
])
def test_bad_mixture_settings_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        parse_mixture(values, ["a", "b"])


def _config(tmp_path, extra: str = "") -> str:
    text = ("sft_size: 0\npreference_size: 0\npreference_eval_size: 0\nrl_queries_size: 0\nheldout_size: 0\n"
            "jsonl: true\nareas:\n"
            "  long: {procedural: 8, k: 3, max_sections: 4}\n  structured: {procedural: 15}\n"
            "  logic: {procedural: 15, k: 5}\n  cross_lingual: {procedural: 10, k: 5}\n  system: {procedural: 10}\n"
            "filters:\n  dedup: {threshold: 0.85}\n"
            "mixture:\n  weights: {long: 1, structured: 2, logic: 2, cross_lingual: 1, system: 1}\n  sft_rows: 28\n"
            + extra)
    path = tmp_path / "new_areas.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.e2e  # a whole build through the command line
def test_new_areas_build_through_the_cli_and_rebuild_byte_identically(tmp_path, capsys):
    config = _config(tmp_path)
    for name in ("a", "b"):
        assert main(["--config", config, "--output_dir", str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    assert "mixture" in out and "filters dropped" in out
    a, b = (tmp_path / "a", tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert any(str(p) == "mixture.png" for p in files)
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    manifest = json.loads((a / "manifest.json").read_text())
    assert set(manifest["areas"]) == set(NEW_AREAS) and manifest["mixture"]["logic"]["target"] == 8
    rows = [json.loads(line) for line in (a / "sft.jsonl").read_text().splitlines()]
    assert {r["category"] for r in rows} == set(NEW_AREAS)
    assert sum(r["category"] == "logic" for r in rows) == 8
    for row in rows:
        assert tuple(row) == SFT_FIELDS and row["verification"]["passed"]
        validate_sft_record(row)
    verifiers = {r["category"]: r["verification"]["verifier"] for r in rows}
    assert verifiers["long"] == "long" and verifiers["logic"] == "logic" and verifiers["system"] == "instruction"
    assert verifiers["cross_lingual"] == "cross_lingual"
    assert {r["verification"]["verifier"] for r in rows if r["category"] == "structured"} == {"structured",
                                                                                            "json_schema"}
    prefs = [json.loads(line) for line in (a / "preference.jsonl").read_text().splitlines()]
    assert {p["category"] for p in prefs} == set(NEW_AREAS)


@pytest.mark.parametrize("extra_area, message", [
    ("  structured: {procedural: 1, tasks: [table_qa, poetry]}\n", r"areas.structured.tasks"),
    ("  logic: {procedural: 1, forms: [essay]}\n", r"areas.logic.forms"),
    ("  long: {procedural: 1, length_tolerance: 1.5}\n", r"areas.long.length_tolerance"),
    ("  cross_lingual: {procedural: 1, languages: [xx]}\n", r"areas.cross_lingual.languages"),
    ("  system: {procedural: 1, max_constraints: 9}\n", r"areas.system.max_constraints"),
])
def test_bad_area_settings_stop_before_any_work(tmp_path, capsys, extra_area, message):
    path = tmp_path / "bad.yaml"
    path.write_text("sft_size: 0\nareas:\n" + extra_area)
    assert main(["--config", str(path), "--output_dir", str(tmp_path / "out")]) == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_filters_and_mixture_need_areas_and_matching_weights():
    with pytest.raises(ValueError, match="at least one area"):
        DataConfig(filters={"dedup": {}})
    with pytest.raises(ValueError, match="mixture.weights"):
        DataConfig(areas={"logic": {"procedural": 1}}, mixture={"weights": {"math": 1}})


@pytest.mark.slow
def test_mixture_small_config_builds_all_nine_areas_byte_identically(tmp_path, capsys):
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "configs" / "data" / "mixture_small.yaml"
    for name in ("a", "b"):
        assert main(["--config", str(config), "--output_dir", str(tmp_path / name)]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    manifest = json.loads((a / "manifest.json").read_text())
    assert len(manifest["areas"]) == 9 and set(manifest["mixture"]) == set(manifest["areas"])
    for rel in sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


@pytest.mark.parametrize("section", ["filters:\n  decontaminate: {eval_files: [MISSING]}\n",
                                     "areas:\n  long: {documents: [MISSING]}\n"])
def test_missing_input_files_stop_the_build_before_sampling(tmp_path, capsys, monkeypatch, section):
    import data_builders.builders as builders

    def never(*args, **kwargs):
        raise AssertionError("areas were built before the input files were checked")

    monkeypatch.setattr(builders, "build_areas", never)
    missing = str(tmp_path / "missing_test.jsonl")
    text = "sft_size: 0\n" + ("areas:\n  logic: {procedural: 2}\n" if section.startswith("filters") else "")
    path = tmp_path / "c.yaml"
    path.write_text(text + section.replace("MISSING", missing))
    assert main(["--config", str(path), "--output_dir", str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.e2e  # a whole build through the command line
def test_decontamination_through_the_cli_drops_a_copied_eval_sample(tmp_path, capsys):
    base = ("sft_size: 0\npreference_size: 0\npreference_eval_size: 0\nrl_queries_size: 0\nheldout_size: 0\n"
            "jsonl: true\nareas:\n  logic: {procedural: 10, k: 5, splits: {sft: 1}}\n")
    (tmp_path / "clean.yaml").write_text(base)
    assert main(["--config", str(tmp_path / "clean.yaml"), "--output_dir", str(tmp_path / "clean")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "clean" / "sft.jsonl").read_text().splitlines()]
    leaked = next(r for r in rows if len(r["messages"][0]["content"].split()) > 25)
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(json.dumps({"question": leaked["messages"][0]["content"]}) + "\n")
    (tmp_path / "decon.yaml").write_text(base + f"filters:\n  decontaminate: {{eval_files: [{eval_file}]}}\n")
    assert main(["--config", str(tmp_path / "decon.yaml"), "--output_dir", str(tmp_path / "decon")]) == 0
    after = [json.loads(line)["id"] for line in (tmp_path / "decon" / "sft.jsonl").read_text().splitlines()]
    # templated problems of one kind share many tokens, so a sibling of the leaked row can meet the rule too:
    # exactly the rows the rule flags are gone, the leaked one among them
    from data_builders.filters import row_text
    from data_builders.filters.decontaminate import Decontaminator

    rule = Decontaminator([leaked["messages"][0]["content"]])
    flagged = [r["id"] for r in rows if rule.match(row_text(r)) is not None]
    assert leaked["id"] in flagged and after == [r["id"] for r in rows if r["id"] not in flagged]
    manifest = json.loads((tmp_path / "decon" / "manifest.json").read_text())
    assert manifest["filters"]["contaminated"] == {"logic": len(flagged)} and manifest["filters"]["eval_samples"] == 1
