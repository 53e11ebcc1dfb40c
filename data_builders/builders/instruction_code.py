"""Code-verified instruction queries: the report's instruction-following method (SFT area 4), done offline.

For each query the task maker plays the report's generator model and writes three things: an instruction
("Answer in exactly 3 lines."), a Python function `check(response: str) -> bool` that verifies it, and unit tests
for that function (responses that must pass and must fail, boundary cases included). The function is accepted
only if its own tests pass in the sandbox; like a model, the task maker sometimes writes a buggy function
(`flawed_check_fraction`: a `>=` for `==`, a forgotten `.lower()`, an off-by-one bound, a syntax error), and its
tests must catch that, so the query is dropped and counted. Responses are then selected by running the accepted
function on each candidate in the sandbox (execution feedback), through `verifiers.instruction_code`.
Rows carry `{"type": "instruction_code", "function": <source>, "entry_point": "check"}`.

Check-function tests run as one `run_many` batch; candidates are verified in batches the same way.
"""

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from data_builders.builders.instruction import SENTENCES, TASKS, TOPICS
from data_builders.config import InstructionCodeAreaConfig
from data_builders.generators import Candidate, Query
from data_builders.records import user_message
from data_builders.verifiers import VerifierResult
from data_builders.verifiers.instruction_code import (
    MODULE,
    check_limits,
    verify_instruction_code_many,
)

CATEGORY = "instruction_code"

STARTERS = ("Honestly", "Today", "Imagine", "Firstly", "Remember", "Picture")
ACROSTICS = ("calm", "hope", "rain", "star", "wise", "bold", "kind")
LETTER_LINES = {
    "a": "Anyone can start with a small step.", "b": "Beginners often learn the fastest.",
    "c": "Curiosity keeps the practice going.", "d": "Daily habits matter more than talent.",
    "e": "Every expert was once a beginner.", "h": "Helpful friends make it easier.",
    "i": "It rewards patience over time.", "k": "Keeping notes shows your progress.",
    "l": "Learning from mistakes is part of it.", "m": "Many people find it relaxing.",
    "n": "Nobody needs expensive tools to begin.", "o": "Others will share their tips gladly.",
    "p": "Practice turns effort into skill.", "r": "Regular short sessions work best.",
    "s": "Small wins add up quickly.", "t": "Time spent here is rarely wasted.",
    "w": "Weekends are a good time to try it.",
}
REPEAT_WORDS = ("simple", "steady", "practice", "patience")


@dataclass(frozen=True)
class Family:
    """One kind of instruction: its wording, a correct and a buggy check function, and a response composer."""

    name: str
    params: Callable[[random.Random], dict]
    instruction: Callable[[dict], str]
    source: Callable[[dict], str]  # correct check function
    buggy: Callable[[dict], str]  # a plausible bug its tests catch
    holds: Callable[[dict, str], bool]  # what the instruction means, for composing responses and test cases
    compose: Callable[[dict, list[str], bool], str]  # a response that follows (True) or breaks (False) it


def _lines(text: str) -> list[str]:
    return [line for line in text.strip().splitlines() if line.strip()]


def _words(text: str) -> list[str]:
    return text.split()


def _word_count(text: str, word: str) -> int:
    return len(re.findall(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE))


