"""The passkey suite of `qwenpost eval` (long-context retrieval, Mohtashami & Jaggi 2023): a 5-digit number hidden
at evenly spread depths in repeated filler text, asked back at the end. Generated, no file: `--data` gives the prompt
lengths in tokens and optionally the items per length, `1024,4096x5` (default `1024,2048,4096x5`); prompts are
fitted to each length with the checkpoint's own tokenizer and chat template. `accuracy` and `accuracy@<length>`: the
first number in the answer is the passkey.
"""

from __future__ import annotations

import random
import re

from stagekit.config import ConfigError

# the passkey test's wording (Mohtashami & Jaggi 2023, as LongLoRA and others reuse it)
PASSKEY_TASK = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the important information there."
)
PASSKEY_FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
PASSKEY_NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key. "
PASSKEY_QUESTION = "What is the pass key? The pass key is"
PASSKEY_DEFAULT = "1024,2048,4096x5"


def parse_passkey_spec(spec: str) -> tuple[list[int], int]:
    """`"1024,4096x5"` -> ([1024, 4096], 5): prompt lengths in tokens and items per length (default 5)."""
    text = str(spec).strip()
    lengths_text, times, per_text = text.partition("x")
    try:
        lengths = [int(x) for x in lengths_text.split(",") if x.strip()]
        per_length = int(per_text) if times else 5
    except ValueError:
        raise ConfigError(
            f"--data {spec!r}: passkey expects prompt lengths in tokens, e.g. 1024,4096 or 1024,4096x5"
        ) from None
    if not lengths or min(lengths) < 64 or per_length < 1:
        raise ConfigError(f"--data {spec!r}: passkey lengths must be >= 64 tokens and items per length >= 1")
    return lengths, per_length


def load_passkey(spec) -> list[dict]:
    """Passkey items without prompts (`prepare_passkey` fits them to the tokenizer): seeded keys, spread depths."""
    lengths, per_length = parse_passkey_spec(spec)
    items = []
    for length in lengths:
        rng = random.Random(length)  # the same keys for a length whatever else is asked
        for i in range(per_length):
            key = rng.randint(10000, 99999)
            depth = (i + 0.5) / per_length  # where the needle sits, as a fraction of the filler
            items.append({"id": f"{length}-{i}", "length": length, "depth": round(depth, 4), "prompt": None,
                          "reference": {"type": "passkey", "passkey": str(key)}})  # fmt: skip
    return items


def passkey_prompt(tokenizer, length: int, depth: float, key: str) -> tuple[list[dict], int]:
    """Chat messages of at most `length` tokens (chat template included) hiding `key` at `depth`; and the count."""

    def build(n_fill: int) -> list[dict]:
        before = round(n_fill * depth)
        text = (f"{PASSKEY_TASK}\n\n{PASSKEY_FILLER * before}{PASSKEY_NEEDLE.format(key=key)}"
                f"{PASSKEY_FILLER * (n_fill - before)}\n\n{PASSKEY_QUESTION}")  # fmt: skip
        return [{"role": "user", "content": text}]

    def count(messages: list[dict]) -> int:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    fixed, one = count(build(0)), count(build(1))
    if fixed > length:
        raise ConfigError(f"--data: passkey length {length} is shorter than the bare prompt ({fixed} tokens)")
    n_fill = (length - fixed) // max(1, one - fixed)
    while n_fill > 0 and count(build(n_fill)) > length:  # filler boundaries may merge tokens: step back
        n_fill -= 1
    messages = build(n_fill)
    return messages, count(messages)


def prepare_passkey(items: list[dict], tokenizer) -> list[dict]:
    out = []
    for item in items:
        messages, n_tokens = passkey_prompt(tokenizer, item["length"], item["depth"], item["reference"]["passkey"])
        out.append({**item, "prompt": messages, "prompt_tokens": n_tokens})
    return out


def passkey_answer(answer: str) -> str | None:
    """The first number in an answer (digits, commas/spaces inside it dropped), or None."""
    match = re.search(r"\d[\d,]*", answer)
    return match.group().replace(",", "") if match else None


def score_passkey(items: list[dict], answers: list[str]) -> tuple[list[dict], dict]:
    """accuracy overall and per prompt length: the answer's first number is the passkey."""
    extracted = [passkey_answer(a) for a in answers]
    passed = [e == item["reference"]["passkey"] for e, item in zip(extracted, items, strict=True)]
    metrics: dict = {"n": len(items), "accuracy": sum(passed) / len(items)}
    for length in sorted({item["length"] for item in items}):
        hits = [p for p, item in zip(passed, items, strict=True) if item["length"] == length]
        metrics[f"accuracy@{length}"] = sum(hits) / len(hits)
    rows = [
        {"id": item["id"], "length": item["length"], "prompt_tokens": item.get("prompt_tokens"),
         "depth": item["depth"], "passkey": item["reference"]["passkey"], "response": answer, "extracted": e,
         "passed": p}
        for item, answer, e, p in zip(items, answers, extracted, passed, strict=True)
    ]  # fmt: skip
    return rows, metrics
