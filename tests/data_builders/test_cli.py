"""`python -m data_builders`: YAML + CLI config, early errors naming the key, atomic output, manifest."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import load_from_disk

from data_builders import writer
from data_builders.__main__ import main
from data_builders.config import DataConfig
from data_builders.writer import split_sha256, to_jsonl, write

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "configs" / "data" / "smoke.yaml"
SPLITS = ["heldout", "preference", "preference_eval", "rl_queries", "sft"]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """main's exit status and output; argparse's own errors (bad CLI types) exit through SystemExit."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_build_writes_datasets_manifest_and_jsonl(tmp_path, capsys):
    out = tmp_path / "data"
    code, stdout, _ = run(["--config", str(SMOKE), "--output_dir", str(out), "--seed", "5", "--jsonl"], capsys)
    assert code == 0
    assert "sft 64" in stdout and "heldout 8" in stdout and "passed the math verifier" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([*SPLITS, *(f"{s}.jsonl" for s in SPLITS), "manifest.json"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["config"]["seed"] == 5 and "output_dir" not in manifest["config"]
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == {
        "heldout": 8, "preference_eval": 16, "rl_queries": 16, "preference": 32, "sft": 64}
    assert manifest["candidates"]["correct"]["passed"] == 64 + 32 + 16
    for split in SPLITS:
        rows = list(load_from_disk(str(out / split)))
        assert split_sha256(rows) == manifest["splits"][split]["sha256"]
        assert (out / f"{split}.jsonl").read_text() == to_jsonl(rows)
    rl = load_from_disk(str(out / "rl_queries"))
    assert rl.features["reward_variance"].dtype == "float64" and rl[0]["reward_variance"] is None
    assert [tmp_path / "data"] == list(tmp_path.iterdir())  # no temporary directory left beside it


@pytest.mark.e2e  # builds a whole area
def test_rebuild_is_byte_identical_on_disk(tmp_path, capsys):
    for name in ("a", "b"):
        assert run(["--config", str(SMOKE), "--output_dir", str(tmp_path / name)], capsys)[0] == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


@pytest.mark.e2e  # `python -m data_builders` as a process
def test_unknown_yaml_key_exits_nonzero_naming_it(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(SMOKE.read_text() + "sft_sise: 10\n")
    proc = subprocess.run([sys.executable, "-m", "data_builders", "--config", str(config),
                           "--output_dir", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert "sft_sise" in proc.stderr and str(config) in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_cli_flag_exits_nonzero(tmp_path, capsys):
    code, _, stderr = run(["--config", str(SMOKE), "--output_dir", str(tmp_path / "o"), "--no_such_flag", "1"], capsys)
    assert code == 2 and "no_such_flag" in stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override, key", [
    (["--sft_size", "-1"], "sft_size"),
    (["--min_operand", "5", "--max_operand", "2"], "max_operand"),
    (["--ops", "add", "pow"], "ops"),
    (["--two_step_fraction", "1.5"], "two_step_fraction"),
    (["--flaws", "typo"], "flaws"),
    (["--ops", "sub", "--two_step_fraction", "0.5"], "two_step_fraction"),
])
def test_bad_values_stop_early_naming_the_key(tmp_path, capsys, override, key):
    out = tmp_path / "out"
    code, _, stderr = run(["--config", str(SMOKE), "--output_dir", str(out), *override], capsys)
    assert code == 2
    assert f"'{key}'" in stderr
    assert not out.exists()


def test_bad_value_in_yaml_names_the_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(SMOKE.read_text().replace("heldout_size: 8", "heldout_size: many"))
    code, _, stderr = run(["--config", str(config), "--output_dir", str(tmp_path / "o")], capsys)
    assert code == 2 and "heldout_size" in stderr and "'many'" in stderr
    config.write_text(SMOKE.read_text().replace("two_step_fraction: 0.25", "two_step_fraction: [0.25]"))
    code, _, stderr = run(["--config", str(config), "--output_dir", str(tmp_path / "o")], capsys)
    assert code == 2 and "'two_step_fraction'" in stderr
    assert not (tmp_path / "o").exists()


def test_missing_config_file_is_a_clear_error(tmp_path, capsys):
    code, _, stderr = run(["--config", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml" in stderr


def test_dataclass_validates_in_process():
    with pytest.raises(ValueError, match="'preference_size'"):
        DataConfig(preference_size=-3)
    with pytest.raises(ValueError, match="'flaws'"):
        DataConfig(flaws=[])
    assert DataConfig(flaws=[], preference_size=0, preference_eval_size=0).flaws == []


def test_failed_write_leaves_nothing_and_keeps_the_previous_build(tmp_path, monkeypatch):
    rows = {"heldout": [], "sft": []}
    out = tmp_path / "data"
    write(rows, out, manifest={"note": "first"})
    calls = []

    def explode(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(self, path, *args, **kwargs)

    original = writer.Dataset.save_to_disk
    monkeypatch.setattr(writer.Dataset, "save_to_disk", explode)
    with pytest.raises(OSError, match="disk full"):
        write(rows, out, manifest={"note": "second"})
    assert json.loads((out / "manifest.json").read_text())["note"] == "first"
    assert sorted(os.listdir(tmp_path)) == ["data"]  # the half-written temporary directory is gone

    fresh = tmp_path / "fresh"
    calls.clear()
    with pytest.raises(OSError):
        write(rows, fresh)
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_rewrite_replaces_a_previous_build_but_not_other_directories(tmp_path):
    out = tmp_path / "data"
    write({"heldout": []}, out, manifest={"note": "first"})
    write({"heldout": []}, out, manifest={"note": "second"})
    assert json.loads((out / "manifest.json").read_text())["note"] == "second"
    assert sorted(os.listdir(tmp_path)) == ["data"]
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(FileExistsError, match="not a data_builders output"):
        write({"heldout": []}, precious)
    assert (precious / "thesis.tex").read_text() == "x"


def test_mapping_keys_take_json_on_the_command_line(tmp_path, capsys):
    """`--generator '{...}'` (what `qwenpost pipeline`'s stage_overrides pass) replaces the YAML's mapping; a value
    that is not a JSON object stops early naming the key. Before, argparse refused any value (`invalid dict value`)."""
    from stagekit.config import parse_config

    full = Path(__file__).resolve().parents[2] / "configs" / "data" / "full.yaml"
    generator = {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1",
                 "model": "checkpoints/Qwen2.5-72B-Instruct"}
    cfg = parse_config(DataConfig, ["--config", str(full), "--generator", json.dumps(generator)])
    assert cfg.generator == generator and len(cfg.areas) == 9  # the areas still come from the file
    out = tmp_path / "out"
    code, _, stderr = run(["--config", str(SMOKE), "--output_dir", str(out), "--generator", "{backend"], capsys)
    assert code == 2 and "generator: expected a JSON object" in stderr and not out.exists()
    code, _, stderr = run(["--config", str(SMOKE), "--output_dir", str(out), "--filters", "[1, 2]"], capsys)
    assert code == 2 and "'filters'" in stderr and not out.exists()
    assert DataConfig(generator=None, filters=None).generator == {"backend": "procedural"}  # `key: null` = default
