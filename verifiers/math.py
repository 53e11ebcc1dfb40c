"""Math verifier: extract a response's final answer and check it against a reference answer.

Reference: `{"type": "math", "answer": "12"}`; optional `"check_steps": false` turns off the step check.

A response passes when all three hold:
1. its final answer is stated as the last `\\boxed{...}` or as "The answer is X" (`format_ok`); when neither is
   there the last number in the text is still extracted and reported, but the response fails. Boxes just before
   the last one with only separators or labels between them hold the same answer ("\\boxed{-2} \\quad \\text{and}
   \\quad \\boxed{1}" is "-2, 1", so is "x_1 = \\boxed{-2}, x_2 = \\boxed{1}"); a "The (final) answer is X"
   statement after the last box, with a number or math in X, wins over intermediate boxes;
2. that answer equals the reference. Exact paths decide only what they get right by construction: equal normalised
   text (markdown emphasis, quotes, `$`, spacing, units such as "12 marbles" or "24 \\text{ cm}^2" dropped;
   "\\text{ and }" between two answers read as a comma), equal numbers ("12" = "12.0", "1,200" = "1200",
   "\\frac{1}{2}" = "\\frac12" = "0.5"), and unequal numbers neither of which is written as a decimal ("13" vs "12").
   Everything else goes to math-verify, which is the judge: a rounded decimal against an exact value ("0.333333"
   = "\\frac{1}{3}" to its 6-digit rounding, "0.67" is not "2/3"), radicals "2\\sqrt{2}" = "\\sqrt{8}", intervals
   "[1, 3)" = "\\left[1,3\\right)", sets "\\{1,2\\}" = "\\{2,1\\}", tuples in order, "\\pi/2" = "\\frac{\\pi}{2}";
3. every plain arithmetic step written in the text (`7 + 5 = 12`) is right, so a right answer reached through a
   wrong step does not count as verified.

Commas: "1,200" groups thousands; a comma followed by a space separates answers ("32, 349" is two numbers, not
32349); a comma that cannot group thousands ("1000,99", "1,22", "0,111") is a decimal comma when the other side is a
number written without one ("1,22" = "1.22"). Against "\\{1, 22\\}" or "22,1" it stays a list, as math-verify reads
it ("1,3" = "3,1"). So "2,5" equals "2.5" even where it meant the two roots 2 and 5: a decimal answer to a
two-root question is the rarer mistake.

math-verify is called with its timeouts disabled: they use `signal.alarm`, which raises outside the main thread
(the builders verify from thread pools). Work is bounded instead by capping the answer length and skipping
math-verify on answers that could make sympy run away (towers of powers, huge exponents); what still gets past that
guard is killed where it runs in the reward service (`verifiers.pool`: killable worker processes).

Percentages: a percent sign (or the word "percent") on either side lets that side's number match as written or
divided by 100, so "50\\%" equals both "50" (MATH-style graders drop the sign) and "0.5" (what 50% means); math-verify
makes the same choice. Without a sign, "50" and "0.5" differ.

Agreement with math-verify's own published test cases (tests/verifiers/data/math_verify_cases.jsonl, the 210 that
fit our reference format): 208/210. Departures, deliberate (tests/verifiers/test_math_verify_cases.py fails if one
starts agreeing or a new one appears):
- test_open_thoughts.py::test_open_thoughts[14], "words between boxes": "\\boxed{(3, 3)} \\text{ for part (a) and }
  \\boxed{(1, 1)}" against "(3, 3), (1, 1)". math-verify joins boxes across a few words; we join boxes only across
  separators, so the answer here is the last box "(1, 1)". Joining across words would make "\\boxed{3}, then
  \\boxed{4}" the answer "3, 4", though the first box is an intermediate value (test_last_balanced_boxed_wins).
- test_yujianll.py::test_string_extraction[9], "\\mathrm{e} is e": "1 + \\frac{1}{\\mathrm{e}}" against
  "1 - \\frac{1}{\\mathrm{e}}". math-verify's parser stops at "\\mathrm{e}", reads both as 1 and calls them equal;
  we read "\\mathrm{e}" as e, and 1 + 1/e is not 1 - 1/e.

Nothing here raises on a bad response: garbage gets `passed=False` with the reason in `details`.
"""

