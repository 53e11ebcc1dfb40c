"""The orchestrator (floor 6, the top): `qwenpost` and what it runs across stages.

- `cli`: the `qwenpost` command (pipeline, data build, sandbox run, verify, sweep, compare, eval)
- `stages`: the one stage registry: module, subcommand, config class, finished marker, launch command
- `run`: `qwenpost pipeline`, every stage as a real process on one experiment, then the evaluation table
- `sweep`: `qwenpost sweep`, a grid or random search over any stage's config keys, resumable
- `compare`: `qwenpost compare`, final and best metrics per run and their curves, from local files or wandb

Nothing below imports this package (import-linter's layers contract in pyproject.toml).
"""
