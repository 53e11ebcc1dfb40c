"""`qwenpost`: the project's command line.

    qwenpost pipeline --config configs/pipeline/tiny.yaml [--key value ...] [--dry_run true]
    qwenpost data build --config configs/data/verified_small.yaml [--key value ...]
    qwenpost sandbox run --language python FILE
    qwenpost verify --reference REF.json --response FILE
    qwenpost sweep configs/sweeps/dpo_beta.yaml [--dry_run] [--max_parallel N]
    qwenpost compare RUN_DIR... | SWEEP [--metrics M ...] [--out DIR] [--wandb]
    qwenpost plan --config STAGE_CONFIG [--accelerate_config FILE] [--gpus N] [--gpu_memory GIB]
    qwenpost eval --model CKPT --suite tiny_heldout|gsm8k|math|humaneval|mbpp|ifeval [--data FILE] [--limit N]

`pipeline` runs the whole recipe (data, base, SFT, reward model, reward service, DPO, GRPO, evaluation) and prints
one table; `data`, `sandbox` and `verify` are the data builders and the two commands for debugging verification;
`sweep`, `compare` and `eval` are the experiment tools: a grid or random search over any config key, a table and
plots of runs from their local metrics files (or wandb), and a checkpoint on a standard benchmark file. Each stage
can also be launched alone: `accelerate launch -m sft --config configs/sft/tiny.yaml`. Every command module is
imported only when its command runs, so `qwenpost verify` does not wait for torch.
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
  sweep         launch a grid or random search over any stage config key, resumable
                (qwenpost sweep configs/sweeps/dpo_beta.yaml [--dry_run])
  compare       final and best metrics per run (markdown) and PNG curves, from local files or wandb
                (qwenpost compare dpo_beta | qwenpost compare RUN_DIR RUN_DIR --metrics loss)
  plan          per-GPU memory of a training stage's step, term by term, and whether it fits
                (qwenpost plan --config configs/sft/qwen2.5-7b.yaml --accelerate_config configs/accelerate/zero3.yaml)
  eval          evaluate a checkpoint on tiny_heldout, gsm8k, math, humaneval, mbpp or ifeval
                (qwenpost eval --model runs/tiny/dpo --suite gsm8k --data test.jsonl --limit 100)
"""


def _pipeline(argv: list[str]) -> int:
    from pipeline.run import PipelineConfig, StageFailed, dry_run, run_pipeline
    from stagekit.config import ConfigError, parse_config

    try:
        cfg = parse_config(PipelineConfig, argv)
        if cfg.dry_run:
            return dry_run(cfg)
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
    from sandbox.cli import main as sandbox_run

    return sandbox_run(argv[1:])


def _verify(argv: list[str]) -> int:
    from verifiers.cli import main as verify

    return verify(argv)


def _sweep(argv: list[str]) -> int:
    from pipeline.sweep import main as sweep

    return sweep(argv)


def _compare(argv: list[str]) -> int:
    from pipeline.compare import main as compare

    return compare(argv)


def _plan(argv: list[str]) -> int:
    from pipeline.plan import main as plan

    return plan(argv)


def _eval(argv: list[str]) -> int:
    from evals.suites import main as evaluate

    return evaluate(argv)


COMMANDS = {
    "pipeline": _pipeline, "data": _data, "sandbox": _sandbox, "verify": _verify,
    "sweep": _sweep, "compare": _compare, "plan": _plan, "eval": _eval,
}  # fmt: skip


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