import functools
import logging
import re
from fractions import Fraction
from typing import NamedTuple

from verifiers.result import VerifierResult

NAME = "math"
MAX_ANSWER_CHARS = 200  # longer "answers" are not answers; also bounds the work given to sympy
_MAX_NUMBER_DIGITS = 60  # Fraction() on longer digit strings is slow and never a real answer

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")
# What may stand between boxes that together hold one answer ("\boxed{1} and \boxed{2}", "\boxed{1},\boxed{2}"):
# separators, spacing, math delimiters and a variable's label ("y_2 =") only, at most `_MAX_BOX_GAP` characters.
# Stricter than math-verify, which also joins boxes across other words ("\boxed{3}, then \boxed{4}"): for us the
# earlier box there is an intermediate value.
_BOX_JOINER = re.compile(r"(?:\s|[,;&~$]|\\[()\[\],;: ]|\\q?quad\b|\\\\|\b(?:and|or)\b"
                         r"|\\(?:text|textnormal|textrm|mbox)\{\s*(?:and|or|,)?\s*\}"
                         r"|\b[A-Za-z](?:_\{?\w{1,3}\}?)?\s*=)*")
_MAX_BOX_GAP = 70  # math-verify's bound
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b\s*:?[ \t]*", re.IGNORECASE)
_MATH_CHARACTER = re.compile(r"[\d$\\]")
_ANSWER_END = re.compile(r"\.(?=\s|$)|\n")  # a sentence-ending period (not a decimal point) or a line break
_LAST_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|(?<![\w.])-?\d+(?:\.\d+)?")
_GROUPED = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")  # "0,111" is not a grouping
_DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")  # "1000,99", "1,22", "0,111": read as decimals when not a grouping
_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_LATEX_FRAC = re.compile(r"([-+]?)\\frac\{([-+]?\d+)\}\{([-+]?\d+)\}")
_SLASH_FRAC = re.compile(r"([-+]?\d+)/(\d+)")
_TEXT = re.compile(r"\\(?:text|mathrm|textbf|textnormal|textrm|mbox)\{([^{}]*)\}")
_EXPONENT = r"(?:\s*\^\s*\{?\s*[23]\s*\}?|\s*[²³])?"  # cm^2, m^{3}, cm²
_TEXT_COMMAND = r"\\(?:text|textnormal|textrm|mbox)"
# A unit written as text after a number: "24 \text{ cm}^2", "15\mbox{ m}" (any letters: the markup says it is a unit).
_TEXT_UNIT = re.compile(rf"([-+]?[\d.,]*\d)\s*{_TEXT_COMMAND}\{{\s*([A-Za-z][A-Za-z ]*?)\s*\}}{_EXPONENT}")
# A plain unit word after a number: "12 marbles", "24 cm^2"; not "2 x" or "2 x^2", which are algebra.
_NUMBER_WITH_UNIT = re.compile(rf"([-+]?[\d.,]*\d)\s+([A-Za-z]{{2,}}(?:[A-Za-z ]*[A-Za-z])?){_EXPONENT}")
# "and"/"or" between two answers, as a word or as text ("p = -1 \text{ and } p = 2", "19, 46, and 82"): a comma.
# The match starts only where a run of spaces starts, so a long run is scanned once, not once per space.
_TEXT_CONNECTOR = re.compile(rf"{_TEXT_COMMAND}\{{\s*(and|or)\s*\}}")
_QUAD = re.compile(r"\\q?quad")
_CONNECTOR = re.compile(r"(?<!\s)(?:\s*,)?\s+(?:and|or)\s+")
_EMPHASIS = re.compile(r"(\*\*|\*|__)([^*]+?)\1")  # markdown around the whole answer: **12**, *12*, __12__
_QUOTED = re.compile(r'\\?"(.+?)\\?"|“(.+?)”')  # "12", \"12\" (escaped, as some models write), “12”
_WRAPPER_STARTS = ("*", "_", '"', "“", "$", "\\")  # first characters of `_unwrap`'s wrappers
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")  # an answer normalisation leaves as it is
_SPACED_COMMA = re.compile(r",\s+")  # "32, 349" is two numbers; "32,349" and "32,\! 349" are one
_KEPT_SPACE = "\ue000"  # stands for the space after such a comma while other spacing is removed
# Single-character arguments without braces, as LaTeX allows: \frac12 = \frac{1}{2}, \sqrt2 = \sqrt{2}.
_BARE_FRAC = re.compile(r"\\frac(?:(\d)|\{([^{}]*)\})(?:(\d)|\{([^{}]*)\})")
_BARE_SQRT = re.compile(r"\\sqrt(\d)")
_SPACING = re.compile(r"\\[,;:! ]|\\left|\\right|~|\s+")
# Answers sympy could spend minutes on: exponents of 6+ digits, towers of powers (braced or parenthesised),
# factorials of 4+ digits or of a factorial of 2+ digits (issue 20: these three got past a narrower guard).
_RUNAWAY = re.compile(r"\^\s*\{?\s*[\d.]{6,}|\^\s*\{[^{}]*\^|\^\s*\d+\s*\^|\d{4,}\s*!"
                      r"|\^\s*\([^()]*[\^!]|\d{2,}\s*!\s*\)\s*!")  # (9^9)^(9^9), 9^{999999}, (99!)!

