"""Verified data builders (a stage, floor 4): records that carry their own proof.

Every candidate is checked by the `verifiers` package (floor 3; code runs in the `sandbox` package) before it
becomes a row; the rows' `reference` is what the reward service and GRPO check responses with later.

- `generators`: the `Generator` protocol and its backends (procedural, local HF model, OpenAI-compatible HTTP)
- `builders`: one module per area (math, code, instruction, instruction_code, long, structured, logic,
  cross_lingual, system) and the rejection-sampling core
- `filters`: response filtering (verifiers + critic), MinHash near-duplicate removal, decontamination
- `mixture`: per-area weights of the SFT split, the counts and token-length report, mixture.png
- `seeds`: loaders for GSM8K/MATH, MBPP/HumanEval and IFEval JSONL seed files
- `records`: the SFT, preference and RL-query row schemas
- `config`: `DataConfig` (parsed by `stagekit.config.parse_config`)
- `arithmetic`: the offline procedural arithmetic builder of the tiny demo, `build(config)`
- `writer`: `write(splits, output_dir, jsonl)`, atomic, with a manifest
- `python -m data_builders --config FILE` (or `qwenpost data build --config FILE`) builds the arithmetic splits
  and every area listed under `areas`
"""
