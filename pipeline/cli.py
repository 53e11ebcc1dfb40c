"""`qwenpost`: the project's command line.

    qwenpost pipeline --config configs/pipeline/tiny.yaml [--key value ...]
    qwenpost data build --config configs/data/verified_small.yaml [--key value ...]
    qwenpost sandbox run --language python FILE
    qwenpost verify --reference REF.json --response FILE

`pipeline` runs the whole recipe (data, base, SFT, reward model, reward service, DPO, GRPO, evaluation) and prints
one table; the others are the data builders and the two commands for debugging verification. Each stage can also be
launched alone: `accelerate launch -m sft --config configs/sft/tiny.yaml`. Every command module is imported only
when its command runs, so `qwenpost verify` does not wait for torch.
"""

from __future__ import annotations

import sys

USAGE = """usage: qwenpost <command> [args]

commands:
  pipeline      run every stage on one experiment and print the results table
                (qwenpost pipeline --config configs/pipeline/tiny.yaml)
  data build    build the verified SFT, preference and RL-query datasets
                (qwenpost data build --config configs/data/verified_small.yaml)
  sandbox run   run a program in the sandbox and print the result as JSON
                (qwenpost sandbox run --language python FILE)
  verify        run the verifier named by a reference on a response and print the verdict as JSON
                (qwenpost verify --reference REF.json --response FILE)
"""


def _pipeline(argv: list[str]) -> int:
    from pipeline.configs import ConfigError, parse_config
    from pipeline.run import PipelineConfig, StageFailed, run_pipeline

    try:
        cfg = parse_config(PipelineConfig, argv)
        run_pipeline(cfg)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except StageFailed as e:
        print(f"[qwenpost] {e}", file=sys.stderr)
        return 1
    return 0


def _data(argv: list[str]) -> int:
    if not argv or argv[0] != "build":
        print("usage: qwenpost data build --config FILE [--key value ...]", file=sys.stderr)
        return 2
    from data_builders.__main__ import main as build

    return build(argv[1:])


def _sandbox(argv: list[str]) -> int:
    if not argv or argv[0] != "run":
        print("usage: qwenpost sandbox run --language L FILE", file=sys.stderr)
        return 2
    from data_builders.sandbox.cli import main as sandbox_run

    return sandbox_run(argv[1:])


def _verify(argv: list[str]) -> int:
    from data_builders.verifiers.cli import main as verify

    return verify(argv)


COMMANDS = {"pipeline": _pipeline, "data": _data, "sandbox": _sandbox, "verify": _verify}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"qwenpost: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return COMMANDS[command](rest)


if __name__ == "__main__":
    sys.exit(main())