# A written arithmetic step `a op b = c`, starting at the start of a number (not inside one, not after a letter as
# in x2). Numbers are bounded in length so that scanning a long run of digits stays linear. The context checks in
# `_step_errors` skip steps that are part of a longer expression.
_NUM = r"\d{1,15}(?:,\d{3}){0,4}(?:\.\d{1,12})?"
_OP = r"\+|-|−|×|\*|÷|/|\\times|\\cdot|\\div"
_STEP = re.compile(rf"(?<![\w.,])({_NUM})[ \t]*({_OP})[ \t]*({_NUM})[ \t]*=[ \t]*(-?{_NUM})")
_OPERATOR_BEFORE = re.compile(r"(?:[-+−×*/÷^_(\[{\\]|\\times|\\cdot|\\div)$")  # `=` is fine: x = 2 + 3 = 5
_CONTINUES_AFTER = re.compile(r"[ \t]*(?:[-+−×*/÷^%(\d]|\\times|\\cdot|\\div|\\%|r\b|R\b|remainder)")


class _DropTimeoutWarning(logging.Filter):
    """math-verify warns once that timeouts are off; that is deliberate here (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


@functools.cache
def _math_verify():
    """Import math-verify (and sympy) on first use: the exact path covers numeric answers without them."""
    import math_verify

    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).addFilter(_DropTimeoutWarning())
    return math_verify


@functools.lru_cache(maxsize=8192)
def _parse(expr: str) -> tuple:
    """math-verify's parse of one bare answer, cached: reference answers repeat across a group of responses."""
    return tuple(_math_verify().parse(f"${expr}$", parsing_timeout=None))


def extract_answer(response: str) -> tuple[str | None, str]:
    """The final answer of a response and how it was found: "boxed", "answer_is", "last_number" or "none".

    The last box (with the boxes just before it that hold the same answer, joined by ", ") is the answer, unless a
    "The (final) answer is X" statement with a number or math in X comes after it: a response that boxes
    intermediate values and then states its result is judged on that statement ("I hope the answer is right" after
    a box changes nothing).
    """
    boxed = _final_boxes(response)
    statement = None
    for statement in _ANSWER_IS.finditer(response, boxed[1] if boxed else 0):
        pass
    if statement is not None:
        tail = response[statement.end() : statement.end() + 4 * MAX_ANSWER_CHARS]
        end = _ANSWER_END.search(tail)
        answer = (tail[: end.start()] if end else tail).strip()
        if answer and (boxed is None or _MATH_CHARACTER.search(answer)):
            return answer, "answer_is"
    if boxed is not None:
        return boxed[0], "boxed"
    last = None
    for last in _LAST_NUMBER.finditer(response):
        pass
    if last is not None:
        return last.group(0), "last_number"
    return None, "none"