FAMILIES = (
    Family(
        "exact_lines", lambda rng: {"n": rng.randint(2, 5)},
        lambda p: f"Answer in exactly {p['n']} non-empty lines.",
        lambda p: ("def check(response: str) -> bool:\n"
                   "    lines = [line for line in response.strip().splitlines() if line.strip()]\n"
                   f"    return len(lines) == {p['n']}\n"),
        lambda p: ("def check(response: str) -> bool:\n"
                   "    lines = [line for line in response.strip().splitlines() if line.strip()]\n"
                   f"    return len(lines) >= {p['n']}\n"),
        lambda p, text: len(_lines(text)) == p["n"],
        lambda p, body, ok: "\n".join(body[: p["n"] if ok else p["n"] + 1]),
    ),
    Family(
        "word_range", lambda rng: (lambda lo: {"lo": lo, "hi": lo + rng.randint(8, 20)})(rng.randint(12, 30)),
        lambda p: f"Use between {p['lo']} and {p['hi']} words (inclusive).",
        lambda p: ("def check(response: str) -> bool:\n"
                   f"    return {p['lo']} <= len(response.split()) <= {p['hi']}\n"),
        lambda p: ("def check(response: str) -> bool:\n"
                   f"    return {p['lo']} < len(response.split()) < {p['hi']}\n"),
        lambda p, text: p["lo"] <= len(_words(text)) <= p["hi"],
        lambda p, body, ok: _fit_words(body, p["lo"], p["hi"], ok),
    ),
    Family(
        "starts_with", lambda rng: {"word": rng.choice(STARTERS)},
        lambda p: f"Begin your response with the word \"{p['word']}\".",
        lambda p: ("def check(response: str) -> bool:\n"
                   "    words = response.strip().split()\n"
                   f"    return bool(words) and words[0].strip('.,!?:;\"').lower() == {p['word'].lower()!r}\n"),
        lambda p: ("def check(response: str) -> bool:\n"
                   "    words = response.strip().split()\n"
                   f"    return words[0] == {p['word']!r}\n"),
        lambda p, text: bool(_words(text)) and _words(text)[0].strip(".,!?:;\"").lower() == p["word"].lower(),
        lambda p, body, ok: (f"{p['word']}, " + body[0][0].lower() + body[0][1:] if ok else body[0])
        + " " + " ".join(body[1:3]),
    ),
    Family(
        "ends_with_question", lambda rng: {},
        lambda p: "End your response with a question to the reader.",
        lambda p: "def check(response: str) -> bool:\n    return response.rstrip().endswith('?')\n",
        lambda p: "def check(response: str) -> bool:\n    return '?' in response\n",
        lambda p, text: text.rstrip().endswith("?"),
        lambda p, body, ok: " ".join(body[:3]) + (" What would you try first?" if ok else ""),
    ),
    Family(
        "numbered_list", lambda rng: {"n": rng.randint(2, 5)},
        lambda p: f"Format your answer as a numbered list of exactly {p['n']} items (1., 2., ...).",
        lambda p: ("import re\n\n"
                   "def check(response: str) -> bool:\n"
                   "    items = re.findall(r'^\\s*(\\d+)\\. \\S', response, flags=re.MULTILINE)\n"
                   f"    return [int(i) for i in items] == list(range(1, {p['n']} + 1))\n"),
        lambda p: ("import re\n\n"
                   "def check(response: str) -> bool:\n"
                   "    items = re.findall(r'^\\s*(\\d+)\\. \\S', response, flags=re.MULTILINE)\n"
                   f"    return len(items) >= {p['n']}\n"),
        lambda p, text: [int(i) for i in re.findall(r"^\s*(\d+)\. \S", text, flags=re.MULTILINE)]
        == list(range(1, p["n"] + 1)),
        lambda p, body, ok: "\n".join(f"{i + 1}. {s}" for i, s in enumerate(body[: p["n"] if ok else p["n"] + 1])),
    ),
    Family(
        "acrostic", lambda rng: {"word": rng.choice(ACROSTICS)},
        lambda p: f"Write {len(p['word'])} lines whose first letters spell \"{p['word'].upper()}\".",
        lambda p: ("def check(response: str) -> bool:\n"
                   "    lines = [line.strip() for line in response.strip().splitlines() if line.strip()]\n"
                   f"    return ''.join(line[0] for line in lines).lower() == {p['word']!r}\n"),
        lambda p: ("def check(response: str) -> bool:\n"
                   "    lines = response.strip().splitlines()\n"
                   f"    return ''.join(line[0] for line in lines) == {p['word']!r}\n"),
        lambda p, text: "".join(line.strip()[0] for line in _lines(text)).lower() == p["word"],
        lambda p, body, ok: "\n".join(LETTER_LINES[c] for c in (p["word"] if ok else p["word"][::-1])),
    ),
    Family(
        "word_repeat", lambda rng: {"word": rng.choice(REPEAT_WORDS), "n": rng.randint(2, 4)},
        lambda p: f"Use the word \"{p['word']}\" exactly {p['n']} times.",
        lambda p: ("import re\n\n"
                   "def check(response: str) -> bool:\n"
                   f"    return len(re.findall(r'\\b{p['word']}\\b', response, flags=re.IGNORECASE)) == {p['n']}\n"),
        lambda p: ("def check(response: str) -> bool:\n"
                   f"    return response.count({p['word']!r}) == {p['n']}\n"),
        lambda p, text: _word_count(text, p["word"]) == p["n"],
        lambda p, body, ok: " ".join([*body[:2], *(f"Keep it {p['word']}." for _ in range(p["n"] + (not ok)))]),
    ),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)


