"""Math chain-of-thought queries (SFT area 2): GSM8K- and MATH-style seeds plus procedural arithmetic stories.

Each query asks for step-by-step reasoning with the final answer in \\boxed{} and carries
`{"type": "math", "answer": ...}`; its gold answer is the seed's own solution, which must pass that reference
before the query is used. Offline candidates, for the procedural backend, are that solution and flawed versions a
model would plausibly write:

- wrong_answer: the last result and the boxed answer changed (a slip at the end);
- wrong_step: an intermediate result off by one while the final answer stays right (caught by the step check);
- no_final_format: right working, the answer stated without \\boxed{} or "The answer is";
- truncated: the reasoning stops halfway, with no final answer.

Procedural queries reuse `data_builders.arithmetic` (unchanged) for the stories and their candidates, over the
area's own number range and operations.
"""

import random
import re
from collections import Counter

from data_builders import arithmetic
from data_builders.builders.sampling import distinct_queries
from data_builders.config import FLAWS, DataConfig, MathAreaConfig
from data_builders.generators import Candidate, Generator, Query
from data_builders.records import user_message
from data_builders.seeds import MathSeed, parse_math, read_jsonl

CATEGORY = "math"
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: <<48/2=24>>
_RESULT = re.compile(r"(=\s*\$?)(-?\d+(?:\.\d+)?)")
_BOXED = re.compile(r"\\boxed\{")
MAX_DUPLICATE_DRAWS = 20_000


def _prompt(question: str, instruction: str) -> tuple[dict, ...]:
    """The user turn: the question, then the area's `instruction` (MATH_INSTRUCTION by default) unless it is ""."""
    return (user_message(f"{question}\n{instruction}" if instruction else question),)


def perturb(answer: str, rng: random.Random) -> str:
    """A nearby wrong answer: an integer moved by 1..3, else the last digit of the answer changed, else `+1`."""
    text = answer.strip()
    if re.fullmatch(r"-?\d+", text):
        return str(int(text) + rng.choice((-3, -2, -1, 1, 2, 3)))
    digits = [m for m in re.finditer(r"\d", text)]
    if digits:
        last = digits[-1]
        new = str((int(last.group(0)) + rng.randint(1, 8)) % 10)
        if new == "0" and last.start() == 0:
            new = "1"
        return text[: last.start()] + new + text[last.end() :]
    return text + "+1"


def _replace_last_boxed(text: str, content: str | None) -> str:
    """`text` with its last \\boxed{...} holding `content`, or unwrapped to its content when `content` is None."""
    starts = [m for m in _BOXED.finditer(text)]
    if not starts:
        return text
    start = starts[-1]
    depth, end = 1, start.end()
    while end < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    inner = text[start.end() : end - 1]
    return text[: start.start()] + (inner if content is None else f"\\boxed{{{content}}}") + text[end:]


def _truncate(text: str) -> str:
    sentences = re.split(r"(?<=[.!?\n])\s+", text)
    kept = " ".join(sentences[: max(1, len(sentences) // 2)])
    return _replace_last_boxed(kept, None)


def seed_candidates(seed: MathSeed, rng: random.Random) -> tuple[str, list[Candidate]]:
    """(gold solution, offline candidates) for a seed problem."""
    if seed.style == "gsm8k":
        body = _CALCULATOR.sub("", seed.solution).strip()
        gold = f"{body}\nThe answer is \\boxed{{{seed.answer}}}."
        wrong = perturb(seed.answer, rng)
        tail = body.rfind(seed.answer)
        wrong_body = body[:tail] + wrong + body[tail + len(seed.answer) :] if tail >= 0 else body
        out = [Candidate(gold, "correct"),
               Candidate(f"{wrong_body}\nThe answer is \\boxed{{{wrong}}}.", "wrong_answer"),
               Candidate(f"{body}\nSo the result is {seed.answer}.", "no_final_format"),
               Candidate(_truncate(body), "truncated")]
        first = _RESULT.search(body)
        if first:
            slipped = str(int(float(first.group(2))) + 1)
            stepped = body[: first.start(2)] + slipped + body[first.end(2) :]
            out.append(Candidate(f"{stepped}\nThe answer is \\boxed{{{seed.answer}}}.", "wrong_step"))
        return gold, out
    gold = seed.solution if _BOXED.search(seed.solution) else f"{seed.solution}\n\\boxed{{{seed.answer}}}"
    out = [Candidate(gold, "correct"),
           Candidate(_replace_last_boxed(gold, perturb(seed.answer, rng)), "wrong_answer"),
           Candidate(_replace_last_boxed(gold, None), "no_final_format"),
           Candidate(_truncate(gold), "truncated")]
    return gold, out


def seed_queries(area: MathAreaConfig, seed: int) -> list[Query]:
    queries = []
    for path in area.seed_files:
        for row in read_jsonl(path):
            parsed = parse_math(row)
            rng = random.Random(f"{seed}:{parsed.ref}")
            gold, offline = seed_candidates(parsed, rng)
            reference = {"type": "math", "answer": parsed.answer}
            queries.append(Query(CATEGORY, _prompt(parsed.question, area.instruction), reference,
                                 f"seed:{parsed.style}:{parsed.ref}",
                                 tuple(offline), gold, parsed.question))
    return queries if area.max_seed_queries is None else queries[: area.max_seed_queries]


def procedural_queries(area: MathAreaConfig, seed: int, taken: set[str]) -> list[Query]:
    """`area.procedural` distinct arithmetic stories with their correct and flawed solutions."""
    settings = DataConfig(min_operand=area.min_operand, max_operand=area.max_operand, ops=list(area.ops),
                          two_step_fraction=area.two_step_fraction, sft_size=0, preference_size=0,
                          preference_eval_size=0, rl_queries_size=0, heldout_size=0)
    arithmetic.check_config(settings)
    rng = random.Random(f"{seed}:math:procedural")
    queries: list[Query] = []
    repeats = 0
    while len(queries) < area.procedural:
        problem = arithmetic.draw_problem(rng, settings)
        if problem is None or problem.question in taken:
            repeats += 1
            if repeats > MAX_DUPLICATE_DRAWS:
                raise ValueError(f"areas.math.procedural: only {len(queries)} distinct problems in "
                                 f"{area.min_operand}..{area.max_operand}; widen the range or ask for fewer")
            continue
        repeats = 0
        taken.add(problem.question)
        flaw_rng = random.Random(f"{seed}:{problem.question}")
        offline = [Candidate(text, kind) for kind, text in arithmetic.candidates(problem, list(FLAWS), flaw_rng)]
        reference = {"type": "math", "answer": str(problem.answer)}
        queries.append(Query(CATEGORY, _prompt(problem.question, area.instruction), reference, "procedural:arithmetic",
                             tuple(offline), offline[0].text, problem.question))
    return queries


def make_queries(area: MathAreaConfig, seed: int, generator: Generator | None = None) -> tuple[list[Query], Counter]:
    """Seed queries (deduplicated by question) then procedural ones; a pure function of (area, seed)."""
    taken: set[str] = set()
    dropped = Counter()
    queries = distinct_queries(seed_queries(area, seed), dropped, "duplicate seed question", taken)
    return queries + procedural_queries(area, seed, taken), dropped