def _closing_brace(text: str, start: int, limit: int) -> int | None:
    """Index of the `}` that closes the brace opened just before `start`, searching below `limit`; else None."""
    depth = 1
    for brace in _BRACE.finditer(text, start, limit):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return brace.start()
    return None


def _final_boxes(text: str) -> tuple[str, int] | None:
    """(answer, end of the last box): the last `\\boxed{...}` whose braces balance, joined with the boxes before it
    that hold the rest of the same answer (only `_BOX_JOINER` between them; repeats dropped); else None.

    Linear: if a later box never closes, an earlier box that has not closed before the later one starts never
    closes either, so each earlier box is scanned only up to the next box's start. Joining stops once the answer
    is longer than `MAX_ANSWER_CHARS`: it fails as too long whatever else is joined to it.
    """
    boxes = list(_BOXED.finditer(text))
    limit = len(text)
    for last in range(len(boxes) - 1, -1, -1):
        close = _closing_brace(text, boxes[last].end(), limit)
        if close is not None:
            break
        limit = boxes[last].start()
    else:
        return None
    contents = [text[boxes[last].end() : close].strip()]
    length, later_start = len(contents[0]), boxes[last].start()
    for earlier in range(last - 1, -1, -1):
        if length > MAX_ANSWER_CHARS:  # already too long to be an answer: more boxes would not change the verdict
            break
        earlier_close = _closing_brace(text, boxes[earlier].end(), later_start)
        if earlier_close is None:
            break
        between = text[earlier_close + 1 : later_start]
        if len(between) > _MAX_BOX_GAP or not _BOX_JOINER.fullmatch(between):
            break
        content = text[boxes[earlier].end() : earlier_close].strip()
        if content != contents[-1]:
            contents.append(content)
            length += len(content) + 2
        later_start = boxes[earlier].start()
    return ", ".join(reversed(contents)), close + 1


class _Reading(NamedTuple):
    text: str  # normalised answer (see `normalize`)
    percent: bool  # written with a percent sign or the word "percent"


def normalize(answer: str) -> str:
    """Canonical text of an answer: no $ or \\( \\), no spacing commands, units and trailing periods dropped.

    A comma followed by a space keeps one space ("32, 349" is two numbers, "32,349" one); "and"/"or" between two
    answers becomes such a comma.
    """
    return _canonical(answer).text


def _canonical(answer: str) -> _Reading:
    text = answer.strip()
    if _PLAIN_NUMBER.fullmatch(text):  # most answers: nothing below would change them
        return _Reading(text, False)
    text = _unwrap(text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",")
    # "\$" is currency; a "$" still inside the answer is a math delimiter ("\boxed{12 $ and $13}") or currency
    text = text.replace("\\$", "").replace("$", "").replace("^\\circ", "").replace("^{\\circ}", "")
    latex = "\\" in text
    if latex:
        text = _QUAD.sub(" ", _TEXT_CONNECTOR.sub(r" \1 ", text))
    if "and" in text or "or" in text:
        text = _CONNECTOR.sub(", ", text)
    text = text.strip().rstrip(".").strip()
    percent = False
    unit = _TEXT_UNIT.fullmatch(text) if latex else None
    if unit:
        text, percent = unit.group(1), unit.group(2).lower() == "percent"
    if latex:
        text = _TEXT.sub(r"\1", text)
    text = text.strip().rstrip(".").strip()
    unit = _NUMBER_WITH_UNIT.fullmatch(text)
    if unit:
        text, percent = unit.group(1), percent or unit.group(2).strip().lower() == "percent"
    if text.endswith("\\%"):
        text = text[:-2]
        percent = True
    text = _SPACING.sub("", _SPACED_COMMA.sub("," + _KEPT_SPACE, text)).replace(_KEPT_SPACE, " ")
    if text.endswith("%"):
        percent = True
    text = _BARE_FRAC.sub(lambda m: f"\\frac{{{m.group(1) or m.group(2)}}}{{{m.group(3) or m.group(4)}}}", text)
    return _Reading(_BARE_SQRT.sub(r"\\sqrt{\1}", text.rstrip("%")), percent)


