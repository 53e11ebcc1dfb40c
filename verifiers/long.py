"""Long-generation verifier: a response must fit its output-length constraint and the 8,192-token limit.

Reference: `{"type": "long", "min_words": 400, "max_words": 600, "max_tokens": 8192, "tokenizer": null}`. Words are
IFEval's `\\w+` runs (`text.count_words`); tokens come from `verifiers.tokens.count_tokens` (a local tokenizer
when the reference names one, else the approximation). 8,192 is the report's longest SFT output (RECIPE.md).
"""

from verifiers.result import VerifierResult
from verifiers.text import count_words
from verifiers.tokens import count_tokens

MAX_TOKENS = 8192  # RECIPE.md: outputs up to 8,192 tokens


def verify_long(response: str, reference: dict) -> VerifierResult:
    low, high = reference.get("min_words"), reference.get("max_words")
    if not isinstance(low, int) or not isinstance(high, int) or not 0 <= low <= high:
        raise ValueError(f"long reference needs integers 0 <= min_words <= max_words, got {low!r}, {high!r}")
    limit = int(reference.get("max_tokens", MAX_TOKENS))
    words = count_words(response)
    tokens = count_tokens(response, reference.get("tokenizer"))
    details = {"words": words, "tokens": tokens, "min_words": low, "max_words": high, "max_tokens": limit}
    if tokens > limit:
        return VerifierResult("long", False, 0.0, True, {**details, "failure": f"{tokens} tokens > {limit}",
                                                          "tag": "over the token limit"})
    if not low <= words <= high:
        tag = "too short" if words < low else "too long"
        return VerifierResult("long", False, 0.0, True, {**details, "tag": tag,
                                                          "failure": f"{words} words, asked {low}-{high}"})
    return VerifierResult("long", True, 1.0, True, details)
