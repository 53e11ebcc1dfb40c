"""Math verifier: extract a response's final answer and check it against a reference answer.

Reference: `{"type": "math", "answer": "12"}`; optional `"check_steps": false` turns off the step check.

A response passes when all three hold:
1. its final answer is stated as the last `\\boxed{...}` or as "The answer is X" (`format_ok`); when neither is
   there the last number in the text is still extracted and reported, but the response fails;
2. that answer equals the reference: a fast exact path (normalised strings, or both sides read as numbers:
   "12" = "12.0", "1,200" = "1200", "\\frac{1}{2}" = "\\frac12" = "0.5"), then math-verify for symbolic answers
   (radicals "2\\sqrt{2}" = "\\sqrt{8}", intervals "[1, 3)" = "\\left[1,3\\right)", sets "\\{1,2\\}" = "\\{2,1\\}",
   tuples in order, "\\pi/2" = "\\frac{\\pi}{2}");
3. every plain arithmetic step written in the text (`7 + 5 = 12`) is right, so a right answer reached through a
   wrong step does not count as verified.

math-verify is called with its timeouts disabled: they use `signal.alarm`, which raises outside the main thread
(the reward service and builders verify from thread pools). Work is bounded instead by capping the answer length
and skipping math-verify on answers that could make sympy run away (towers of powers, huge exponents).

Percentages: a percent sign (or the word "percent") on either side lets that side's number match as written or
divided by 100, so "50\\%" equals both "50" (MATH-style graders drop the sign) and "0.5" (what 50% means); math-verify
makes the same choice. Without a sign, "50" and "0.5" differ.

Nothing here raises on a bad response: garbage gets `passed=False` with the reason in `details`.
"""

import functools
import logging
import re
from fractions import Fraction

from verifiers.result import VerifierResult