def _unwrap(answer: str) -> str:
    """The answer without surrounding markdown emphasis (**12**), quotes or math delimiters ($12$, \\(12\\))."""
    text = answer.strip()
    for _ in range(2):  # **$12$** or $**12**$
        if text[:1] not in _WRAPPER_STARTS:
            break
        emphasis, quoted = _EMPHASIS.fullmatch(text), _QUOTED.fullmatch(text)
        if emphasis or quoted:
            text = (emphasis.group(2) if emphasis else quoted.group(1) or quoted.group(2)).strip()
        for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
                text = text[len(left) : len(text) - len(right)].strip()
    return text


def to_number(text: str) -> Fraction | None:
    """The exact value of a normalised numeric answer ("1,200", "-0.5", "\\frac{1}{2}", "3/4"), else None.

    A comma that cannot group thousands is a decimal comma ("1000,99", "1,22", "0,111"); "32, 349" (a comma and a
    space) is not a number.
    """
    return _read_number(text)[0]


def _read_number(text: str) -> tuple[Fraction | None, bool]:
    """(`to_number(text)`, whether it is written as a decimal and so may be rounded: "0.333333", "1,22")."""
    if len(text) > _MAX_NUMBER_DIGITS:
        return None, False
    try:
        if _GROUPED.fullmatch(text):
            return Fraction(text.replace(",", "")), "." in text
        if _DECIMAL.fullmatch(text):
            return Fraction(text), "." in text
        if _DECIMAL_COMMA.fullmatch(text):
            return Fraction(text.replace(",", ".")), True
        for pattern in (_LATEX_FRAC, _SLASH_FRAC):
            match = pattern.fullmatch(text)
            if match:
                groups = match.groups()
                sign = -1 if groups[0] == "-" and len(groups) == 3 else 1
                numerator, denominator = (int(g) for g in groups[-2:])
                return (None if denominator == 0 else sign * Fraction(numerator, denominator)), False
    except (ValueError, ZeroDivisionError):
        return None, False
    return None, False


def answers_match(predicted: str, expected: str) -> tuple[bool, str]:
    """Whether two final answers are equal, and which path decided: "exact", "numeric", "math_verify", "skipped".

    The exact paths decide only what they get right by construction: equal normalised text, equal numbers, and
    unequal numbers neither of which is written as a decimal. Everything else, a rounded decimal against its exact
    value included ("0.333333" against "\\frac{1}{3}"), goes to math-verify.
    """
    pred, gold = _canonical(predicted), _canonical(expected)
    if pred.text and pred.text == gold.text:
        return True, "exact"
    (pred_value, pred_decimal), (gold_value, gold_decimal) = _read_number(pred.text), _read_number(gold.text)
    if _is_decimal_comma(pred.text) and _is_decimal_comma(gold.text):
        pred_value = gold_value = None  # "1,3" against "3,1": two lists of numbers more likely than two decimals
    if pred_value is not None and gold_value is not None:
        same = pred_value == gold_value
        same = same or (pred.percent and pred_value / 100 == gold_value)
        same = same or (gold.percent and gold_value / 100 == pred_value)
        if same or not (pred_decimal or gold_decimal):
            return same, "numeric"
    if not pred.text or _RUNAWAY.search(pred.text) or _RUNAWAY.search(gold.text):
        return False, "skipped"
    # a decimal comma is read as one only against a number: "1,22" against "1.2", but the set {1, 22} against "1,22,3"
    gold_text = _for_math_verify(gold, decimal_comma=pred_value is not None)
    pred_text = _for_math_verify(pred, decimal_comma=gold_value is not None)
    gold_parsed, pred_parsed = _parse(gold_text), _parse(pred_text)
    if not gold_parsed or not pred_parsed:
        return False, "math_verify"
    return bool(_math_verify().verify(list(gold_parsed), list(pred_parsed), timeout_seconds=None)), "math_verify"


