"""Verified data builders: records that carry their own proof.

- `verifiers`: `verify(response, reference)`, rule-based checks dispatched on `reference["type"]`
  (math, instruction, code, instruction_code, structured, json_schema, logic, long, cross_lingual)
- `sandbox`: `run` / `run_many`, the only place model-written code executes
- `generators`: the `Generator` protocol and its backends (procedural, local HF model, OpenAI-compatible HTTP)
- `builders`: one module per area (math, code, instruction, instruction_code, long, structured, logic,
  cross_lingual, system) and the rejection-sampling core
- `filters`: response filtering (verifiers + critic), MinHash near-duplicate removal, decontamination
- `mixture`: per-area weights of the SFT split, the counts and token-length report, mixture.png
- `tokens`: token counts (a local tokenizer or an approximation) for length limits, reports and decontamination
- `seeds`: loaders for GSM8K/MATH, MBPP/HumanEval and IFEval JSONL seed files
- `records`: the SFT, preference and RL-query row schemas
- `config`: `DataConfig`, parsed by TRL's `TrlParser`
- `arithmetic`: the offline procedural arithmetic builder of the tiny demo, `build(config)`
- `writer`: `write(splits, output_dir, jsonl)`, atomic, with a manifest
- `python -m data_builders --config FILE` (or `qwenpost data build --config FILE`) builds the arithmetic splits
  and every area listed under `areas`
"""
