"""A local Hugging Face checkpoint as a generator: batched `generate` over ChatML prompts.

Loads any checkpoint this project writes (or a real Qwen2.5 directory) with `qwen25.model.load_model` and
`qwen25.tokenizer.load_tokenizer`, renders each prompt with the tokenizer's chat template and the generation
prompt, left-pads a batch, and samples k continuations per prompt with `num_return_sequences=k`. For large runs,
serve the model with vLLM and use the OpenAI-compatible backend instead; this one is for the tiny checkpoints and
for a quick look at a real one on one machine.
"""

from collections.abc import Sequence

from data_builders.generators.base import Candidate, Query


class HFGenerator:
    """Samples k responses per query from a local checkpoint; `torch.manual_seed(seed)` once at construction."""

    name = "hf"

    def __init__(self, model_path: str, *, max_new_tokens: int = 256, temperature: float = 0.7, top_p: float = 1.0,
                 batch_size: int = 8, seed: int = 0, device: str | None = None) -> None:
        import torch

        from qwen25.model import load_model
        from qwen25.tokenizer import load_tokenizer

        if temperature < 0 or not 0 < top_p <= 1 or max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"hf generator: bad sampling settings temperature={temperature}, top_p={top_p}, "
                             f"max_new_tokens={max_new_tokens}, batch_size={batch_size}")
        self.torch = torch
        self.tokenizer = load_tokenizer(model_path)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.model = load_model(model_path, dtype=dtype).to(self.device).eval()
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.batch_size = batch_size
        torch.manual_seed(seed)

    def _prompts(self, queries: Sequence[Query]) -> list[str]:
        return [self.tokenizer.apply_chat_template(list(q.messages), tokenize=False, add_generation_prompt=True)
                for q in queries]

    def generate(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out: list[list[Candidate]] = []
        sample = self.temperature > 0
        for start in range(0, len(queries), self.batch_size):
            texts = self._prompts(queries[start : start + self.batch_size])
            batch = self.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                                   add_special_tokens=False).to(self.device)
            kwargs = {"do_sample": sample, "num_return_sequences": k, "max_new_tokens": self.max_new_tokens,
                      "pad_token_id": self.tokenizer.pad_token_id}
            if sample:
                kwargs.update(temperature=self.temperature, top_p=self.top_p)
            with self.torch.no_grad():
                sequences = self.model.generate(**batch, **kwargs)  # (batch * k, prompt_len + new_len)
            new_tokens = sequences[:, batch["input_ids"].shape[1] :]  # (batch * k, new_len)
            decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i in range(len(texts)):
                out.append([Candidate(text) for text in decoded[i * k : (i + 1) * k]])
        return out
