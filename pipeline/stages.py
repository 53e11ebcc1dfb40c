"""The one stage registry: how the orchestrator (the pipeline and the sweep) names, parses and launches each stage.

A stage is a package run as a module, the way a user runs it: `accelerate launch -m <module> <prefix> --config
FILE --key value ...` for the training stages, plain `python -m <module> ...` for the rest. Each entry names the
module, the words before the config (`reward train`, `online_rl score`), the config class that parses its command
line (so a wrong key stops everything before any work starts) and the file a finished run leaves behind.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from data_builders.config import DataConfig
from offline_rl.config import DPOStageConfig
from online_rl.config import GRPOStageConfig
from qwen25.init import InitConfig
from reward.config import RewardTrainConfig, ServeConfig
from sft.config import SFTStageConfig
from stagekit.config import ConfigError, parse_config


@dataclass(frozen=True)
class Stage:
    name: str  # the key in a pipeline's stage_overrides and a sweep file's `stage`
    module: str  # run with `-m`
    prefix: tuple[str, ...]  # words before `--config` (a subcommand)
    config: type  # the dataclass that parses the stage's command line
    done: str | None = "summary.json"  # a run directory holding this file is finished (sweeps skip it)
    accelerate: bool = True  # launched by `accelerate launch` (training stages) or plain `python -m`

    def command(self, args: list[str], *, accelerate_config: str | Path | None = None) -> list[str]:
        """The command a user would type for this stage with `args` (`--config FILE --key value ...`)."""
        if self.accelerate:
            return [
                sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
                "-m", self.module, *self.prefix, *args,
            ]  # fmt: skip
        return [sys.executable, "-m", self.module, *self.prefix, *args]

    def parse(self, args: list[str]):
        """The stage's config from `args`; ConfigError naming the stage and the key that is wrong."""
        try:
            return parse_config(self.config, args)
        except ConfigError as e:
            config = args[args.index("--config") + 1] if "--config" in args else "no config file"
            raise ConfigError(f"{self.name} stage ({config}): {e}") from e


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("data", "data_builders", (), DataConfig, done="manifest.json", accelerate=False),
        Stage("base", "qwen25", ("init",), InitConfig, done="config.json", accelerate=False),
        Stage("sft", "sft", (), SFTStageConfig),
        Stage("reward", "reward", ("train",), RewardTrainConfig),
        Stage("serve", "reward", ("serve",), ServeConfig, done=None, accelerate=False),
        Stage("dpo", "offline_rl", (), DPOStageConfig),
        Stage("score", "online_rl", ("score",), GRPOStageConfig, done=None, accelerate=False),
        Stage("grpo", "online_rl", (), GRPOStageConfig),
    )
}
