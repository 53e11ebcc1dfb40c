"""The shared layer (floor 1): what every stage, the evaluation and the orchestrator need, and nothing that knows a
stage. It imports no other package of this project (import-linter's layers contract in pyproject.toml).

- `config`: stage configs from YAML + command line (TRL's `TrlParser`), `ConfigError`, `cli_flags` (the way back)
- `atomic`: write, then rename: files, JSON, directories, datasets; fsync for checkpoints
- `stage_io`: record datasets a stage reads (`load_records`) and checkpoint discovery (`resume_checkpoint`)
- `checkpointing`: `atomic_checkpoints(trainer)`, checkpoints that appear complete or not at all
- `tracking`: wandb (offline unless configured) plus `metrics.jsonl`, `run_config.json`, `summary.json`
"""