def _for_math_verify(reading: _Reading, decimal_comma: bool) -> str:
    """The normalised answer for math-verify: its percent sign back, and a decimal comma as a point when asked
    (math-verify reads "1,22" as the set {1, 22})."""
    text = reading.text
    if decimal_comma and _is_decimal_comma(text):
        text = text.replace(",", ".")
    return text + "\\%" if reading.percent else text


def _is_decimal_comma(text: str) -> bool:
    return bool(_DECIMAL_COMMA.fullmatch(text)) and not _GROUPED.fullmatch(text)


def _value(number: str) -> Fraction:
    return Fraction(number.replace(",", ""))


def _step_errors(response: str) -> list[str]:
    """Written arithmetic steps `a op b = c` whose result is wrong, e.g. ["7 + 5 = 13 (should be 12)"].

    Only steps that stand alone are checked: one preceded or followed by another operator (`2 + 3 × 4 = 14`,
    `2 + 3 = 5 + 1`) is part of a longer expression whose precedence this does not model, so it is skipped.
    A result written with k decimals may be rounded to k decimals.
    """
    errors = []
    for match in _STEP.finditer(response):
        if _OPERATOR_BEFORE.search(response[max(0, match.start() - 8) : match.start()].rstrip(" \t")):
            continue
        if _CONTINUES_AFTER.match(response, match.end()):
            continue
        left, op, right, result = match.groups()
        try:
            a, b, c = _value(left), _value(right), _value(result)
        except ValueError:
            continue
        if op in ("+",):
            true = a + b
        elif op in ("-", "−"):
            true = a - b
        elif op in ("×", "*", "\\times", "\\cdot"):
            true = a * b
        elif b == 0:
            continue
        else:
            true = a / b
        decimals = len(result.partition(".")[2])
        tolerance = Fraction(1, 2 * 10**decimals) if decimals else Fraction(0)
        if abs(true - c) > tolerance:
            shown = str(true.numerator) if true.denominator == 1 else f"{float(true):.6g}"
            errors.append(f"{match.group(0)} (should be {shown})")
    return errors


def verify_math(response: str, reference: dict) -> VerifierResult:
    """Check `response` against `reference = {"type": "math", "answer": ..., "check_steps": true}`.

    Raises ValueError only for a malformed reference; any response, however broken, gets a result.
    """
    if "answer" not in reference:
        raise ValueError(f"math reference needs an 'answer' key, got keys {sorted(reference)}")
    expected = str(reference["answer"])
    check_steps = bool(reference.get("check_steps", True))
    if not isinstance(response, str):
        details = {"expected": expected, "extracted": None, "extraction": "none", "answer_correct": False,
                   "match": None, "step_errors": [], "failure": f"response is {type(response).__name__}, not text"}
        return VerifierResult(NAME, False, 0.0, False, details)

    extracted, extraction = extract_answer(response)
    format_ok = extraction in ("boxed", "answer_is")
    failures = []
    match_path, correct, error = None, False, None
    if extracted is None:
        failures.append("no final answer found")
    elif len(extracted) > MAX_ANSWER_CHARS:
        failures.append(f"final answer longer than {MAX_ANSWER_CHARS} characters")
        extracted = extracted[:MAX_ANSWER_CHARS]
    else:
        try:
            correct, match_path = answers_match(extracted, expected)
        except Exception as exc:  # sympy can fail in many ways on odd input; a failed check is a failed answer
            error = f"{type(exc).__name__}: {exc}"[:300]
        if not correct:
            failures.append(f"wrong final answer: got {extracted!r}, expected {expected!r}")
    if extracted is not None and not format_ok:
        failures.append("final answer not given as \\boxed{...} or 'The answer is ...'")
    steps = _step_errors(response) if check_steps else []
    if steps:
        failures.append("wrong intermediate step: " + "; ".join(steps[:3]))

    passed = not failures
    details = {
        "expected": expected,
        "extracted": extracted,
        "extraction": extraction,
        "answer_correct": correct,
        "match": match_path,
        "step_errors": steps[:10],
        "failure": "; ".join(failures) or None,
    }
    if error is not None:
        details["error"] = error
    return VerifierResult(NAME, passed, 1.0 if passed else 0.0, format_ok, details)
