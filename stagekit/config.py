"""Stage configs: one dataclass per stage, read from YAML with command-line overrides, refusing unknown keys.

Parsing is TRL's `TrlParser` (YAML defaults, then `--key value` overrides, unknown keys refused). This
module only turns its exceptions into one-line errors that name the key or file, and checks that the paths
a stage reads exist, so a bad config stops before any model is loaded. `cli_flags` is the way back: values
to the `--key value` words a stage's command line takes (the pipeline and the sweep launch stages with it).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from trl import TrlParser

from stagekit.errors import ConfigError

T = TypeVar("T")


def read_yaml_mapping(path: str | Path, what: str = "a YAML mapping of keys to values") -> dict:
    """The YAML file at `path` as a dict; ConfigError naming the file if it is missing, not YAML or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: must be {what}")
    return values


def parse_config(config_cls: type[T], argv: Sequence[str] | None = None) -> T:
    """Parse `--config FILE` plus overrides into `config_cls`; raise ConfigError with a readable message."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ConfigError("--config needs a YAML file path")
        path = Path(argv[i + 1])
        values = read_yaml_mapping(path)
        known = {f.name for f in dataclasses.fields(config_cls)} | {"env"}
        unknown = sorted(set(values) - known)
        if unknown:  # checked before the dataclass is built, so this error comes first
            raise ConfigError(f"{path}: unknown key(s) {unknown} for {config_cls.__name__}")
    _check_option_names(config_cls, argv)
    try:
        (cfg,) = TrlParser((config_cls,)).parse_args_and_config(argv)
    except SystemExit as e:  # argparse already printed "argument --key: invalid float value: ..."
        if e.code in (0, None):  # --help printed the usage: a clean exit, not an error
            raise
        raise ConfigError(f"invalid command-line or config value (see the message above), exit {e.code}") from e
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from e
    check_training_numbers(cfg)
    return cfg


# TrainingArguments fields that must be positive (a count of zero or less trains nothing)
_POSITIVE = ("per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs")


def check_training_numbers(cfg: object) -> None:
    """ConfigError naming the key for training numbers transformers accepts but that cannot mean anything:
    `max_steps` other than -1 (train by epochs) or a positive count (`--max_steps -3` used to train by epochs),
    a batch size, accumulation or epoch count of zero or less, and a negative learning rate (0 is allowed: a run
    that must not move the weights, as the online-merging test uses)."""
    max_steps = getattr(cfg, "max_steps", None)
    if isinstance(max_steps, int) and not (max_steps == -1 or max_steps > 0):
        raise ConfigError(f"`max_steps` must be -1 (train for num_train_epochs) or a positive count, got {max_steps}")
    for key in _POSITIVE:
        value = getattr(cfg, key, None)
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0:
            if key == "num_train_epochs" and isinstance(max_steps, int) and max_steps > 0:
                continue  # max_steps decides the length; epochs are not used
            raise ConfigError(f"`{key}` must be > 0, got {value}")
    learning_rate = getattr(cfg, "learning_rate", None)
    if isinstance(learning_rate, int | float) and learning_rate < 0:
        raise ConfigError(f"`learning_rate` must be >= 0, got {learning_rate}")


def _check_option_names(config_cls: type, argv: Sequence[str]) -> None:
    """Refuse `--key` options that are not fields, before argparse sees them.

    argparse accepts any unambiguous prefix of an option, so `--learning_rat 0.1` would silently set
    `learning_rate` and `--max_step 2` would set `max_steps`: a typo must be an error, as it is in the YAML.
    """
    names = {f.name for f in dataclasses.fields(config_cls)} | {"config", "help", "h"}
    names |= {name.replace("_", "-") for name in names}
    unknown = [
        arg.split("=", 1)[0]
        for arg in argv
        if arg.startswith("--") and len(arg) > 2 and arg[2:].split("=", 1)[0] not in names
    ]
    if unknown:
        raise ConfigError(f"unknown command-line option(s) {unknown} for {config_cls.__name__}")


def require_path(cfg: object, key: str, *, checkpoint: bool = False) -> Path:
    """The path in `cfg.<key>`, which must exist (and hold config.json when `checkpoint`)."""
    value = getattr(cfg, key)
    if value is None:
        raise ConfigError(f"{key} is required")
    path = Path(value)
    if not path.exists():
        raise ConfigError(f"{key}: {path} does not exist")
    if checkpoint and not (path / "config.json").is_file():
        raise ConfigError(f"{key}: {path} is not an HF checkpoint directory (no config.json)")
    return path


def run_cli(main, argv: Sequence[str] | None = None) -> None:
    """Run a stage's main; config errors end the process with the message and exit code 2, not a traceback."""
    try:
        main(argv)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def cli_flags(values: dict[str, Any]) -> list[str]:
    """{"beta": 0.05, "report_to": ["none"], "dca": {...}} -> ["--beta", "0.05", "--report_to", "none", "--dca", ...].

    Lists become one word per item (argparse's nargs), mappings a JSON object, floats their `repr` (round-trips
    exactly), anything else `str` (paths, ints, bools as True/False, which TrlParser reads back).
    """
    out: list[str] = []
    for key, value in values.items():
        out.append(f"--{key}")
        if isinstance(value, list | tuple):
            out.extend(_flag_value(v) for v in value)
        else:
            out.append(_flag_value(value))
    return out


def _flag_value(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)
