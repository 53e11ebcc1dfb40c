"""Entry point of the reward stage: `python -m reward {train,serve,eval} --config FILE [--key value ...]`.

    python -m reward train --config configs/reward/tiny.yaml
    accelerate launch --config_file configs/accelerate/ddp.yaml -m reward train --config configs/reward/tiny.yaml
    python -m reward serve --config configs/reward/serve_tiny.yaml [--host 127.0.0.1 --port 8765]
    python -m reward eval --model runs/tiny/reward --reward_bench FILE [--eval_dataset_path DIR]

`train` fits the Bradley-Terry reward model (reward/train.py); `serve` starts the HTTP reward service
(reward/serve.py, reward/app.py); `eval` scores a checkpoint: pairwise accuracy per category/criterion and the
Reward Bench score (reward/evaluate.py). Any config key can be overridden on the command line (`--learning_rate 1e-5`).
"""

import sys

from stagekit.config import run_cli

USAGE = "usage: python -m reward {train,serve,eval} --config FILE [--key value ...]"
COMMANDS = ("train", "serve", "eval")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        got = f"got {argv[0]!r}" if argv else "no subcommand given"
        print(f"{USAGE}\nerror: expected subcommand 'train', 'serve' or 'eval', {got}", file=sys.stderr)
        return 2
    # each subcommand imports only its own module, so `serve` does not load TRL's trainers (startup time)
    if argv[0] == "train":
        from reward.train import main as command
    elif argv[0] == "serve":
        from reward.serve import main as command
    else:
        from reward.evaluate import main as command
    run_cli(command, argv[1:])  # a config error exits 2 with a one-line message
    return 0


if __name__ == "__main__":
    sys.exit(main())
