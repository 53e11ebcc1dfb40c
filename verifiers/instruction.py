"""Instruction-following verifier: IFEval's verifiable constraints, checked, described and sampled.

Reference, either of:
- `{"type": "instruction", "constraints": [{"kind": "length_constraints:number_words", "relation": "less than",
  "num_words": 50}, {"kind": "max_words", "value": 50}, ...], "prompt": "...", "mode": "strict"}`;
- IFEval's own record: `{"type": "instruction", "instruction_id_list": [...], "kwargs": [{...}, ...],
  "prompt": "..."}` (see `ifeval.load_ifeval_jsonl`), so IFEval prompts are evaluated unchanged.
`"mode": "loose"` is IFEval's loose score: a constraint also passes when the response passes with its first line,
last line or both removed, or with every `*` removed. `prompt` is what `combination:repeat_prompt` compares against
when its kwargs carry no `prompt_to_repeat`.

The constraints are re-implemented rather than imported: IFEval (google-research `instruction_following_eval`) is
not published as a library and needs NLTK's punkt data, which cannot be downloaded here; `text.py` holds the
NLTK-free counting. The ids, kwarg names, instruction phrasing and pass/fail semantics follow IFEval's
`instructions.py`, with these deliberate differences:
- keywords, forbidden words, section splitters and postscript markers are matched literally (IFEval passes them to
  `re` unescaped, so "c++" would raise there); keyword existence and frequency still match inside longer words
  ("the" counts in "there") and ignore case, as IFEval does;
- `multi-turn:constrained_start`, disabled in IFEval's registry, is kept as "the response starts with `starter`"
  (IFEval's draft accepted the starter at the start of any line);
- kwargs are validated: an unknown id, a missing or unknown kwarg, or a value of the wrong type raises ValueError
  naming the constraint and the key, where IFEval would draw a random value; kwargs whose value is null (as in the
  Hugging Face copy of IFEval) are dropped first.
An empty or blank response fails every constraint, as in IFEval's evaluation.

For data builders: `CONSTRAINTS` maps each id to a `Constraint` with `check`, `describe` (IFEval's wording),
`kwargs` (the schema: names, types, choices, sampling ranges; `SCHEMA` has names and types of all) and
`sample_kwargs(rng)` (IFEval's random ranges); `CONFLICTS` lists pairs IFEval never combines in one prompt;
`describe_constraint({"kind": ..., ...})` phrases a reference entry, aliases included.
"""

import functools
import json
import random
import re
import string
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from verifiers.result import VerifierResult
from verifiers.text import capital_words, count_sentences, count_words

NAME = "instruction"
RELATIONS = ("less than", "at least")
MODES = ("strict", "loose")

# IFEval's response languages (ISO 639-1 code -> name used in the instruction text).
LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "ar": "Arabic", "hi": "Hindi", "fr": "French",
    "ru": "Russian", "de": "German", "ja": "Japanese", "it": "Italian", "bn": "Bengali", "uk": "Ukrainian",
    "th": "Thai", "ur": "Urdu", "ta": "Tamil", "te": "Telugu", "bg": "Bulgarian", "ko": "Korean", "pl": "Polish",
    "he": "Hebrew", "fa": "Persian", "vi": "Vietnamese", "ne": "Nepali", "sw": "Swahili", "kn": "Kannada",
    "mr": "Marathi", "gu": "Gujarati", "pa": "Punjabi", "ml": "Malayalam", "fi": "Finnish",
}
# Every code langdetect 1.0.9 can return; a response language outside this set could never be detected.
LANGDETECT_CODES = frozenset(
    "af ar bg bn ca cs cy da de el en es et fa fi fr gu he hi hr hu id it ja kn ko lt lv mk ml mr ne nl no pa pl "
    "pt ro ru sk sl so sq sv sw ta te th tl tr uk ur vi zh-cn zh-tw".split()
)
CONSTRAINED_RESPONSE_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
STARTER_OPTIONS = (
    "I would say", "My answer is", "I believe", "In my opinion", "I think", "I reckon", "I feel",
    "From my perspective", "As I see it", "According to me", "As far as I'm concerned", "To my understanding",
    "In my view", "My take on it is", "As per my perception",
)
ENDING_OPTIONS = ("Any other questions?", "Is there anything else I can help with?")
POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")
SECTION_SPLITTERS = ("Section", "SECTION")
# Words to draw keywords from when a builder samples kwargs (common, unambiguous English nouns and adjectives).
KEYWORD_POOL = (
    "river", "garden", "window", "market", "engine", "winter", "budget", "coffee", "planet", "teacher", "bridge",
    "forest", "music", "history", "energy", "kitchen", "island", "letter", "science", "travel", "health", "weather",
    "language", "journey", "station", "village", "doctor", "camera", "mountain", "ocean", "library", "holiday",
    "network", "picture", "software", "chocolate", "bicycle", "morning", "freedom", "pattern", "balance", "memory",
    "student", "product", "theory", "summer", "question", "animal", "shadow", "silver", "crystal", "harbor",
    "orange", "signal", "lantern", "canvas", "festival", "compass", "rhythm", "quiet", "bright", "gentle",
)


