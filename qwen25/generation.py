"""The one generation loop: chat prompts in, decoded completions out, batched, left-padded, on the model's device.

Every place that makes a model answer outside a trainer goes through `generate`: held-out evaluation and `qwenpost
eval` (greedy), GRPO's held-out reward curve (greedy, and k samples per query), the scoring pass that orders GRPO's
queries by reward variance (k samples per query, seeded), and the data builders' local-model generator. It is a
thin loop around transformers' `generate` (KV cache, our attention through `attn_implementation`); what it adds is
the chat rendering, the batching with a progress bar, left padding that does not touch the caller's tokenizer, and
seeding that makes a rerun sample the same completions.

Sampling is plain unless asked otherwise: `top_k=0` and `top_p=1.0` turn both filters off. `top_k=None` leaves
the value to the checkpoint's `generation_config` (transformers' default is 50).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: Sequence[Sequence[dict]],
    *,
    max_new_tokens: int,
    batch_size: int,
    samples: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = 0,
    seed: int | None = None,
    desc: str = "generate",
    progress: bool = True,
) -> list[str]:
    """Completions of chat `prompts` (lists of messages), in order.

    samples 0: one greedy completion per prompt. samples k >= 1: k sampled completions per prompt at `temperature`
    (with `top_p`, `top_k`), prompt-major (prompt 0's k completions first), so the result has len(prompts) * k
    entries. Sampling draws from the global torch RNG; with `seed` each batch first reseeds it from a stream seeded
    by `seed`, so a rerun (or a resumed run) samples the same completions whatever ran before. Callers that must not
    disturb the global RNG wrap the call in `torch.random.fork_rng()`.
    """
    if max_new_tokens < 1 or batch_size < 1 or samples < 0:
        raise ValueError(f"generate: need max_new_tokens, batch_size >= 1 and samples >= 0, got {max_new_tokens}, "
                         f"{batch_size}, {samples}")
    options: dict = {"do_sample": False}
    if samples:
        options = {"do_sample": True, "temperature": temperature, "top_p": top_p, "num_return_sequences": samples}
        if top_k is not None:
            options["top_k"] = top_k
    seeds = torch.Generator().manual_seed(seed) if seed is not None else None
    device = getattr(model, "device", None)
    answers: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, unit="batch", disable=not progress):
        chunk = prompts[start : start + batch_size]
        texts = [tokenizer.apply_chat_template(list(p), add_generation_prompt=True, tokenize=False) for p in chunk]
        batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        if device is not None:
            batch = batch.to(device)
        if seeds is not None:
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=seeds)))  # per-batch seed
        out = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **options)
        new_tokens = out[:, batch["input_ids"].shape[1] :]  # (batch * max(samples, 1), new) after the padded prompt
        answers.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return answers
