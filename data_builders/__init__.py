"""Verified data builders: records that carry their own proof.

- `verifiers`: `verify(response, reference)`, rule-based checks dispatched on `reference["type"]`
- `records`: the SFT, preference and RL-query row schemas
- `config`: `DataConfig`, parsed by TRL's `TrlParser`
- `arithmetic`: the offline procedural builder, `build(config)`
- `writer`: `write(splits, output_dir, jsonl)`, atomic, with a manifest
- `python -m data_builders --config configs/data/tiny.yaml` runs them all
"""