@dataclass(frozen=True)
class Kwarg:
    """One keyword argument of a constraint: its IFEval name and what values it takes."""

    name: str
    type: str  # "int", "str" or "list[str]"
    choices: tuple[str, ...] = ()  # the only allowed values of a str kwarg, when the set is closed
    low: int = 0  # smallest allowed int
    sample_range: tuple[int, int] | None = None  # IFEval's range when an int is drawn at random (inclusive)
    required: bool = True
    max_length: int = 0  # longest allowed str value; 0: any length


@dataclass(frozen=True)
class Constraint:
    """A verifiable instruction: `check(response, kwargs, prompt)`, `describe(kwargs)`, `sample_kwargs(rng)`."""

    id: str
    kwargs: tuple[Kwarg, ...]
    _check: Callable[[str, dict, str], bool] = field(repr=False)
    _describe: Callable[[dict], str] = field(repr=False)
    _sample: Callable[[random.Random, str], dict] = field(repr=False)

    @property
    def kwarg_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kwargs)

    @property
    def schema(self) -> dict[str, str]:
        """Kwarg name -> type name, e.g. {"num_words": "int", "relation": "str"}."""
        return {k.name: k.type for k in self.kwargs}

    def validate(self, kwargs: dict | None) -> dict:
        """`kwargs` checked and normalised (null values dropped, integral floats made ints, strings stripped).

        Raises ValueError naming this constraint and the offending key.
        """
        if not isinstance(kwargs or {}, dict):
            raise ValueError(f"{self.id}: kwargs must be an object, got {type(kwargs).__name__}")
        given = {key: value for key, value in (kwargs or {}).items() if value is not None}
        unknown = sorted(set(given) - set(self.kwarg_names))
        if unknown:
            raise ValueError(f"{self.id}: unknown kwarg {unknown[0]!r}; expected {list(self.kwarg_names)}")
        clean = {}
        for spec in self.kwargs:
            if spec.name not in given:
                if spec.required:
                    raise ValueError(f"{self.id}: missing kwarg {spec.name!r}")
                continue
            clean[spec.name] = _coerce(self.id, spec, given[spec.name])
        return clean

    def check(self, response: str, kwargs: dict | None = None, prompt: str = "") -> bool:
        """Whether `response` follows this instruction; a blank response never does."""
        clean = self.validate(kwargs)
        if not isinstance(response, str) or not response.strip():
            return False
        return bool(self._check(response, clean, prompt))

    def describe(self, kwargs: dict | None = None) -> str:
        """The instruction as IFEval words it, e.g. "Answer with less than 50 words."."""
        return self._describe(self.validate(kwargs))

    def sample_kwargs(self, rng: random.Random, prompt: str = "") -> dict:
        """Random kwargs drawn as IFEval's `build_description` draws them; `prompt` feeds repeat_prompt."""
        return self.validate(self._sample(rng, prompt))


def _coerce(constraint_id: str, spec: Kwarg, value: object) -> object:
    """One kwarg value checked against its spec; raises ValueError naming the constraint and key."""
    where = f"{constraint_id}: kwarg {spec.name!r}"
    if spec.type == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        if value < spec.low:
            raise ValueError(f"{where} must be at least {spec.low}, got {value}")
        return value
    if spec.type == "list[str]":
        if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
            raise ValueError(f"{where} must be a non-empty list of strings, got {value!r}")
        items = []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise ValueError(f"{where} must hold non-empty strings, got {item!r}")
            items.append(item.strip())
        return items
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where} must be a non-empty string, got {value!r}")
    value = value.strip()
    if spec.max_length and len(value) > spec.max_length:
        raise ValueError(f"{where} must be at most {spec.max_length} character(s) long, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{where} must be one of {list(spec.choices)}, got {value!r}")
    return value


def _compare(count: int, relation: str, threshold: int) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


_LANGDETECT_LOCK = threading.Lock()


@functools.cache
def _langdetect():
    """langdetect, seeded and with its language profiles loaded once (under a lock: callers use thread pools)."""
    with _LANGDETECT_LOCK:
        import langdetect
        from langdetect import DetectorFactory
        from langdetect.detector_factory import init_factory

        DetectorFactory.seed = 0  # langdetect samples n-grams at random; a fixed seed makes a verdict repeatable
        init_factory()
    return langdetect


