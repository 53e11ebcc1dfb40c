"""`qwenpost`: the project's command line.

    qwenpost pipeline --config configs/pipeline/tiny.yaml [--key value ...]

runs the whole recipe (data, base, SFT, reward model, reward service, DPO, GRPO, evaluation) and prints one
table. Each stage can also be launched alone: `accelerate launch -m sft --config configs/sft/tiny.yaml`.
"""

from __future__ import annotations

import sys

from pipeline.configs import ConfigError, parse_config

USAGE = """usage: qwenpost <command> [--config FILE] [--key value ...]

commands:
  pipeline   run every stage on one experiment and print the results table
             (qwenpost pipeline --config configs/pipeline/tiny.yaml)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command != "pipeline":
        print(f"qwenpost: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    from pipeline.run import PipelineConfig, StageFailed, run_pipeline

    try:
        cfg = parse_config(PipelineConfig, rest)
        run_pipeline(cfg)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"[qwenpost] {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
