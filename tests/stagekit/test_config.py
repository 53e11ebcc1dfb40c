"""Stage config parsing: a misspelt option is an error on the command line as it is in the YAML."""

import pytest

from sft.config import SFTStageConfig
from stagekit.config import ConfigError, parse_config


@pytest.mark.parametrize("option", ["--learning_rat", "--max_step", "--max_steps_typo", "--learning_rat=0.1"])
def test_misspelt_option_is_refused_not_taken_as_a_prefix(option):
    # argparse alone would read --learning_rat as --learning_rate and --max_step as --max_steps
    argv = [option] if "=" in option else [option, "0.1"]
    with pytest.raises(ConfigError, match=f"unknown command-line option.*{option.split('=')[0]}.*SFTStageConfig"):
        parse_config(SFTStageConfig, [*argv, "--use_cpu", "true"])


def test_exact_options_in_either_spelling_are_accepted(tmp_path):
    cfg = parse_config(SFTStageConfig, ["--learning-rate", "0.25", "--max_steps=3", "--use_cpu", "true",
                                        "--output_dir", str(tmp_path)])
    assert (cfg.learning_rate, cfg.max_steps) == (0.25, 3)


@pytest.mark.parametrize("flags, message", [
    (["--max_steps", "-3"], "`max_steps` must be -1"),
    (["--max_steps", "0"], "`max_steps` must be -1"),
    (["--learning_rate=-1e-5"], "`learning_rate` must be >= 0"),
    (["--per_device_train_batch_size", "0"], "`per_device_train_batch_size` must be > 0"),
    (["--num_train_epochs", "0"], "`num_train_epochs` must be > 0"),
])  # fmt: skip
def test_training_numbers_that_mean_nothing_are_config_errors(flags, message):
    """Issue 20: `--max_steps -3` was accepted and trained by epochs."""
    with pytest.raises(ConfigError, match=message):
        parse_config(SFTStageConfig, ["--use_cpu", "true", "--output_dir", "x", *flags])
    by_steps = ["--use_cpu", "true", "--output_dir", "x", "--max_steps", "3", "--num_train_epochs", "0"]
    assert parse_config(SFTStageConfig, by_steps).max_steps == 3  # epochs unused when max_steps decides