def detect_language(text: str) -> str | None:
    """langdetect's language code for `text` ("en", "fr", "zh-cn"), or None when it finds no features."""
    langdetect = _langdetect()
    try:
        return langdetect.detect(text)
    except langdetect.LangDetectException:
        return None


def _language_is(text: str, code: str) -> bool:
    """IFEval's language test: an undetectable text counts as following the instruction."""
    detected = detect_language(text)
    return detected is None or detected == code


# --- the checks, one per IFEval instruction (kwargs already validated) ---------------------------------------------


def _keywords_exist(response: str, kw: dict, prompt: str) -> bool:
    return all(re.search(re.escape(word), response, flags=re.IGNORECASE) for word in kw["keywords"])


def _keyword_frequency(response: str, kw: dict, prompt: str) -> bool:
    count = len(re.findall(re.escape(kw["keyword"]), response, flags=re.IGNORECASE))
    return _compare(count, kw["relation"], kw["frequency"])


def _no_forbidden_words(response: str, kw: dict, prompt: str) -> bool:
    return not any(
        re.search(r"\b" + re.escape(word) + r"\b", response, flags=re.IGNORECASE) for word in kw["forbidden_words"]
    )


def _letter_frequency(response: str, kw: dict, prompt: str) -> bool:
    """Occurrences of one character, ignoring case; IFEval's data also counts "#" and "!" this way."""
    return _compare(Counter(response.lower())[kw["letter"].lower()], kw["let_relation"], kw["let_frequency"])


def _response_language(response: str, kw: dict, prompt: str) -> bool:
    return _language_is(response, kw["language"])


def _number_sentences(response: str, kw: dict, prompt: str) -> bool:
    return _compare(count_sentences(response), kw["relation"], kw["num_sentences"])


def _number_paragraphs(response: str, kw: dict, prompt: str) -> bool:
    """Paragraphs split by the markdown divider `***`; an empty paragraph between two dividers fails."""
    paragraphs = re.split(r"\s?\*\*\*\s?", response)
    count = len(paragraphs)
    for index, paragraph in enumerate(paragraphs):
        if not paragraph.strip():
            if index in (0, len(paragraphs) - 1):
                count -= 1
            else:
                return False
    return count == kw["num_paragraphs"]


def _number_words(response: str, kw: dict, prompt: str) -> bool:
    return _compare(count_words(response), kw["relation"], kw["num_words"])


def _nth_paragraph_first_word(response: str, kw: dict, prompt: str) -> bool:
    """Paragraphs split by a blank line ("\\n\\n"); their count and the first word of paragraph `nth_paragraph`."""
    paragraphs = response.split("\n\n")
    count = sum(1 for paragraph in paragraphs if paragraph.strip())
    nth = kw["nth_paragraph"]
    if nth > count:
        return False
    paragraph = paragraphs[nth - 1].strip()  # IFEval indexes the raw split, empty pieces included
    if not paragraph:
        return False
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    first_word = ""
    for letter in word:
        if letter in ".,?!'\"":
            break
        first_word += letter.lower()
    return count == kw["num_paragraphs"] and first_word == kw["first_word"].lower()


def _number_placeholders(response: str, kw: dict, prompt: str) -> bool:
    return count_placeholders(response) >= kw["num_placeholders"]


def count_placeholders(text: str) -> int:
    """Matches of IFEval's `\\[.*?\\]`, counted in one pass (the regex is quadratic on a line of unclosed "[").

    On each line, a placeholder runs from a "[" to the first "]" after it; when a "[" has no "]" after it on its
    line, neither has any later "[" of that line.
    """
    count = 0
    for line in text.split("\n"):
        start = line.find("[")
        while start != -1:
            end = line.find("]", start + 1)
            if end == -1:
                break
            count += 1
            start = line.find("[", end + 1)
    return count


def _postscript(response: str, kw: dict, prompt: str) -> bool:
    """A postscript marker anywhere ("P.S.", "p. s.", "P.P.S" with optional spaces after the dots)."""
    text = response.lower()
    marker = kw["postscript_marker"]
    if marker == "P.P.S":
        pattern = r"p\.\s?p\.\s?s"
    elif marker == "P.S.":
        pattern = r"p\.\s?s\."
    else:
        pattern = re.escape(marker.lower())
    return re.search(pattern, text) is not None


# A markdown bullet: a line starting with "*" (not "**") or "-". `[^\S\n]*` rather than IFEval's `\s*` keeps the
# scan linear on long runs of blank lines; the count is the same (a match that starts on a blank line would
# run on into the bullet line it is counted for).
_STAR_BULLET = re.compile(r"^[^\S\n]*\*[^*].*$", flags=re.MULTILINE)
_DASH_BULLET = re.compile(r"^[^\S\n]*-.*$", flags=re.MULTILINE)


