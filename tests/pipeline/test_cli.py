"""`qwenpost`: the dispatch table reaches each command, and bad command lines exit 2 with a usage line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("pipeline", "data build", "sandbox run", "verify", "sweep", "compare", "plan", "eval"):
        assert command in out
    assert set(COMMANDS) == {"pipeline", "data", "sandbox", "verify", "sweep", "compare", "plan", "eval"}


@pytest.mark.parametrize("argv, message", [
    ([], "usage: qwenpost"),
    (["bogus"], "unknown command 'bogus'"),
    (["data"], "usage: qwenpost data build"),
    (["data", "make"], "usage: qwenpost data build"),
    (["sandbox", "exec"], "usage: qwenpost sandbox run"),
])
def test_bad_command_lines_exit_2(argv, message, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.out + captured.err


def test_verify_is_dispatched(tmp_path, capsys):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"type": "math", "answer": "12"}))
    response = tmp_path / "response.txt"
    response.write_text("7 + 5 = 12. The answer is \\boxed{12}.")
    assert main(["verify", "--reference", str(ref), "--response", str(response)]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def test_sandbox_run_is_dispatched(tmp_path, capsys):
    program = tmp_path / "hello.py"
    program.write_text("print(6 * 7)\n")
    assert main(["sandbox", "run", "--language", "python", str(program)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "passed" and result["stdout"].strip() == "42"


@pytest.mark.e2e  # a verified build of several areas through the command line
def test_data_build_writes_the_splits(tmp_path):
    out = tmp_path / "data"
    # the console script's module, as a user runs it; tiny sizes keep it to a second of building
    cmd = [sys.executable, "-m", "pipeline", "data", "build", "--config", "configs/data/tiny.yaml",
           "--output_dir", str(out), "--sft_size", "8", "--preference_size", "4", "--preference_eval_size", "2",
           "--rl_queries_size", "2", "--heldout_size", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} >= {"sft", "preference", "preference_eval", "rl_queries", "heldout",
                                                "manifest.json"}
    assert json.loads((out / "manifest.json").read_text())["config"]["sft_size"] == 8