NAME = "math"
MAX_ANSWER_CHARS = 200  # longer "answers" are not answers; also bounds the work given to sympy
_MAX_NUMBER_DIGITS = 60  # Fraction() on longer digit strings is slow and never a real answer

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b\s*:?[ \t]*", re.IGNORECASE)
_ANSWER_END = re.compile(r"\.(?=\s|$)|\n")  # a sentence-ending period (not a decimal point) or a line break
_LAST_NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|(?<![\w.])-?\d+(?:\.\d+)?")
_GROUPED = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_LATEX_FRAC = re.compile(r"([-+]?)\\frac\{([-+]?\d+)\}\{([-+]?\d+)\}")
_SLASH_FRAC = re.compile(r"([-+]?\d+)/(\d+)")
_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}")
_NUMBER_WITH_UNIT = re.compile(r"([-+]?[\d.,]*\d)\s+([A-Za-z]{2,}[A-Za-z ]*)")  # "12 marbles", not "2 x"
# Single-character arguments without braces, as LaTeX allows: \frac12 = \frac{1}{2}, \sqrt2 = \sqrt{2}.
_BARE_FRAC = re.compile(r"\\frac(?:(\d)|\{([^{}]*)\})(?:(\d)|\{([^{}]*)\})")
_BARE_SQRT = re.compile(r"\\sqrt(\d)")
_SPACING = re.compile(r"\\[,;:! ]|\\left|\\right|~|\s+")
# Answers sympy could spend minutes on: exponents of 7+ digits, towers of powers, factorials of 4+ digits.
_RUNAWAY = re.compile(r"\^\s*\{?\s*[\d.]{7,}|\^\s*\{[^{}]*\^|\^\s*\d+\s*\^|\d{4,}\s*!")

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
    """The final answer of a response and how it was found: "boxed", "answer_is", "last_number" or "none"."""
    boxed = _last_boxed(response)
    if boxed is not None:
        return boxed.strip(), "boxed"
    matches = list(_ANSWER_IS.finditer(response))
    if matches:
        tail = response[matches[-1].end() : matches[-1].end() + 4 * MAX_ANSWER_CHARS]
        end = _ANSWER_END.search(tail)
        answer = (tail[: end.start()] if end else tail).strip()
        if answer:
            return answer, "answer_is"
    last = None
    for last in _LAST_NUMBER.finditer(response):
        pass
    if last is not None:
        return last.group(0), "last_number"
    return None, "none"


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` whose braces balance, or None.

    Linear: if a later box never closes, an earlier box that has not closed before the later one starts never
    closes either, so each earlier box is scanned only up to the next box's start.
    """
    starts = [m.end() for m in _BOXED.finditer(text)]
    limit = len(text)
    for start in reversed(starts):
        depth = 1
        for i in range(start, limit):
            char = text[i]
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i]
        limit = start
    return None


def normalize(answer: str) -> str:
    """Canonical text of an answer: no $ or \\( \\), no spacing commands, units and trailing periods dropped."""
    return _canonical(answer)[0]


def _canonical(answer: str) -> tuple[str, bool]:
    """`normalize(answer)` and whether the answer was a percentage ("50\\%", "50%", "50 percent")."""
    text = answer.strip()
    for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left) : len(text) - len(right)].strip()
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", ",")
    text = text.replace("\\$", "").replace("^\\circ", "").replace("^{\\circ}", "")
    text = _TEXT.sub(r"\1", text)
    text = text.strip().rstrip(".").strip()
    percent = False
    unit = _NUMBER_WITH_UNIT.fullmatch(text)
    if unit:
        text = unit.group(1)
        percent = unit.group(2).strip().lower() == "percent"
    if text.endswith("\\%"):
        text = text[:-2]
        percent = True
    text = _SPACING.sub("", text)
    if text.endswith("%"):
        percent = True
    text = _BARE_FRAC.sub(lambda m: f"\\frac{{{m.group(1) or m.group(2)}}}{{{m.group(3) or m.group(4)}}}", text)
    return _BARE_SQRT.sub(r"\\sqrt{\1}", text.rstrip("%")), percent


def to_number(text: str) -> Fraction | None:
    """The exact value of a normalised numeric answer ("1,200", "-0.5", "\\frac{1}{2}", "3/4"), else None."""
    if len(text) > _MAX_NUMBER_DIGITS:
        return None
    try:
        if _GROUPED.fullmatch(text):
            return Fraction(text.replace(",", ""))
        if _DECIMAL.fullmatch(text):
            return Fraction(text)
        for pattern in (_LATEX_FRAC, _SLASH_FRAC):
            match = pattern.fullmatch(text)
            if match:
                groups = match.groups()
                sign = -1 if groups[0] == "-" and len(groups) == 3 else 1
                numerator, denominator = (int(g) for g in groups[-2:])
                return None if denominator == 0 else sign * Fraction(numerator, denominator)
    except (ValueError, ZeroDivisionError):
        return None
    return None


def answers_match(predicted: str, expected: str) -> tuple[bool, str]:
    """Whether two final answers are equal, and which path decided: "exact", "numeric", "math_verify", "skipped"."""
    (pred, pred_percent), (gold, gold_percent) = _canonical(predicted), _canonical(expected)
    if pred and pred == gold:
        return True, "exact"
    pred_value, gold_value = to_number(pred), to_number(gold)
    if pred_value is not None and gold_value is not None:
        same = pred_value == gold_value
        same = same or (pred_percent and pred_value / 100 == gold_value)
        same = same or (gold_percent and gold_value / 100 == pred_value)
        return same, "numeric"
    if not pred or _RUNAWAY.search(pred) or _RUNAWAY.search(gold):
        return False, "skipped"
    gold_parsed, pred_parsed = _parse(gold), _parse(pred)
    if not gold_parsed or not pred_parsed:
        return False, "math_verify"
    return bool(_math_verify().verify(list(gold_parsed), list(pred_parsed), timeout_seconds=None)), "math_verify"


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
