"""Evaluation (floor 5): checkpoints on held-out queries and on standard benchmark files.

- `heldout`: `evaluate_checkpoint`, the pipeline's table (accuracy, format rate, mean service reward)
- `suites`: `qwenpost eval --model CKPT --suite NAME` (tiny_heldout, gsm8k, math, humaneval, mbpp, ifeval, passkey)
- `passkey`: the generated long-context retrieval suite

Answers come from `qwen25.generation.generate` and verdicts from `verifiers.verify_many`, the same loop and
verifiers GRPO's held-out curve uses, so a number here and a number in a training log mean the same thing.
"""
