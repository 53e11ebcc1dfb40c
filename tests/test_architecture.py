"""The layers of DESIGN.md, enforced: import-linter's contract in pyproject.toml must hold, and it must catch a wrong
import (a lower floor importing a higher one), naming the offending line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    # --no-cache: the contract is judged on the tree as it is now, never on a cached graph of an earlier one
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)})


def test_the_layers_contract_holds():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_every_package_is_in_the_contract():
    """A new top-level package has to be given a floor: pyproject's root packages are exactly the packages here."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert set(config["root_packages"]) == packages
    floors = {name.strip() for layer in config["contracts"][0]["layers"] for name in layer.split("|")}
    assert floors == packages


@pytest.mark.parametrize(
    "module, line, offending",
    [
        ("stagekit/config.py", "import pipeline.run", "stagekit.config -> pipeline.run"),  # floor 1 -> floor 6
        ("verifiers/math.py", "from reward.client import RewardClient", "verifiers.math -> reward.client"),
        ("sft/config.py", "import offline_rl.config", "sft.config -> offline_rl.config"),  # independent siblings
    ],
)
def test_a_wrong_import_breaks_the_contract_naming_the_line(tmp_path, module, line, offending):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "wandb", "tests", "docs",
                                                               "__pycache__", "*.egg-info"))
    target = tree / module
    text = target.read_text() + f"\n{line}  # deliberately wrong\n"
    target.write_text(text)
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    assert "Layers depend one way (DESIGN.md) BROKEN" in result.stdout
    assert f"- {offending} (l.{text.count(chr(10))})" in result.stdout  # the module and the line of the import


def test_an_import_cycle_inside_a_package_breaks_the_contract(tmp_path):
    """reward.app imports reward.batching; batching importing app back is a cycle, even hidden in a function."""
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "wandb", "tests", "docs",
                                                               "__pycache__", "*.egg-info"))
    target = tree / "reward" / "batching.py"
    hidden = "\n\ndef _late():\n    from reward.app import create_app  # a loop, dodged\n"
    target.write_text(target.read_text() + hidden)
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    assert "No import cycles inside a package BROKEN" in result.stdout
    assert "No cycles are allowed in reward." in result.stdout