def _number_bullet_lists(response: str, kw: dict, prompt: str) -> bool:
    return len(_STAR_BULLET.findall(response)) + len(_DASH_BULLET.findall(response)) == kw["num_bullets"]


def _constrained_response(response: str, kw: dict, prompt: str) -> bool:
    text = response.strip()
    return any(option in text for option in CONSTRAINED_RESPONSE_OPTIONS)


def _highlighted_sections(response: str, kw: dict, prompt: str) -> bool:
    """`*highlighted*` and `**bold**` spans with some text inside (a bold span counts once per pattern)."""
    count = sum(1 for h in re.findall(r"\*[^\n*]*\*", response) if h.strip("*").strip())
    count += sum(1 for h in re.findall(r"\*\*[^\n*]*\*\*", response) if h[2:-2].strip())
    return count >= kw["num_highlights"]


def _multiple_sections(response: str, kw: dict, prompt: str) -> bool:
    pattern = r"\s?" + re.escape(kw["section_spliter"]) + r"\s?\d+\s?"
    return len(re.split(pattern, response)) - 1 >= kw["num_sections"]


def _json_format(response: str, kw: dict, prompt: str) -> bool:
    """The whole response parses as JSON, optionally inside one markdown code fence."""
    text = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        if text.startswith(fence):
            text = text[len(fence) :]
            break
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        return False
    return True


def _title(response: str, kw: dict, prompt: str) -> bool:
    """A `<<title>>` with some text in it: IFEval's `<<[^\\n]+>>`, found in one pass per line.

    On a line the regex matches once, greedily, from the first "<<" to the last ">>" at least one character
    later; scanning for that directly avoids the regex's quadratic backtracking on long runs of "<".
    """
    for line in response.split("\n"):
        start = line.find("<<")
        end = line.rfind(">>")
        if start != -1 and end >= start + 3 and line[start : end + 2].lstrip("<").rstrip(">").strip():
            return True
    return False


def _two_responses(response: str, kw: dict, prompt: str) -> bool:
    """Exactly two different, non-empty responses separated by "******"."""
    valid = []
    parts = response.split("******")
    for index, part in enumerate(parts):
        if not part.strip():
            if index not in (0, len(parts) - 1):
                return False
        else:
            valid.append(part)
    return len(valid) == 2 and valid[0].strip() != valid[1].strip()


def _repeat_prompt(response: str, kw: dict, prompt: str) -> bool:
    to_repeat = kw.get("prompt_to_repeat") or prompt
    if not to_repeat.strip():
        raise ValueError("combination:repeat_prompt: missing kwarg 'prompt_to_repeat' (and no prompt given)")
    return response.strip().lower().startswith(to_repeat.strip().lower())


def _end_checker(response: str, kw: dict, prompt: str) -> bool:
    return response.strip().strip('"').lower().endswith(kw["end_phrase"].strip().lower())


def _capital_word_frequency(response: str, kw: dict, prompt: str) -> bool:
    return _compare(len(capital_words(response)), kw["capital_relation"], kw["capital_frequency"])


def _english_capital(response: str, kw: dict, prompt: str) -> bool:
    return response.isupper() and _language_is(response, "en")


def _english_lowercase(response: str, kw: dict, prompt: str) -> bool:
    return response.islower() and _language_is(response, "en")


def _no_comma(response: str, kw: dict, prompt: str) -> bool:
    return "," not in response


def _quotation(response: str, kw: dict, prompt: str) -> bool:
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


def _constrained_start(response: str, kw: dict, prompt: str) -> bool:
    return response.lstrip().startswith(kw["starter"])


# --- the registry --------------------------------------------------------------------------------------------------


def _quoted(items: list[str] | tuple[str, ...]) -> str:
    return ", ".join(f'"{item}"' for item in items)


def _no_kwargs(rng: random.Random, prompt: str) -> dict:
    return {}


def _relation_sampler(
    count_name: str, low: int, high: int, relation_name: str = "relation"
) -> Callable[[random.Random, str], dict]:
    return lambda rng, prompt: {count_name: rng.randint(low, high), relation_name: rng.choice(RELATIONS)}


_RELATION = Kwarg("relation", "str", choices=RELATIONS)


