"""Code-verified instruction queries: the report's instruction-following method (SFT area 4).

Each task is three things: an instruction ("Answer in exactly 3 lines."), a Python function
`check(response: str) -> bool` that verifies a response against it, and unit tests for that function (responses
that must pass and must fail, boundary cases included). The function is accepted only if its own tests pass in the
sandbox; responses are then selected by running the accepted function on each candidate in the sandbox (execution
feedback), through `verifiers.instruction_code`. Rows carry
`{"type": "instruction_code", "function": <source>, "entry_point": "check"}`.

Who writes the tasks (`areas.instruction_code.author`):
- `procedural` (default): the offline task maker plays the report's generator model for `procedural` tasks. Like a
  model, it sometimes writes a buggy function (`flawed_check_fraction`: a `>=` for `==`, a forgotten `.lower()`, an
  off-by-one bound, a syntax error), and its tests must catch that, so the query is dropped and counted.
- `generator`: as in the report, the model backend (`generator: {backend: openai|hf}`) also writes
  `author_prompts` tasks, one per author prompt (`AUTHOR_PROMPT`, one instruction idea from `topics` or the
  built-in ones each), through the same `Generator.generate` call that writes the responses. Its reply must be in
  this format (`parse_author_reply`):

      Instruction: <the full user request, its checkable constraint included>

      ```python
      def check(response: str) -> bool:
          ...
      ```

      ```python
      assert check("a response that follows the instruction")
      assert not check("a response that breaks it")
      ```

  The instruction is the text after the first `Instruction:` label up to the first fence; then exactly two
  ```python blocks: the first defines `check` at top level (a parameter, the standard library only), the second is
  the unit tests: top-level asserts on `check(<one argument>)`, at least one must-pass (`assert check(x)`,
  `check(x) is True`, `== True`) and one must-fail (`assert not check(x)`, `check(x) is False`, `== False`).
  `from instruction_check import check` is put in front of the tests. Both blocks are only parsed here (`ast`),
  never run: a reply that breaks the format, tests that redefine `check` or lack a must-pass or must-fail case,
  and a repeated instruction are dropped, counted by reason ("author reply: no check function"). The tests then
  run against the function in the sandbox (`accept`), and the accepted tasks go through the same rejection
  sampling, the generator writing the responses.

Check-function tests run as one `run_many` batch; candidates are verified in batches the same way.
"""
import ast
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from data_builders.builders.instruction import SENTENCES, TASKS, TOPICS
from data_builders.config import InstructionCodeAreaConfig
from data_builders.generators import Candidate, Generator, Query
from data_builders.records import user_message
from sandbox import SandboxJob, run_many
from verifiers import VerifierResult
from verifiers.instruction_code import (
    MAX_FUNCTION_CHARS,
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


@dataclass(frozen=True)
class AuthoredTask:
    """A task the generator wrote, parsed from its reply (`parse_author_reply`) and not yet run."""

    prompt: str  # the instruction: the user turn of the response query
    function: str  # source defining check(response) -> bool
    tests: str  # unit tests, with the import of check in front


AUTHOR_PROMPT = """Write one instruction-following task on this idea: {idea}

The task is a user request with a constraint on the response that a Python function can check (a number of \
lines, words or items, a format, a word that must or must not appear, how it starts or ends, ...). Reply in \
exactly this format and nothing else:

Instruction: <the full user request, the constraint included>

```python
def check(response: str) -> bool:
    <return True exactly when the response follows the instruction; standard library only>
```

```python
assert check(<a literal response that follows the instruction>)
assert not check(<a literal response that breaks it>)
<more asserts like these, boundary cases included>
```

The second block holds only top-level asserts on check: at least one `assert check(...)` that must pass and \
one `assert not check(...)` that must fail."""

_LABEL = re.compile(r"^[ \t]*Instruction:[ \t]*", re.MULTILINE)
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


class AuthorReplyError(ValueError):
    """An author reply that does not follow the format; `reason` is the counted drop reason."""

    def __init__(self, problem: str) -> None:
        self.reason = f"author reply: {problem}"
        super().__init__(self.reason)


def _is_check_call(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check"
            and len(node.args) == 1 and not isinstance(node.args[0], ast.Starred) and not node.keywords)


def assert_expectation(test: ast.expr) -> bool | None:
    """What an assert's test expects of check: True (must pass), False (must fail), or None (not a case)."""
    if _is_check_call(test):
        return True
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _is_check_call(test.operand):
        return False
    if (isinstance(test, ast.Compare) and len(test.ops) == 1 and _is_check_call(test.left)
            and isinstance(test.comparators[0], ast.Constant) and isinstance(test.comparators[0].value, bool)):
        value = test.comparators[0].value
        if isinstance(test.ops[0], ast.Is | ast.Eq):
            return value
        if isinstance(test.ops[0], ast.IsNot | ast.NotEq):
            return not value
    return None


def _binds_check(node: ast.AST) -> bool:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return node.name == "check"
    if isinstance(node, ast.Name):
        return node.id == "check" and isinstance(node.ctx, ast.Store | ast.Del)
    if isinstance(node, ast.Import | ast.ImportFrom):  # `from instruction_check import check` is the real one
        real = isinstance(node, ast.ImportFrom) and node.module == MODULE
        return any((alias.asname or alias.name) == "check" and not (real and alias.name == "check")
                   for alias in node.names)
    return False


def parse_author_reply(text: str) -> AuthoredTask:
    """The task in an author reply (format in the module docstring), parsed with `ast` and never run;
    AuthorReplyError with the drop reason when the reply breaks the format."""
    label = _LABEL.search(text)
    fence = text.find("```")
    end = fence if fence >= 0 else len(text)
    instruction = text[label.end() : end].strip() if label and label.start() < end else ""
    if not instruction:
        raise AuthorReplyError("no instruction")
    blocks = list(_FENCE.finditer(text))
    if not blocks:
        raise AuthorReplyError("no check function")
    function = blocks[0].group(1)
    try:
        module = ast.parse(function)
    except SyntaxError as exc:
        raise AuthorReplyError(f"check function is not valid Python (line {exc.lineno})") from None
    defined = [node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == "check"]
    if not defined or not (defined[-1].args.posonlyargs or defined[-1].args.args):
        raise AuthorReplyError("no check function")
    if len(function) > MAX_FUNCTION_CHARS:
        raise AuthorReplyError(f"check function longer than {MAX_FUNCTION_CHARS} characters")
    if len(blocks) == 1:
        raise AuthorReplyError("no unit tests")
    if len(blocks) > 2:
        raise AuthorReplyError(f"{len(blocks)} python blocks, expected 2")
    tests = blocks[1].group(1)
    try:
        test_module = ast.parse(tests)
    except SyntaxError as exc:
        raise AuthorReplyError(f"unit tests are not valid Python (line {exc.lineno})") from None
    if any(_binds_check(node) for node in ast.walk(test_module)):
        raise AuthorReplyError("unit tests redefine check")
    expected = {assert_expectation(node.test) for node in test_module.body if isinstance(node, ast.Assert)}
    missing = [name for value, name in ((True, "must-pass"), (False, "must-fail")) if value not in expected]
    if missing:
        raise AuthorReplyError(f"unit tests have no {' and no '.join(missing)} assert")
    return AuthoredTask(instruction, function, f"from {MODULE} import check\n\n{tests}")


def author_queries(area: InstructionCodeAreaConfig, seed: int, generator: Generator,
                   taken: set[str]) -> tuple[list[Query], Counter]:
    """`area.author_prompts` tasks written by `generator`; those that parse, are new (not in `taken`, which
    grows) and whose function passes its own tests in the sandbox become queries. Drops counted by reason."""
    rng = random.Random(f"{seed}:instruction_code:author")
    prompts = []
    for index in range(area.author_prompts):
        if area.topics:
            idea = area.topics[index % len(area.topics)]
        else:
            idea = rng.choice(TASKS).format(topic=rng.choice(TOPICS))
        prompts.append(Query(CATEGORY, (user_message(AUTHOR_PROMPT.format(idea=idea)),), {},
                             f"author:instruction_code:{index}"))
    dropped: Counter = Counter()
    tasks: list[AuthoredTask] = []
    for replies in generator.generate(prompts, 1):
        if not replies:
            dropped["author reply: none (needs a model backend)"] += 1
            continue
        try:
            task = parse_author_reply(replies[0].text)
        except AuthorReplyError as exc:
            dropped[exc.reason] += 1
            continue
        if task.prompt in taken:
            dropped["author reply: repeated instruction"] += 1
            continue
        taken.add(task.prompt)
        tasks.append(task)
    queries = []
    for task, ok in zip(tasks, accept(tasks), strict=True):
        if not ok:
            dropped["author reply: check function failed its own tests"] += 1
            continue
        reference = {"type": "instruction_code", "function": task.function, "entry_point": "check"}
        queries.append(Query(CATEGORY, (user_message(task.prompt),), reference, f"{generator.name}:instruction_code",
                             key=task.prompt))
    return queries, dropped


def accept(tasks: Sequence[CheckTask | AuthoredTask], workers: int | None = None) -> list[bool]:
    """Whether each task's function passes its own unit tests in the sandbox (one batch)."""
    jobs = [SandboxJob(t.tests, "python", extra_files={f"{MODULE}.py": t.function}, limits=check_limits())
            for t in tasks]
    return [outcome.status == "passed" for outcome in run_many(jobs, workers=workers)]


def make_queries(area: InstructionCodeAreaConfig, seed: int,
                 generator: Generator | None = None) -> tuple[list[Query], Counter]:
    """`area.procedural` written tasks, of which those whose check function passes its tests become queries, then
    with `author: generator` the tasks `generator` writes (`author_queries`)."""
    if area.seed_files:
        raise ValueError("areas.instruction_code.seed_files: code-verified instructions are written by the task "
                         "maker or the generator, not read from seeds; give instruction ideas as `topics`, and use "
                         "the instruction area for IFEval seeds")
    if area.author == "generator" and generator is None:
        raise ValueError("areas.instruction_code.author: 'generator' needs the area's generator to write tasks "
                         "(build_area passes it)")
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
    if area.author == "generator":
        authored, author_dropped = author_queries(area, seed, generator, taken)
        queries += authored
        dropped.update(author_dropped)
    return queries, dropped


def batch_verifier(area: InstructionCodeAreaConfig) -> Callable[[Sequence[tuple[str, dict]]], list[VerifierResult]]:
    return verify_instruction_code_many
