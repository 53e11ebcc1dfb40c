"""Token counts for length limits, the mixture report and decontamination, with or without a real tokenizer.

`count_tokens(text)` uses a local Hugging Face tokenizer when one is configured (`tokenizer: path/to/qwen2.5`, read
from disk only) and otherwise `approx_tokens`: runs of letters, single digits and single punctuation marks. The
approximation splits digits one by one as Qwen2.5's tokenizer does, and counts a word as one token where the real
BPE sometimes uses two or three, so it undercounts long rare words; every report that uses it says "approx.".
`words(text)` is the lower-cased token sequence the decontamination rule compares (shared/RECIPE.md gives the rule
in tokens without naming a tokenizer; ours are these, so the rule does not depend on which model is trained).
"""

import functools
import re

_TOKEN = re.compile(r"[^\W\d_]+|\d|[^\w\s]|_")


def approx_tokens(text: str) -> int:
    """Letters runs + single digits + single punctuation marks: "x=12.5" counts 6."""
    return sum(1 for _ in _TOKEN.finditer(text))


def words(text: str) -> list[str]:
    """Lower-cased tokens (letter runs, digits, punctuation), the unit of the decontamination rule."""
    return [m.group(0).lower() for m in _TOKEN.finditer(text)]


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"tokenizer {path!r}: cannot load a local Hugging Face tokenizer there ({exc})") from exc


def count_tokens(text: str, tokenizer: str | None = None) -> int:
    """Tokens of `text` under the tokenizer at `tokenizer` (a local directory), else `approx_tokens`."""
    if tokenizer is None:
        return approx_tokens(text)
    return len(_tokenizer(tokenizer)(text, add_special_tokens=False)["input_ids"])