def _build() -> dict[str, Constraint]:
    entries = [
        Constraint(
            "keywords:existence", (Kwarg("keywords", "list[str]"),), _keywords_exist,
            lambda kw: f"Include keywords {_quoted(kw['keywords'])} in the response.",
            lambda rng, prompt: {"keywords": sorted(rng.sample(KEYWORD_POOL, 2))},
        ),
        Constraint(
            "keywords:frequency",
            (Kwarg("keyword", "str"), Kwarg("frequency", "int", sample_range=(1, 3)), _RELATION),
            _keyword_frequency,
            lambda kw: f"In your response, the word {kw['keyword']} should appear {kw['relation']} "
                       f"{kw['frequency']} times.",
            lambda rng, prompt: {"keyword": rng.choice(KEYWORD_POOL), "frequency": rng.randint(1, 3),
                                 "relation": rng.choice(RELATIONS)},
        ),
        Constraint(
            "keywords:forbidden_words", (Kwarg("forbidden_words", "list[str]"),), _no_forbidden_words,
            lambda kw: f"Do not include keywords {_quoted(kw['forbidden_words'])} in the response.",
            lambda rng, prompt: {"forbidden_words": sorted(rng.sample(KEYWORD_POOL, 2))},
        ),
        Constraint(
            "keywords:letter_frequency",
            (Kwarg("letter", "str", max_length=1),
             Kwarg("let_frequency", "int", sample_range=(1, 10)),
             Kwarg("let_relation", "str", choices=RELATIONS)),
            _letter_frequency,
            lambda kw: f"In your response, the letter {kw['letter'].lower()} should appear {kw['let_relation']} "
                       f"{kw['let_frequency']} times.",
            lambda rng, prompt: {"letter": rng.choice(string.ascii_lowercase), "let_frequency": rng.randint(1, 10),
                                 "let_relation": rng.choice(RELATIONS)},
        ),
        Constraint(
            "language:response_language", (Kwarg("language", "str", choices=tuple(sorted(LANGDETECT_CODES))),),
            _response_language,
            lambda kw: f"Your ENTIRE response should be in {LANGUAGE_NAMES.get(kw['language'], kw['language'])} "
                       "language, no other language is allowed.",
            lambda rng, prompt: {"language": rng.choice(sorted(LANGUAGE_NAMES))},
        ),
        Constraint(
            "length_constraints:number_sentences",
            (Kwarg("num_sentences", "int", sample_range=(1, 20)), _RELATION), _number_sentences,
            lambda kw: f"Your response should contain {kw['relation']} {kw['num_sentences']} sentences.",
            _relation_sampler("num_sentences", 1, 20),
        ),
        Constraint(
            "length_constraints:number_paragraphs", (Kwarg("num_paragraphs", "int", low=1, sample_range=(1, 5)),),
            _number_paragraphs,
            lambda kw: f"There should be {kw['num_paragraphs']} paragraphs. "
                       "Paragraphs are separated with the markdown divider: ***",
            lambda rng, prompt: {"num_paragraphs": rng.randint(1, 5)},
        ),
        Constraint(
            "length_constraints:number_words",
            (Kwarg("num_words", "int", sample_range=(100, 500)), _RELATION), _number_words,
            lambda kw: f"Answer with {kw['relation']} {kw['num_words']} words.",
            _relation_sampler("num_words", 100, 500),
        ),
        Constraint(
            "length_constraints:nth_paragraph_first_word",
            (Kwarg("num_paragraphs", "int", low=1, sample_range=(1, 5)),
             Kwarg("nth_paragraph", "int", low=1, sample_range=(1, 5)), Kwarg("first_word", "str")),
            _nth_paragraph_first_word,
            lambda kw: f"There should be {kw['num_paragraphs']} paragraphs. Paragraphs and only paragraphs are "
                       "separated with each other by two new lines as if it was '\\n\\n' in python. "
                       f"Paragraph {kw['nth_paragraph']} must start with word {kw['first_word'].lower()}.",
            _sample_nth_paragraph,
        ),
        Constraint(
            "detectable_content:number_placeholders",
            (Kwarg("num_placeholders", "int", sample_range=(1, 4)),), _number_placeholders,
            lambda kw: f"The response must contain at least {kw['num_placeholders']} placeholders represented by "
                       "square brackets, such as [address].",
            lambda rng, prompt: {"num_placeholders": rng.randint(1, 4)},
        ),
        Constraint(
            "detectable_content:postscript", (Kwarg("postscript_marker", "str"),), _postscript,
            lambda kw: "At the end of your response, please explicitly add a postscript starting with "
                       f"{kw['postscript_marker']}",
            lambda rng, prompt: {"postscript_marker": rng.choice(POSTSCRIPT_MARKERS)},
        ),
        Constraint(
            "detectable_format:number_bullet_lists", (Kwarg("num_bullets", "int", sample_range=(1, 5)),),
            _number_bullet_lists,
            lambda kw: f"Your answer must contain exactly {kw['num_bullets']} bullet points. "
                       "Use the markdown bullet points such as:\n* This is point 1. \n* This is point 2",
            lambda rng, prompt: {"num_bullets": rng.randint(1, 5)},
        ),
        Constraint(
            "detectable_format:constrained_response", (), _constrained_response,
            lambda kw: f"Answer with one of the following options: {_quoted(CONSTRAINED_RESPONSE_OPTIONS)}",
            _no_kwargs,
        ),
        Constraint(
            "detectable_format:number_highlighted_sections",
            (Kwarg("num_highlights", "int", sample_range=(1, 4)),), _highlighted_sections,
            lambda kw: f"Highlight at least {kw['num_highlights']} sections in your answer with markdown, "
                       "i.e. *highlighted section*.",
            lambda rng, prompt: {"num_highlights": rng.randint(1, 4)},
        ),
        Constraint(
            "detectable_format:multiple_sections",
            (Kwarg("section_spliter", "str"), Kwarg("num_sections", "int", sample_range=(1, 5))),
            _multiple_sections,
            lambda kw: f"Your response must have {kw['num_sections']} sections. Mark the beginning of each section "
                       f"with {kw['section_spliter']} X, such as:\n{kw['section_spliter']} 1\n"
                       f"[content of section 1]\n{kw['section_spliter']} 2\n[content of section 2]",
            lambda rng, prompt: {"section_spliter": rng.choice(SECTION_SPLITTERS), "num_sections": rng.randint(1, 5)},
        ),
        Constraint(
            "detectable_format:json_format", (), _json_format,
            lambda kw: "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
            _no_kwargs,
        ),
        Constraint(
            "detectable_format:title", (), _title,
            lambda kw: "Your answer must contain a title, wrapped in double angular brackets, such as "
                       "<<poem of joy>>.",
            _no_kwargs,
        ),
        Constraint(
            "combination:two_responses", (), _two_responses,
            lambda kw: "Give two different responses. Responses and only responses should be separated by 6 "
                       "asterisk symbols: ******.",
            _no_kwargs,
        ),
        Constraint(
            "combination:repeat_prompt", (Kwarg("prompt_to_repeat", "str", required=False),), _repeat_prompt,
            lambda kw: "First repeat the request word for word without change, then give your answer (1. do not "
                       "say any words or characters before repeating the request; 2. the request you need to "
                       "repeat does not include this sentence)",
            lambda rng, prompt: {"prompt_to_repeat": prompt} if prompt.strip() else {},
        ),
        Constraint(
            "startend:end_checker", (Kwarg("end_phrase", "str"),), _end_checker,
            lambda kw: f"Finish your response with this exact phrase {kw['end_phrase']}. "
                       "No other words should follow this phrase.",
            lambda rng, prompt: {"end_phrase": rng.choice(ENDING_OPTIONS)},
        ),
        Constraint(
            "change_case:capital_word_frequency",
            (Kwarg("capital_frequency", "int", sample_range=(1, 20)),
             Kwarg("capital_relation", "str", choices=RELATIONS)),
            _capital_word_frequency,
            lambda kw: "In your response, words with all capital letters should appear "
                       f"{kw['capital_relation']} {kw['capital_frequency']} times.",
            _relation_sampler("capital_frequency", 1, 20, "capital_relation"),
        ),
        Constraint(
            "change_case:english_capital", (), _english_capital,
            lambda kw: "Your entire response should be in English, and in all capital letters.",
            _no_kwargs,
        ),
        Constraint(
            "change_case:english_lowercase", (), _english_lowercase,
            lambda kw: "Your entire response should be in English, and in all lowercase letters. "
                       "No capital letters are allowed.",
            _no_kwargs,
        ),
        Constraint(
            "punctuation:no_comma", (), _no_comma,
            lambda kw: "In your entire response, refrain from the use of any commas.",
            _no_kwargs,
        ),
        Constraint(
            "startend:quotation", (), _quotation,
            lambda kw: "Wrap your entire response with double quotation marks.",
            _no_kwargs,
        ),
        Constraint(
            "multi-turn:constrained_start", (Kwarg("starter", "str"),), _constrained_start,
            lambda kw: f"During the conversation, when it is your turn, please always start with {kw['starter']}",
            lambda rng, prompt: {"starter": rng.choice(STARTER_OPTIONS)},
        ),
    ]
    return {constraint.id: constraint for constraint in entries}


