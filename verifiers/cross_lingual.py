"""Cross-lingual verifier: the response answers in the target language and agrees with the original's answer.

Reference: `{"type": "cross_lingual", "language": "sw", "answer": "15", "original": "...English task..."}`. The
tasks behind it (builders/cross_lingual.py) have language-independent answers (numbers, sorted lists, counts), so
semantic alignment with the original is checked exactly: the value after the target language's answer word
("Jibu:", "Réponse :") must equal the original task's answer. The response must also be written in that language:
at least `min_function_words` (default 2) distinct common function words of it, a cheap check that needs no
language-identification model and refuses an English reply to a Swahili prompt.
"""

import re

from verifiers.final_answer import same_answer, split_answer
from verifiers.result import VerifierResult

ANSWER_WORDS = {"en": "Answer", "fr": "Réponse", "es": "Respuesta", "de": "Antwort", "sw": "Jibu", "id": "Jawaban"}
FUNCTION_WORDS = {
    "en": {"the", "is", "and", "of", "are", "to", "in"},
    "fr": {"le", "la", "les", "est", "et", "de", "des", "sont", "du"},
    "es": {"el", "la", "los", "las", "es", "y", "de", "del", "son"},
    "de": {"der", "die", "das", "ist", "und", "von", "sind", "den"},
    "sw": {"ya", "na", "ni", "kwa", "za", "wa", "hii"},
    "id": {"yang", "dan", "adalah", "dari", "ini", "itu", "ada"},
}


def verify_cross_lingual(response: str, reference: dict) -> VerifierResult:
    language, expected = reference.get("language"), reference.get("answer")
    if language not in ANSWER_WORDS or not isinstance(expected, str):
        raise ValueError(f"cross_lingual reference needs language in {sorted(ANSWER_WORDS)} and a string answer, got "
                         f"{language!r}, {expected!r:.40}")
    _, given = split_answer(response, (ANSWER_WORDS[language],))
    if given is None:
        return VerifierResult("cross_lingual", False, 0.0, False,
                              {"failure": f"no '{ANSWER_WORDS[language]}:' line", "tag": "no answer line"})
    words = set(re.findall(r"\w+", response.lower()))
    found = sorted(words & FUNCTION_WORDS[language])
    needed = int(reference.get("min_function_words", 2))
    if len(found) < needed:
        return VerifierResult("cross_lingual", False, 0.0, True,
                              {"failure": f"not written in {language}: function words {found}",
                               "tag": "wrong language"})
    if not same_answer(given, expected):
        return VerifierResult("cross_lingual", False, 0.0, True,
                              {"failure": f"answer {given!r:.60} != original's {expected!r}", "extracted": given[:100],
                               "tag": "not aligned with the original"})
    return VerifierResult("cross_lingual", True, 1.0, True, {"extracted": given[:100], "expected": expected})
