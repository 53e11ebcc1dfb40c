"""A local Hugging Face checkpoint as a generator: the project's generation loop over ChatML prompts.

Loads any checkpoint this project writes (or a real Qwen2.5 directory) with `qwen25.model.load_model` and
`qwen25.tokenizer.load_tokenizer`, and samples k continuations per prompt with `qwen25.generation.generate` (chat
template, left-padded batches, the same loop evaluation and GRPO use). For large runs, serve the model with vLLM and
use the OpenAI-compatible backend instead; this one is for the tiny checkpoints and for a quick look at a real one on
one machine.
"""

from collections.abc import Sequence

import torch

from generators.base import Candidate, Query
from qwen25.generation import generate
from qwen25.model import load_for_inference
from qwen25.tokenizer import load_tokenizer


class HFGenerator:
    """Samples k responses per query from a local checkpoint; `torch.manual_seed(seed)` once at construction.

    temperature 0 is greedy decoding (the k candidates are then one answer repeated); `top_k` None leaves it to the
    checkpoint's generation config.
    """

    name = "hf"

    def __init__(self, model_path: str, *, max_new_tokens: int = 256, temperature: float = 0.7, top_p: float = 1.0,
                 top_k: int | None = None, batch_size: int = 8, seed: int = 0, device: str = "auto",
                 dtype: str = "auto") -> None:
        if temperature < 0 or not 0 < top_p <= 1 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"hf generator: bad sampling settings temperature={temperature}, top_p={top_p}, "
                             f"max_new_tokens={max_new_tokens}, batch_size={batch_size}")
        self.tokenizer = load_tokenizer(model_path)
        self.model = load_for_inference(model_path, device=device, dtype=dtype)  # stagekit.device decides "auto"
        self.device = self.model.device
        self.max_new_tokens, self.temperature, self.top_p, self.top_k = max_new_tokens, temperature, top_p, top_k
        self.batch_size = batch_size
        torch.manual_seed(seed)

    def reseed(self, seed: int) -> None:
        """Restart sampling from `seed`: the scaled engine reseeds per chunk, so a chunk redone after a crash draws
        the same candidates."""
        torch.manual_seed(seed)

    def generate(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        prompts = [list(q.messages) for q in queries]
        sample = self.temperature > 0
        texts = generate(
            self.model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
            samples=k if sample else 0, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
            desc="hf generator", progress=False,
        )  # fmt: skip
        per_query = k if sample else 1
        counted = [Candidate(text, tokens=len(self.tokenizer(text, add_special_tokens=False).input_ids))
                   for text in texts]
        return [[candidate for candidate in counted[i * per_query : (i + 1) * per_query] * (k // per_query)]
                for i in range(len(queries))]