def _sample_nth_paragraph(rng: random.Random, prompt: str) -> dict:
    num_paragraphs = rng.randint(1, 5)
    return {"num_paragraphs": num_paragraphs, "nth_paragraph": rng.randint(1, num_paragraphs),
            "first_word": rng.choice(KEYWORD_POOL)}


CONSTRAINTS: dict[str, Constraint] = _build()
IFEVAL_IDS: tuple[str, ...] = tuple(cid for cid in CONSTRAINTS if cid != "multi-turn:constrained_start")
SCHEMA: dict[str, dict[str, str]] = {cid: constraint.schema for cid, constraint in CONSTRAINTS.items()}


def _conflicts() -> dict[str, frozenset[str]]:
    """IFEval's INSTRUCTION_CONFLICTS, made symmetric: pairs a builder should not put in one prompt."""
    every = set(CONSTRAINTS)
    table: dict[str, set[str]] = {
        "language:response_language": {
            "detectable_format:multiple_sections", "keywords:existence", "keywords:frequency",
            "keywords:forbidden_words", "startend:end_checker", "change_case:english_capital",
            "change_case:english_lowercase",
        },
        "length_constraints:number_paragraphs": {
            "length_constraints:nth_paragraph_first_word", "length_constraints:number_sentences",
        },
        "detectable_format:constrained_response": set(every),
        "detectable_format:multiple_sections": {"detectable_format:number_highlighted_sections"},
        "detectable_format:json_format": every - {"keywords:forbidden_words", "keywords:existence"},
        "combination:two_responses": every - {
            "keywords:forbidden_words", "keywords:existence", "language:response_language",
            "detectable_format:title", "punctuation:no_comma",
        },
        "combination:repeat_prompt": every - {"keywords:existence", "detectable_format:title", "punctuation:no_comma"},
        "change_case:capital_word_frequency": {"change_case:english_lowercase", "change_case:english_capital"},
        "change_case:english_lowercase": {"change_case:english_capital"},
        "startend:quotation": {"detectable_format:title"},
        "multi-turn:constrained_start": {"startend:quotation", "change_case:english_capital",
                                         "change_case:english_lowercase"},
    }
    result: dict[str, set[str]] = {cid: {cid} for cid in CONSTRAINTS}
    for cid, others in table.items():
        for other in others:
            result[cid].add(other)
            result[other].add(cid)
    return {cid: frozenset(others) for cid, others in result.items()}


