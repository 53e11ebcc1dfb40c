"""Offline procedural builder of arithmetic word problems: verified SFT rows, preference pairs and RL queries.

A pure function of (config, seed): the same pair gives byte-identical records. Each problem is a short story
(people, objects; buying, giving, losing, sharing, groups) over numbers in [min_operand, max_operand]; its answer
is computed from the drawn numbers, never written into a template (a division problem draws its quotient and
divisor from that range). For every problem the builder writes candidate solutions, one correct and one per flaw
kind, and runs each through the math verifier, as rejection sampling with a model would:

- correct: "Sam has 7 marbles and gets 5 more, so 7 + 5 = 12. The answer is \\boxed{12}."
- off_by_one: an arithmetic slip in the last step, so the final answer is wrong;
- wrong_operation: the last step uses the wrong operation (consistent arithmetic, wrong answer);
- no_final_format: right working but no \\boxed{} / "The answer is" final answer;
- wrong_step: the right final answer reached through a wrong intermediate result.

SFT rows keep a passing candidate; preference rows pair a passing one (chosen) with a failing one (rejected), the
verifier's reason attached; RL query rows carry `{"type": "math", "answer": "12"}`. Splits never share a prompt.
"""

import random
from collections import Counter
from dataclasses import dataclass

from data_builders.config import DataConfig
from data_builders.records import (
    preference_record,
    prompt_text,
    rl_query_record,
    sft_record,
    user_message,
)
from verifiers import VerifierResult, verify

CATEGORY = "math"
SOURCE = "procedural:arithmetic"
SPLIT_KINDS = {"sft": "sft", "preference": "preference", "preference_eval": "preference",
               "rl_queries": "rl_query", "heldout": "rl_query"}
MAX_DUPLICATE_DRAWS = 20_000  # consecutive repeats before the problem space counts as exhausted

NAMES = ("Sam", "Ana", "Ben", "Mia", "Leo", "Zoe", "Tom", "Ivy", "Max", "Eva", "Kai", "Lily")
OBJECTS = (
    ("apple", "apples"), ("marble", "marbles"), ("book", "books"), ("pencil", "pencils"),
    ("sticker", "stickers"), ("cookie", "cookies"), ("shell", "shells"), ("card", "cards"),
    ("toy car", "toy cars"), ("balloon", "balloons"), ("stamp", "stamps"), ("coin", "coins"),
)
SYMBOLS = {"add": "+", "sub": "-", "mul": "×", "div": "÷"}


@dataclass(frozen=True)
class Template:
    """A story: the question and the worked solution, with {e1}/{e2} where each step's equation goes."""

    key: str
    ops: tuple[str, ...]  # one operation per step
    question: str
    lead: str
    unit: tuple[str, str] = ("group", "groups")  # container noun (singular, plural) for {unit}, {unit_a}, ...


