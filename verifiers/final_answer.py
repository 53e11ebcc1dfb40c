"""The "reasoning, then `Answer: X`" response layout shared by the structured, logic and cross-lingual verifiers.

A response states its reasoning first and its final answer on the last line that starts with the answer marker
("Answer:", or the target language's word in cross-lingual tasks). `split_answer` returns (reasoning, answer);
`normalise` makes answers comparable (case, surrounding punctuation and spaces, thousands separators).
"""

import re

_SPACES = re.compile(r"\s+")


def split_answer(text: str, markers: tuple[str, ...] = ("Answer",)) -> tuple[str, str | None]:
    """(text before the last answer line, the answer after its marker), or (text, None) without an answer line."""
    pattern = re.compile(r"^[ \t]*\**(?:" + "|".join(re.escape(m) for m in markers) + r")\**[ \t]*:\**[ \t]*(.*)$",
                         re.IGNORECASE | re.MULTILINE)
    found = list(pattern.finditer(text))
    if not found:
        return text, None
    last = found[-1]
    return text[: last.start()], last.group(1).strip()


def normalise(answer: str) -> str:
    """Lower case, one space between words, no surrounding quotes, brackets or final period; "1,200" -> "1200"."""
    text = _SPACES.sub(" ", answer.strip().lower())
    text = text.strip(" \"'`*.()[]")
    return re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)


def as_number(answer: str) -> float | None:
    """The answer as a number ("12", "-3.50", "1,200", "3/4"), else None."""
    text = normalise(answer)
    try:
        if re.fullmatch(r"-?\d+/\d+", text):
            top, bottom = text.split("/")
            return int(top) / int(bottom) if int(bottom) else None
        return float(text)
    except ValueError:
        return None


def same_answer(given: str, expected: str) -> bool:
    """Equal as numbers (relative tolerance 1e-6) when both are numbers, else equal after `normalise`."""
    a, b = as_number(given), as_number(expected)
    if a is not None and b is not None:
        return abs(a - b) <= 1e-6 * max(1.0, abs(b))
    return normalise(given) == normalise(expected)


def reasoning_words(text: str) -> int:
    return len(re.findall(r"\w+", text))