CONFLICTS: dict[str, frozenset[str]] = _conflicts()

# Short names accepted as `kind`: every id's part after the colon ("number_words"), plus DESIGN.md-style names.
# A kind with one kwarg also takes it as "value": {"kind": "language", "value": "fr"}.
ALIASES: dict[str, str] = {cid.split(":", 1)[1]: cid for cid in CONSTRAINTS} | {
    "keywords": "keywords:existence", "include_keywords": "keywords:existence",
    "keyword_frequency": "keywords:frequency", "exclude_keywords": "keywords:forbidden_words",
    "language": "language:response_language", "num_paragraphs": "length_constraints:number_paragraphs",
    "num_placeholders": "detectable_content:number_placeholders",
    "num_bullets": "detectable_format:number_bullet_lists",
    "num_highlights": "detectable_format:number_highlighted_sections", "json": "detectable_format:json_format",
    "end_phrase": "startend:end_checker", "lowercase": "change_case:english_lowercase",
    "uppercase": "change_case:english_capital", "start_phrase": "multi-turn:constrained_start",
}
# Bounds written as "at most / at least N" become IFEval's "less than N + 1" / "at least N".
_BOUND_ALIASES = {
    "max_words": ("length_constraints:number_words", "num_words", "less than"),
    "min_words": ("length_constraints:number_words", "num_words", "at least"),
    "max_sentences": ("length_constraints:number_sentences", "num_sentences", "less than"),
    "min_sentences": ("length_constraints:number_sentences", "num_sentences", "at least"),
}
KINDS: tuple[str, ...] = tuple(CONSTRAINTS) + tuple(sorted(set(ALIASES) | set(_BOUND_ALIASES)))


def resolve_constraint(spec: dict) -> tuple[str, dict]:
    """A `{"kind": ..., **kwargs}` entry as (IFEval id, validated kwargs); aliases resolved.

    Raises ValueError for an unknown kind or bad kwargs, naming both.
    """
    if not isinstance(spec, dict):
        raise ValueError(f"instruction constraint must be an object, got {spec!r}")
    kind = spec.get("kind", spec.get("id"))
    if not isinstance(kind, str):
        raise ValueError(f"instruction constraint needs a 'kind' string, got {spec!r}")
    params = {key: value for key, value in spec.items() if key not in ("kind", "id")}
    if kind in _BOUND_ALIASES:
        cid, count_name, relation = _BOUND_ALIASES[kind]
        if set(params) != {"value"}:
            raise ValueError(f"{kind}: expected exactly the kwarg 'value', got {sorted(params)}")
        bound = _coerce(kind, Kwarg("value", "int", low=0), params["value"])
        threshold = bound + 1 if relation == "less than" else bound
        return cid, CONSTRAINTS[cid].validate({count_name: threshold, "relation": relation})
    cid = kind if kind in CONSTRAINTS else ALIASES.get(kind)
    if cid is None:
        raise ValueError(f"unknown instruction constraint {kind!r}; known: {list(CONSTRAINTS)} and aliases "
                         f"{sorted(set(ALIASES) | set(_BOUND_ALIASES))}")
    constraint = CONSTRAINTS[cid]
    if "value" in params and len(constraint.kwargs) == 1:
        params = {constraint.kwargs[0].name: params.pop("value"), **params}
    return cid, constraint.validate(params)


