"""`qwenpost plan`: per-GPU memory of a training stage's step, term by term, before launch (qwen25/memory_plan.py).

    qwenpost plan --config configs/sft/qwen2.5-7b.yaml --accelerate_config configs/accelerate/zero3.yaml \\
        --gpus 8 --gpu_memory 80

The stage comes from the config's directory (sft, dpo, grpo, reward) or `--stage`; the architecture from the
checkpoint the config names (its config.json), or `--model_config` (a config.json, a checkpoint directory or a
configs/model/*.yaml) when that checkpoint is not on this machine yet. Exits 0 when the step fits, 1 when it does
not (the plan says which setting to change), 2 on bad input. Loads no weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from qwen25.memory_plan import Architecture, Launch, Plan, plan, workload_from_stage

PLANNED_STAGES = ("sft", "reward", "dpo", "grpo")  # also the directory names of their configs
MODEL_KEY = "model_name_or_path"


def architecture_for(stage_cfg: dict, model_config, where: str) -> Architecture:
    """From `model_config` (a path, or a mapping / transformers config already in hand), else from the checkpoint
    the stage config names."""
    if model_config is not None and not isinstance(model_config, (str, Path)):
        return Architecture.from_config(model_config)
    source = model_config or stage_cfg.get(MODEL_KEY)
    if not source:
        raise ValueError(f"{where}: no {MODEL_KEY}; pass --model_config")
    path = Path(source)
    if not (path / "config.json").is_file() and not path.is_file():
        # not on this machine yet: the architecture named by the checkpoint directory or the experiment
        for name in (path.name.lower(), str(stage_cfg.get("experiment", "")).lower()):
            named = Path("configs/model") / f"{name}.yaml"
            if not model_config and name and named.is_file():
                return Architecture.from_config(named)
        raise ValueError(f"{where}: {source} has no config.json (the checkpoint is not here): pass --model_config "
                         "with a config.json or a configs/model/*.yaml")  # fmt: skip
    return Architecture.from_config(path)


def plan_stage(
    config: str | Path, *, stage: str | None = None, accelerate_config: str | None = None, gpus: int | None = None,
    gpu_memory: float = 80.0, model_config=None, overrides: dict | None = None,
) -> Plan:  # fmt: skip
    path = Path(config)
    cfg = {**(yaml.safe_load(path.read_text()) or {}), **(overrides or {})}
    stage = stage or (path.parent.name if path.parent.name in PLANNED_STAGES else None)
    if stage is None:
        raise ValueError(f"{config}: cannot tell the stage from its directory; pass --stage sft|dpo|grpo|reward")
    arch = architecture_for(cfg, model_config, str(config))
    launch = Launch.from_accelerate_config(accelerate_config, gpus)
    return plan(arch, workload_from_stage(stage, cfg, arch), launch, gpu_memory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qwenpost plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--config", required=True, help="a stage config (configs/sft|dpo|grpo|reward/*.yaml)")
    parser.add_argument("--accelerate_config", help="the accelerate config the stage launches with")
    parser.add_argument("--gpus", type=int, help="GPUs in all (default: the accelerate config's processes)")
    parser.add_argument("--gpu_memory", type=float, default=80.0, help="GiB per GPU (default 80)")
    parser.add_argument("--stage", choices=sorted(PLANNED_STAGES), help="default: from the config's directory")
    parser.add_argument("--model_config", help="config.json / checkpoint dir / configs/model/*.yaml")
    args = parser.parse_args(argv)
    try:
        result = plan_stage(args.config, stage=args.stage, accelerate_config=args.accelerate_config, gpus=args.gpus,
                            gpu_memory=args.gpu_memory, model_config=args.model_config)  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as e:
        print(f"qwenpost plan: {e}", file=sys.stderr)
        return 2
    print(result.render())
    return 0 if result.fits else 1


if __name__ == "__main__":
    sys.exit(main())
