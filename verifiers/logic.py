"""Logical-reasoning verifier: the final answer must match the solver's and the stated reasoning must hold.

Reference: `{"type": "logic", "form": "multiple_choice" | "true_false" | "open", "answer": "B" | "true" | "42",
"steps": ["alice > bob", ...]}`. The answer is read from the last `Answer:` line: a letter for multiple choice
("B", "(B)", "B) Carol"), true/false (yes/no accepted) for true-false, compared with `final_answer.same_answer`
for open questions. `steps` are the facts the solver derived on its way (the chain of an ordering, the rule of a
sequence, the mapping of an analogy): each must be stated in the reasoning (case and spacing ignored), so a right
answer reached through wrong or missing reasoning fails. A step written as "a | b" is met by either spelling.
"""

import re

from verifiers.final_answer import normalise, same_answer, split_answer
from verifiers.result import VerifierResult

FORMS = ("multiple_choice", "true_false", "open")
_TRUE, _FALSE = {"true", "yes", "t"}, {"false", "no", "f"}


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower()).strip()


def read_choice(answer: str) -> str | None:
    match = re.match(r"^\s*\(?([A-Ea-e])\)?(?:[\s.):]|$)", answer)
    return match.group(1).upper() if match else None


def read_bool(answer: str) -> str | None:
    word = normalise(answer).split(" ")[0] if answer.strip() else ""
    return "true" if word in _TRUE else "false" if word in _FALSE else None


def verify_logic(response: str, reference: dict) -> VerifierResult:
    form, expected, steps = reference.get("form"), reference.get("answer"), reference.get("steps", [])
    if form not in FORMS or not isinstance(expected, str) or not isinstance(steps, list):
        raise ValueError(f"logic reference needs form in {list(FORMS)}, a string answer and a list of steps, got "
                         f"{form!r}, {expected!r:.40}, {steps!r:.40}")
    reasoning, given = split_answer(response)
    if given is None:
        return VerifierResult("logic", False, 0.0, False, {"failure": "no 'Answer:' line", "tag": "no answer line"})
    read = {"multiple_choice": read_choice, "true_false": read_bool}.get(form)
    extracted = read(given) if read else given
    right = extracted is not None and (same_answer(extracted, expected) if read is None else extracted == expected)
    details = {"extracted": (extracted or given)[:100], "expected": expected}
    if not right:
        return VerifierResult("logic", False, 0.0, extracted is not None,
                              {**details, "failure": f"answer {given!r:.60}, expected {expected!r}",
                               "tag": "wrong answer"})
    text = _squash(reasoning)
    missing = [s for s in steps if not any(_squash(option) in text for option in s.split(" | "))]
    if missing:
        return VerifierResult("logic", False, 0.0, True,
                              {**details, "failure": f"reasoning does not state {missing[0]!r}", "missing": missing,
                               "tag": "flawed reasoning"})
    return VerifierResult("logic", True, 1.0, True, details)
