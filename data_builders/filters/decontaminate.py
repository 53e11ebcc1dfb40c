"""Decontamination against evaluation sets, with the report's rule (RECIPE.md): a training sample is dropped when
its longest common subsequence with a test sample is at least 13 tokens AND at least 0.6 x the shorter length.

Tokens are `verifiers.tokens.words` (lower-cased letter runs, digits, punctuation). The LCS is computed with
the bit-parallel algorithm of Hyyrö (2004; Allison & Dix 1986): one Python integer holds a bit per token of one
sequence, so a pair costs O(len_a x len_b / 64) machine operations instead of a dynamic-programming table; no
library on the stack computes a token-level LCS. Before any LCS, the multiset overlap of the two token sequences
(an upper bound of the LCS) is compared with what the rule needs, from an inverted index over the test samples, so
most pairs are never aligned.

Evaluation files: `.jsonl` / `.jsonl.gz` (the first present of prompt, question, problem, instruction, input, text,
or a `messages` list; several of them joined when present), `.parquet` (the same columns) or `.txt` (one sample
per non-blank line). A file or line without any of these is an error naming it.
"""

import math
from collections import Counter, defaultdict
from pathlib import Path

from data_builders.seeds import read_jsonl
from verifiers.tokens import words

MIN_TOKENS = 13  # RECIPE.md: at least 13 tokens ...
MIN_RATIO = 0.6  # ... and at least 0.6 x the shorter length
TEXT_FIELDS = ("prompt", "question", "problem", "instruction", "input", "text")


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel, exact)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(b):  # bit i of masks[t] is set where b[i] == t
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full  # zero bits of v mark the positions of b matched so far
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def needed(len_a: int, len_b: int, min_tokens: int = MIN_TOKENS, min_ratio: float = MIN_RATIO) -> int:
    """The smallest LCS the rule calls contamination for two samples of these lengths."""
    return max(min_tokens, math.ceil(min_ratio * min(len_a, len_b) - 1e-9))


def is_contaminated(train: list[str], test: list[str], min_tokens: int = MIN_TOKENS,
                    min_ratio: float = MIN_RATIO) -> bool:
    """The report's rule on one pair of token lists."""
    if min(len(train), len(test)) == 0:
        return False
    return lcs_length(train, test) >= needed(len(train), len(test), min_tokens, min_ratio)


def _sample_text(row: dict, where: str) -> str:
    if isinstance(row.get("messages"), list):
        return "\n".join(str(m.get("content", "")) for m in row["messages"] if isinstance(m, dict))
    parts = [row[f] for f in TEXT_FIELDS if isinstance(row.get(f), str) and row[f].strip()]
    if not parts:
        raise ValueError(f"{where}: no text field; expected one of {list(TEXT_FIELDS)} or 'messages'")
    return "\n".join(parts)


def read_eval_file(path: str | Path) -> list[str]:
    """The test samples of one evaluation file, as texts."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"filters.decontaminate.eval_files: file not found: {path}")
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        return [_sample_text(row.row, f"{path}:{row.line}") for row in read_jsonl(path)]
    if name.endswith(".parquet"):
        import pandas as pd

        frame = pd.read_parquet(path)
        return [_sample_text(row, f"{path} row {i}") for i, row in enumerate(frame.to_dict("records"))]
    if name.endswith(".txt"):
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    raise ValueError(f"filters.decontaminate.eval_files: {path}: expected .jsonl, .jsonl.gz, .parquet or .txt")


class Decontaminator:
    """Test samples indexed once; `match(text)` names the first test sample a training text is contaminated by."""

    def __init__(self, test_texts: list[str], min_tokens: int = MIN_TOKENS, min_ratio: float = MIN_RATIO) -> None:
        self.min_tokens, self.min_ratio = min_tokens, min_ratio
        self.tests = [words(t) for t in test_texts]
        self.index: dict[str, list[tuple[int, int]]] = defaultdict(list)  # token -> [(test, count)]
        for j, tokens in enumerate(self.tests):
            for token, count in Counter(tokens).items():
                self.index[token].append((j, count))
        self.aligned = 0  # pairs that needed an LCS (the overlap bound did not rule them out)

    def match(self, text: str) -> int | None:
        train = words(text)
        if len(train) < self.min_tokens:
            return None
        overlap: Counter = Counter()
        for token, count in Counter(train).items():
            for j, test_count in self.index.get(token, ()):
                overlap[j] += min(count, test_count)
        for j in sorted(overlap):
            test = self.tests[j]
            if overlap[j] < needed(len(train), len(test), self.min_tokens, self.min_ratio):
                continue
            self.aligned += 1
            if is_contaminated(train, test, self.min_tokens, self.min_ratio):
                return j
        return None
