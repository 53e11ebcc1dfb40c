"""The one generation loop against transformers' own `generate`, prompt by prompt: batching and left padding change
nothing; samples come prompt-major; a seed makes sampling repeat whatever ran before; the tokenizer is left as it
was."""

from __future__ import annotations

import pytest
import torch

from qwen25.generation import generate
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer

PROMPTS = [
    [{"role": "user", "content": "Sam has 3 apples and gets 4 more. How many?"}],
    [{"role": "user", "content": "2 + 2?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Mia had 9 pens and gave away 5. Left?"}],
]


@pytest.fixture(scope="module")
def model_and_tokenizer(micro_base):
    return load_model(micro_base).eval(), load_tokenizer(micro_base)


def _alone(model, tokenizer, prompt, **options) -> list[str]:
    """transformers' generate on one unpadded prompt: the reference the batched loop must match."""
    text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=6,
                         pad_token_id=tokenizer.pad_token_id, **options)
    return tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)


def test_greedy_batched_left_padded_equals_each_prompt_alone(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    side = tokenizer.padding_side
    answers = generate(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=2, progress=False)
    expected = [_alone(model, tokenizer, p, do_sample=False)[0] for p in PROMPTS]
    assert answers == expected and len(answers) == 3
    assert tokenizer.padding_side == side  # padding is asked per call, the caller's tokenizer is untouched


def test_seeded_sampling_repeats_and_is_prompt_major(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    options = dict(max_new_tokens=6, batch_size=2, samples=3, temperature=1.5, seed=7, progress=False)
    first = generate(model, tokenizer, PROMPTS, **options)
    torch.manual_seed(123)  # the global RNG's state before the call does not matter with a seed
    torch.rand(5)
    assert generate(model, tokenizer, PROMPTS, **options) == first
    assert len(first) == 9
    assert generate(model, tokenizer, PROMPTS, **{**options, "seed": 8}) != first
    # prompt-major: the first batch (prompts 0 and 1) sampled alone with the same per-batch seed gives entries 0-5
    seeds = torch.Generator().manual_seed(7)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=seeds)))
    text = [tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in PROMPTS[:2]]
    batch = tokenizer(text, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    out = model.generate(**batch, max_new_tokens=6, pad_token_id=tokenizer.pad_token_id, do_sample=True,
                         temperature=1.5, top_p=1.0, top_k=0, num_return_sequences=3)
    assert tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True) == first[:6]


@pytest.mark.parametrize("bad", [{"max_new_tokens": 0}, {"batch_size": 0}, {"samples": -1}])
def test_bad_settings_are_refused(model_and_tokenizer, bad):
    model, tokenizer = model_and_tokenizer
    with pytest.raises(ValueError, match="generate"):
        generate(model, tokenizer, PROMPTS, **{"max_new_tokens": 4, "batch_size": 2, **bad})