TEMPLATES = (
    Template("add_gets", ("add",),
             "{name} has {a} {obj_a}. {name} gets {b} more. How many {obj} does {name} have now?",
             "{name} has {a} {obj_a} and gets {b} more, so {e1}."),
    Template("add_buys", ("add",),
             "{name} buys {a} {obj_a} on Monday and {b} on Tuesday. How many {obj} does {name} buy in all?",
             "{name} buys {a} and then {b}, so {e1}."),
    Template("add_given", ("add",),
             "{name} has {a} {obj_a}. {name2} gives {name} {b} more. How many {obj} does {name} have now?",
             "{name} gets {b} more from {name2}, so {e1}."),
    Template("sub_gives", ("sub",),
             "{name} has {a} {obj_a} and gives {b} to {name2}. How many {obj} does {name} have left?",
             "{name} gives away {b} of {a}, so {e1}."),
    Template("sub_loses", ("sub",), "{name} has {a} {obj_a} and loses {b}. How many {obj} does {name} have left?",
             "{name} loses {b} of {a}, so {e1}."),
    Template("sub_shares", ("sub",),
             "{name} has {a} {obj_a} and shares {b} with {name2}. How many {obj} does {name} keep?",
             "{name} shares {b} of {a}, so {e1}."),
    Template("mul_bags", ("mul",),
             "{name} has {a} {unit_a} with {b} {obj_b} in each {unit}. How many {obj} does {name} have?",
             "{a} {unit_a} of {b} is {e1}.", ("bag", "bags")),
    Template("mul_boxes", ("mul",),
             "{name} buys {a} {unit_a} of {obj}. Each {unit} holds {b}. How many {obj} does {name} buy?",
             "{a} {unit_a} of {b} is {e1}.", ("box", "boxes")),
    Template("mul_rows", ("mul",),
             "{name} puts {obj} in {a} {unit_a} with {b} in each {unit}. How many {obj} are there?",
             "{a} {unit_a} of {b} is {e1}.", ("row", "rows")),
    Template("div_shares", ("div",),
             "{name} shares {a} {obj_a} equally among {b} {unit_b}. How many {obj} does each {unit} get?",
             "{a} shared among {b} is {e1}.", ("friend", "friends")),
    Template("add_sub_buys_gives", ("add", "sub"),
             "{name} has {a} {obj_a}, buys {b} more, and then gives {c} to {name2}. "
             "How many {obj} does {name} have now?",
             "{name} buys {b} more, so {e1}. Then {name} gives away {c}, so {e2}."),
    Template("mul_add_packs_finds", ("mul", "add"),
             "{name} buys {a} {unit_a} with {b} {obj_b} in each {unit} and finds {c} more. "
             "How many {obj} does {name} have?",
             "{a} {unit_a} of {b} is {e1}. Finding {c} more gives {e2}.", ("pack", "packs")),
    Template("mul_sub_boxes_gives", ("mul", "sub"),
             "{name} has {a} {unit_a} with {b} {obj_b} in each {unit} and gives away {c}. "
             "How many {obj} are left?",
             "{a} {unit_a} of {b} is {e1}. Giving away {c} leaves {e2}.", ("box", "boxes")),
)


@dataclass(frozen=True)
class Step:
    """One operation `left op right`; its value is computed, never templated."""

    left: int
    op: str
    right: int

    @property
    def value(self) -> int:
        if self.op == "add":
            return self.left + self.right
        if self.op == "sub":
            return self.left - self.right
        if self.op == "mul":
            return self.left * self.right
        return self.left // self.right  # div steps are drawn exact: left = quotient * right

    def equation(self, shown: int | None = None) -> str:
        """`7 + 5 = 12`, or with a different (wrong) result shown."""
        return f"{self.left} {SYMBOLS[self.op]} {self.right} = {self.value if shown is None else shown}"


@dataclass(frozen=True)
class Problem:
    template: Template
    names: tuple[str, str]
    noun: tuple[str, str]
    steps: tuple[Step, ...]

    @property
    def answer(self) -> int:
        return self.steps[-1].value

    @property
    def numbers(self) -> tuple[int, ...]:
        """The numbers the story states: a, b and (two steps) c."""
        return (self.steps[0].left, self.steps[0].right, *(step.right for step in self.steps[1:]))

    def _fields(self) -> dict[str, str | int]:
        fields: dict[str, str | int] = {"name": self.names[0], "name2": self.names[1], "obj": self.noun[1],
                                        "unit": self.template.unit[0]}
        for letter, number in zip("abc", self.numbers, strict=False):
            fields[letter] = number
            fields[f"obj_{letter}"] = self.noun[number != 1]
            fields[f"unit_{letter}"] = self.template.unit[number != 1]
        return fields

    @property
    def question(self) -> str:
        return self.template.question.format(**self._fields())

    def working(self, steps: tuple[Step, ...] | None = None, shown: tuple[int | None, ...] | None = None) -> str:
        """The worked steps; `steps` and `shown` results default to the correct ones."""
        steps = steps or self.steps
        shown = shown or (None,) * len(steps)
        equations = {f"e{i + 1}": step.equation(result) for i, (step, result) in enumerate(zip(steps, shown))}
        return self.template.lead.format(**self._fields(), **equations)


