"""Word, sentence and capital-word counting for the instruction verifier, without NLTK.

IFEval counts words with NLTK's `RegexpTokenizer(r"\\w+")`, sentences with NLTK's punkt model and capital words
with `nltk.word_tokenize`. Punkt needs a data download this project cannot make (see NOTES.md), so the counts here
are small hand-written equivalents: words are runs of `\\w` exactly as in IFEval; sentences end at `.`, `!` or `?`
(runs of them, then closing quotes or brackets) followed by whitespace or the end of the text, unless the period
belongs to an abbreviation, an initial, a decimal number or an ellipsis inside a sentence, which is what punkt
learns from data; capital words are hyphen-joined runs of `\\w` split at apostrophes, as `word_tokenize` splits
"DON'T" into "DO" and "N'T". Every function is linear in the length of the text.
"""

import re

_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w+(?:-\w+)*")  # "COVID-19" and "STATE-OF-THE-ART" are one token each, as in word_tokenize

# A candidate sentence end: terminal punctuation, then closing quotes/brackets, then whitespace or the end. It
# starts only at the start of a run of punctuation and the runs are possessive, so a long run is scanned once.
_END = re.compile(r"(?<![.!?])[.!?]++[\"'”’)\]]*+(?=\s|$)")
# Words after which a period does not end a sentence (lower-cased, without the period).
# Words that also end sentences ("I said no.") are left out.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e cf al approx fig vol pp ph.d u.s u.k a.m p.m inc ltd corp "
    "jan feb apr jun jul aug sep sept oct nov dec capt lt sgt dept univ".split()
)
_LAST_WORD = re.compile(r"(?<!\w)([A-Za-z][A-Za-z.]*)$")
_LIST_NUMBER = re.compile(r"(?:^|\n)[ \t]*\d{1,3}$")


def count_words(text: str) -> int:
    """Number of `\\w+` runs, IFEval's word count: "don't stop-now" has 4 words."""
    return sum(1 for _ in _WORD.finditer(text))


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, in order; empty text has none.

    A line break alone does not end a sentence (punkt does not split there either), so a list without final
    periods counts as one sentence.
    """
    sentences = []
    start = 0
    for match in _END.finditer(text):
        if match.group(0).startswith(".") and not _ends_sentence(text, match.start(), match.end()):
            continue
        sentence = text[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _ends_sentence(text: str, dot: int, end: int) -> bool:
    """Whether the period(s) at `dot` end a sentence: not after an abbreviation, an initial or before lower case."""
    run = text[dot:end].rstrip("\"'”’)]")
    following = text[end : end + 40].lstrip()
    if len(run) >= 2 and following[:1].islower():  # "wait... and then": an ellipsis inside a sentence
        return False
    before = text[max(0, dot - 20) : dot]
    if _LIST_NUMBER.search(before):  # "2. Pears": a numbered-list marker at the start of a line
        return False
    word = _LAST_WORD.search(before)
    if word is None:
        return True
    token = word.group(1).lower()
    if token in _ABBREVIATIONS:
        return False
    if len(token) == 1 and word.group(1).isupper():  # an initial, "J. Smith", unless lower case or the end follows
        return not following[:1].isupper()
    return True


def count_sentences(text: str) -> int:
    """Number of sentences as `split_sentences` finds them."""
    return len(split_sentences(text))


def capital_words(text: str) -> list[str]:
    """Tokens written in all capitals ("NASA", "COVID-19", "I"), tokenised like `nltk.word_tokenize`."""
    tokens = []
    for match in _TOKEN.finditer(text.replace("’", "'")):
        token = match.group(0)
        if token.isupper():
            tokens.append(token)
    return tokens