def describe_constraint(spec: dict) -> str:
    """The instruction text of one `{"kind": ..., **kwargs}` entry, aliases included."""
    cid, kwargs = resolve_constraint(spec)
    return CONSTRAINTS[cid].describe(kwargs)


def parse_instruction_reference(reference: dict) -> tuple[list[tuple[str, dict]], str, str]:
    """(constraints as (id, kwargs), prompt, mode) of an instruction reference in either accepted format."""
    prompt = reference.get("prompt") or ""
    if not isinstance(prompt, str):
        raise ValueError(f"instruction reference 'prompt' must be a string, got {type(prompt).__name__}")
    mode = reference.get("mode", "strict")
    if mode not in MODES:
        raise ValueError(f"instruction reference 'mode' must be one of {list(MODES)}, got {mode!r}")
    if "constraints" in reference:
        specs = reference["constraints"]
        if not isinstance(specs, list):
            raise ValueError("instruction reference 'constraints' must be a list")
        constraints = [resolve_constraint(spec) for spec in specs]
    elif "instruction_id_list" in reference:
        ids = reference["instruction_id_list"]
        kwargs = reference.get("kwargs")
        if kwargs is None:
            kwargs = [{} for _ in ids] if isinstance(ids, list) else None
        if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
            raise ValueError(
                "instruction reference needs 'instruction_id_list' and 'kwargs' as lists of equal length"
            )
        constraints = []
        for cid, kw in zip(ids, kwargs):
            if cid not in CONSTRAINTS:
                raise ValueError(f"unknown instruction id {cid!r}; known: {list(CONSTRAINTS)}")
            if kw is not None and not isinstance(kw, dict):
                raise ValueError(f"{cid}: kwargs must be an object, got {kw!r}")
            constraints.append((cid, CONSTRAINTS[cid].validate(kw)))
    else:
        raise ValueError(
            f"instruction reference needs 'constraints' or 'instruction_id_list', got keys {sorted(reference)}"
        )
    if not constraints:
        raise ValueError("instruction reference has no constraints")
    if any(cid == "combination:repeat_prompt" and not kw.get("prompt_to_repeat") for cid, kw in constraints):
        if not prompt.strip():
            raise ValueError("combination:repeat_prompt: missing kwarg 'prompt_to_repeat' (and no 'prompt' given)")
    return constraints, prompt, mode


def loose_variants(response: str) -> list[str]:
    """IFEval's loose-mode rewrites: as is, first/last/both lines removed, each also with every `*` removed."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    variants = [response, response.replace("*", ""), remove_first, remove_last, remove_both]
    variants += [remove_first.replace("*", ""), remove_last.replace("*", ""), remove_both.replace("*", "")]
    return variants


def check_constraints(
    response: str, constraints: list[tuple[str, dict]], prompt: str = "", mode: str = "strict"
) -> list[bool]:
    """Whether `response` follows each (id, kwargs) constraint, in order, under IFEval's strict or loose rule."""
    variants = loose_variants(response) if mode == "loose" else [response]
    return [any(CONSTRAINTS[cid].check(text, kw, prompt) for text in variants) for cid, kw in constraints]


def verify_instruction(response: str, reference: dict) -> VerifierResult:
    """Score `response` against an instruction reference: `score` = fraction of constraints followed.

    Raises ValueError only for a malformed reference; any response gets a result (`format_ok` is always True:
    instructions ask for no answer format beyond the constraints themselves).
    """
    constraints, prompt, mode = parse_instruction_reference(reference)
    if isinstance(response, str):
        followed = check_constraints(response, constraints, prompt, mode)
        failure = None
    else:
        followed = [False] * len(constraints)
        failure = f"response is {type(response).__name__}, not text"
    results = [{"id": cid, "kwargs": kw, "passed": ok} for (cid, kw), ok in zip(constraints, followed)]
    failed = [r["id"] for r in results if not r["passed"]]
    if failure is None and failed:
        failure = "not followed: " + ", ".join(failed)
    details = {"mode": mode, "constraints": results, "failure": failure}
    score = sum(followed) / len(followed)
    return VerifierResult(NAME, all(followed), score, True, details)