def check_config(config: DataConfig) -> None:
    """What DataConfig cannot check alone: that its ops and two-step share can be drawn from the templates."""
    if config.two_step_fraction > 0 and not _two_step_templates(config):
        usable = sorted({"+".join(t.ops) for t in TEMPLATES if len(t.ops) > 1})
        raise ValueError(f"config key 'two_step_fraction': {config.two_step_fraction} needs ops for a two-step "
                         f"story ({usable}), got ops {config.ops}")
    if "div" in config.ops and config.max_operand < 1:
        raise ValueError("config key 'max_operand': 'div' needs a divisor >= 1, so max_operand must be >= 1")


def _one_step_templates(op: str) -> list[Template]:
    return [t for t in TEMPLATES if t.ops == (op,)]


def _two_step_templates(config: DataConfig) -> list[Template]:
    return [t for t in TEMPLATES if len(t.ops) > 1 and set(t.ops) <= set(config.ops)]


def _draw_step(rng: random.Random, op: str, lo: int, hi: int, left: int | None = None) -> Step | None:
    """A step whose value is a whole number >= 0; None if none exists for this `left`."""
    if op == "sub":
        if left is None:
            a, b = rng.randint(lo, hi), rng.randint(lo, hi)
            return Step(max(a, b), op, min(a, b))
        return Step(left, op, rng.randint(lo, min(hi, left))) if left >= lo else None
    if op == "div":
        divisor = rng.randint(max(lo, 1), hi)
        return Step(rng.randint(lo, hi) * divisor, op, divisor)
    a = rng.randint(lo, hi) if left is None else left
    return Step(a, op, rng.randint(lo, hi))


def draw_problem(rng: random.Random, config: DataConfig) -> Problem | None:
    """One random problem (None when the draw cannot be completed, e.g. nothing left to give away)."""
    lo, hi = config.min_operand, config.max_operand
    if rng.random() < config.two_step_fraction:
        template = rng.choice(_two_step_templates(config))
    else:
        template = rng.choice(_one_step_templates(rng.choice(config.ops)))
    names = tuple(rng.sample(NAMES, 2))
    noun = rng.choice(OBJECTS)
    steps: list[Step] = []
    for op in template.ops:
        step = _draw_step(rng, op, lo, hi, steps[-1].value if steps else None)
        if step is None:
            return None
        steps.append(step)
    return Problem(template, names, noun, tuple(steps))


def _final(answer: int) -> str:
    return f" The answer is \\boxed{{{answer}}}."


def _slip(value: int, rng: random.Random) -> int:
    """A nearby wrong number, never negative."""
    return value + 1 if value == 0 or rng.random() < 0.5 else value - 1


def candidates(problem: Problem, flaws: list[str], rng: random.Random) -> list[tuple[str, str]]:
    """(kind, solution text) pairs: the correct solution first, then one per flaw kind that applies."""
    answer, steps = problem.answer, problem.steps
    out = [("correct", problem.working() + _final(answer))]
    for flaw in flaws:
        if flaw == "off_by_one":
            wrong = _slip(answer, rng)
            out.append((flaw, problem.working(shown=(*(None,) * (len(steps) - 1), wrong)) + _final(wrong)))
        elif flaw == "wrong_operation":
            last = steps[-1]
            options = [Step(last.left, op, last.right) for op in ("add", "sub", "mul") if op != last.op]
            options = [step for step in options if step.value >= 0 and step.value != answer]
            if options:
                step = rng.choice(options)
                out.append((flaw, problem.working(steps=(*steps[:-1], step)) + _final(step.value)))
        elif flaw == "no_final_format":
            ending = rng.choice(("", f" Answer: {answer}."))
            out.append((flaw, problem.working() + ending))
        elif flaw == "wrong_step":
            shown = (_slip(steps[0].value, rng), *(None,) * (len(steps) - 1))
            out.append((flaw, problem.working(shown=shown) + _final(answer)))
    return out


