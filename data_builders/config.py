"""Configuration of the data builders: one dataclass, loaded from YAML by TRL's `TrlParser`, overridable on the CLI.

    python -m data_builders --config configs/data/tiny.yaml --seed 3 --sft_size 100

Values are checked when the dataclass is built, so a bad YAML or CLI value stops the run before any work, with
the key named.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

OPS = ("add", "sub", "mul", "div")
FLAWS = ("off_by_one", "wrong_operation", "no_final_format", "wrong_step")
SPLITS = ("heldout", "preference_eval", "rl_queries", "preference", "sft")  # drawn in this order: see arithmetic.py


@dataclass
class DataConfig:
    """What to build and where to write it; every split's size is a row count."""

    output_dir: str = "runs/data/tiny"  # the dataset directory: <output_dir>/<split>/ and manifest.json
    seed: int = 0  # the only source of randomness: same config and seed, same bytes
    min_operand: int = 1  # smallest number in a problem
    max_operand: int = 9  # largest number in a problem; single digits are what a tiny CPU model learns
    ops: list[str] = field(default_factory=lambda: ["add", "sub", "mul"])  # operations to draw from: add sub mul div
    two_step_fraction: float = 0.0  # share of problems with two steps (e.g. buy some, then give some away)
    flaws: list[str] = field(default_factory=lambda: list(FLAWS))  # kinds of flawed candidates to generate
    sft_size: int = 6000  # SFT rows: problems with a verified solution
    preference_size: int = 1024  # preference pairs for DPO and the reward model
    preference_eval_size: int = 128  # held-out preference pairs (reward accuracy)
    rl_queries_size: int = 512  # GRPO queries with a math reference
    heldout_size: int = 64  # held-out queries for evaluation
    jsonl: bool = False  # also write <output_dir>/<split>.jsonl

    def __post_init__(self) -> None:
        _require(isinstance(self.output_dir, str) and self.output_dir.strip() != "", "output_dir",
                 "a non-empty path", self.output_dir)
        for key in ("seed", "min_operand", "max_operand", *(f"{split}_size" for split in SPLITS)):
            value = getattr(self, key)
            _require(isinstance(value, int) and not isinstance(value, bool), key, "an integer", value)
            _require(key == "seed" or value >= 0, key, "a number >= 0", value)
        _require(self.max_operand >= self.min_operand, "max_operand",
                 f"a number >= min_operand ({self.min_operand})", self.max_operand)
        _require(self.max_operand <= 10**6, "max_operand", "at most 1000000", self.max_operand)
        _require_choices(self.ops, "ops", OPS, allow_empty=False)
        _require_choices(self.flaws, "flaws", FLAWS, allow_empty=self.preference_size + self.preference_eval_size == 0)
        fraction = self.two_step_fraction
        _require(isinstance(fraction, int | float) and not isinstance(fraction, bool) and 0 <= fraction <= 1,
                 "two_step_fraction", "a number between 0 and 1", fraction)
        self.two_step_fraction = float(fraction)
        _require(isinstance(self.jsonl, bool), "jsonl", "true or false", self.jsonl)

    def split_sizes(self) -> dict[str, int]:
        """Rows per split, in the order splits are drawn."""
        return {split: getattr(self, f"{split}_size") for split in SPLITS}


def _require(ok: bool, key: str, expected: str, value: object) -> None:
    if not ok:
        raise ValueError(f"config key {key!r}: expected {expected}, got {value!r}")


def _require_choices(values: object, key: str, choices: tuple[str, ...], allow_empty: bool) -> None:
    _require(isinstance(values, list) and all(isinstance(v, str) for v in values), key, "a list of names", values)
    unknown = [v for v in values if v not in choices]
    _require(not unknown, key, f"names from {list(choices)} (unknown: {unknown})", values)
    _require(len(set(values)) == len(values), key, "names without repeats", values)
    _require(allow_empty or bool(values), key, f"at least one of {list(choices)}", values)


def check_config_file(path: str | Path) -> None:
    """Refuse a YAML file with keys DataConfig does not have, naming the file and the keys.

    TrlParser refuses them too; this gives the message the file name and the list of valid keys.
    """
    with open(path) as f:
        try:
            values = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a YAML mapping of config keys, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(DataConfig)}
    unknown = sorted(set(values) - known - {"env"})
    if unknown:
        raise ValueError(f"{path}: unknown config key(s) {unknown}; valid keys: {sorted(known)}")


def parse_config(argv: list[str]) -> DataConfig:
    """DataConfig from `--config FILE` (YAML) and CLI overrides, like every stage's `TrlParser` config."""
    from trl import TrlParser

    if "--config" in argv and argv.index("--config") + 1 < len(argv):
        check_config_file(argv[argv.index("--config") + 1])
    (config,) = TrlParser(dataclass_types=[DataConfig]).parse_args_and_config(args=argv)
    return config