def _fit_words(body: list[str], lo: int, hi: int, ok: bool) -> str:
    """The first run of body sentences whose word count is inside [lo, hi] (ok) or above hi (not ok)."""
    for end in range(1, len(body) + 1):
        text = " ".join(body[:end])
        count = len(text.split())
        if (ok and lo <= count <= hi) or (not ok and count > hi):
            return text
    words = " ".join(body).split()
    return " ".join(words[: (lo + hi) // 2] if ok else words[: hi + 5])


def _test_source(family: Family, params: dict, body: list[str]) -> str:
    """Unit tests of the check function: composed passing and failing responses plus boundary cases, each
    expectation computed from what the instruction means (`holds`)."""
    cases = [family.compose(params, body, True), family.compose(params, body[::-1], True),
             family.compose(params, body, False), family.compose(params, body[2:], False), "", "   \n"]
    if family.name == "exact_lines":
        cases.append("\n".join(body[: params["n"] - 1]))
        cases.append("\n\n".join(body[: params["n"]]))
    elif family.name == "word_range":
        cases += [" ".join(["word"] * params["lo"]), " ".join(["word"] * params["hi"]),
                  " ".join(["word"] * (params["hi"] + 1))]
    elif family.name == "starts_with":
        cases.append(f"{params['word'].lower()}: " + body[0])
    elif family.name == "ends_with_question":
        cases.append("Is it fun? It is.")
    elif family.name == "numbered_list":
        cases.append("\n".join(f"{i + 2}. {s}" for i, s in enumerate(body[: params["n"]])))
    elif family.name == "acrostic":
        cases.append("\n\n".join(LETTER_LINES[c] for c in params["word"]))
        cases.append("\n".join(LETTER_LINES[c].lower() for c in params["word"]))
    elif family.name == "word_repeat":
        cases.append(" ".join([f"{params['word'].capitalize()}."] * params["n"]))
        cases.append(" ".join([f"{params['word']}ness"] * params["n"]))
    lines = [f"from {MODULE} import check", ""]
    for case in dict.fromkeys(cases):
        lines.append(f"assert check({case!r}) is {family.holds(params, case)}, {case[:40]!r}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class CheckTask:
    """What the task maker wrote for one query, before acceptance."""

    prompt: str
    function: str
    tests: str
    flawed: bool  # written with a bug (the tests are expected to catch it)
    offline: tuple[Candidate, ...]
    gold: str
    family: str


def write_task(rng: random.Random, flawed_fraction: float, family: Family | None = None) -> CheckTask:
    """One query's instruction, check function (buggy with probability `flawed_fraction`), tests and candidates."""
    family = family or rng.choice(FAMILIES)
    params = family.params(rng)
    topic, task = rng.choice(TOPICS), rng.choice(TASKS)
    body = [s.format(topic=topic, Topic=topic[0].upper() + topic[1:]) for s in SENTENCES]
    rng.shuffle(body)
    flawed = rng.random() < flawed_fraction
    if flawed and rng.random() < 0.2:
        function = family.source(params).replace(") -> bool:", ") -> bool", 1)  # a syntax error
    else:
        function = family.buggy(params) if flawed else family.source(params)
    tests = _test_source(family, params, body)
    good = [family.compose(params, body, True), family.compose(params, body[1:] + body[:1], True)]
    bad = [family.compose(params, body, False), family.compose(params, body[3:] + body[:3], False)]
    offline = [Candidate(text, "correct") for text in dict.fromkeys(good)]
    offline += [Candidate(text, f"breaks:{family.name}") for text in dict.fromkeys(bad) if text not in good]
    prompt = f"{task.format(topic=topic)} {family.instruction(params)}"
    return CheckTask(prompt, function, tests, flawed, tuple(offline), good[0], family.name)


def accept(tasks: Sequence[CheckTask], workers: int | None = None) -> list[bool]:
    """Whether each task's function passes its own unit tests in the sandbox (one batch)."""
    from data_builders.sandbox import SandboxJob, run_many

    jobs = [SandboxJob(t.tests, "python", extra_files={f"{MODULE}.py": t.function}, limits=check_limits())
            for t in tasks]
    return [outcome.status == "passed" for outcome in run_many(jobs, workers=workers)]


def make_queries(area: InstructionCodeAreaConfig, seed: int) -> tuple[list[Query], Counter]:
    """`area.procedural` written tasks, of which those whose check function passes its tests become queries."""
    if area.seed_files:
        raise ValueError("areas.instruction_code.seed_files: code-verified instructions are written by the task "
                         "maker, not read from seeds; use the instruction area for IFEval seeds")
    rng = random.Random(f"{seed}:instruction_code")
    tasks: list[CheckTask] = []
    taken: set[str] = set()
    attempts = 0
    while len(tasks) < area.procedural:
        attempts += 1
        if attempts > 50 * area.procedural:
            raise ValueError(f"areas.instruction_code.procedural: only {len(tasks)} distinct prompts could be made")
        task = write_task(rng, area.flawed_check_fraction)
        if task.prompt not in taken:
            taken.add(task.prompt)
            tasks.append(task)
    dropped: Counter = Counter()
    queries = []
    for task, ok in zip(tasks, accept(tasks), strict=True):
        if not ok:
            dropped["check function failed its own tests" + (" (written buggy)" if task.flawed else "")] += 1
            continue
        reference = {"type": "instruction_code", "function": task.function, "entry_point": "check"}
        queries.append(Query(CATEGORY, (user_message(task.prompt),), reference, f"procedural:instruction_code:"
                             f"{task.family}", task.offline, task.gold, task.prompt))
    return queries, dropped


def batch_verifier(area: InstructionCodeAreaConfig) -> Callable[[Sequence[tuple[str, dict]]], list[VerifierResult]]:
    return verify_instruction_code_many