def _verified(
    problem: Problem, flaws: list[str], rng: random.Random, stats: Counter
) -> list[tuple[str, str, VerifierResult]]:
    """Every candidate of `problem` with its verifier result, counted in `stats`."""
    reference = {"type": "math", "answer": str(problem.answer)}
    results = []
    for kind, text in candidates(problem, flaws, rng):
        result = verify(text, reference)
        stats[f"{kind}.candidates"] += 1
        stats[f"{kind}.passed"] += result.passed
        results.append((kind, text, result))
    if not results[0][2].passed:  # the builder computed this answer itself: failing it is a bug, not data
        raise RuntimeError(f"correct solution fails verification: {results[0][1]!r}: {results[0][2].details}")
    return results


def make_row(kind: str, problem: Problem, config: DataConfig, stats: Counter) -> dict | None:
    """One record of the given kind ("sft", "preference", "rl_query"); None if the problem cannot give one."""
    prompt = [user_message(problem.question)]
    if kind == "rl_query":
        reference = {"type": "math", "answer": str(problem.answer)}
        check = verify(problem.working() + _final(problem.answer), reference)
        if not check.passed:
            raise RuntimeError(f"reference {reference} rejects the correct solution: {check.details}")
        return rl_query_record(CATEGORY, prompt, reference)
    rng = random.Random(f"{config.seed}:{problem.question}")  # per problem, so flaws do not shift later draws
    results = _verified(problem, config.flaws, rng, stats)
    passing = [(text, result) for _, text, result in results if result.passed]
    if kind == "sft":
        text, result = passing[0]
        return sft_record(CATEGORY, [*prompt, {"role": "assistant", "content": text}], SOURCE, result)
    failing = [(flaw, text, result) for flaw, text, result in results if not result.passed]
    if not failing:
        return None
    flaw, rejected, result = rng.choice(failing)
    reason = f"{flaw}: {result.details['failure']}"
    return preference_record(CATEGORY, prompt, passing[0][0], rejected, reason)


def check_disjoint(splits: dict[str, list[dict]]) -> None:
    """Raise ValueError if two splits share a prompt text."""
    owner: dict[str, str] = {}
    for split, rows in splits.items():
        for row in rows:
            text = prompt_text(row["messages"] if "messages" in row else row["prompt"])
            if owner.setdefault(text, split) != split:
                raise ValueError(f"splits {owner[text]!r} and {split!r} share the prompt {text!r}")


def build_with_stats(config: DataConfig) -> tuple[dict[str, list[dict]], dict[str, dict[str, int]]]:
    """All splits, and per candidate kind how many were generated and how many passed the verifier.

    Splits are drawn in a fixed order from one random stream, evaluation splits first, so changing the size of
    the training splits leaves the evaluation splits unchanged.
    """
    check_config(config)
    rng = random.Random(config.seed)
    seen: set[str] = set()
    stats: Counter = Counter()
    splits: dict[str, list[dict]] = {}
    for split, size in config.split_sizes().items():
        rows: list[dict] = []
        repeats = 0
        while len(rows) < size:
            problem = draw_problem(rng, config)
            if problem is None or problem.question in seen:
                repeats += 1
                if repeats > MAX_DUPLICATE_DRAWS:
                    raise ValueError(
                        f"split {split!r}: only {len(seen)} distinct problems found after {repeats} repeated draws; "
                        f"widen min_operand..max_operand ({config.min_operand}..{config.max_operand}), add ops, "
                        "or ask for fewer rows")
                continue
            repeats = 0
            seen.add(problem.question)
            row = make_row(SPLIT_KINDS[split], problem, config, stats)
            if row is not None:
                rows.append(row)
        splits[split] = rows
    check_disjoint(splits)
    kinds = sorted({key.split(".")[0] for key in stats})
    return splits, {k: {"candidates": stats[f"{k}.candidates"], "passed": stats[f"{k}.passed"]} for k in kinds}


def build(config: DataConfig) -> dict[str, list[dict]]:
    """Every split of `config`, as lists of records; a pure function of the config (seed included)."""
    return build_with_stats(config)[0]
