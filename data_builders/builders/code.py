"""Code queries (SFT area 3): MBPP/HumanEval seeds and procedural function tasks, verified by running tests.

Every query carries `{"type": "code", "language": ..., "tests": ..., "entry_point": ...}`; a candidate passes only
if the code verifier (`verifiers.code.verify_code`) extracts its code and the tests pass in the sandbox, as the
report keeps only code that passes its unit tests. The seed's reference solution (or the task's correct code) is
the gold answer and must pass before the query is used.

Offline candidates: for procedural tasks (`code_tasks.py`), the correct code and the family's realistic bugs; for
seeds, the reference solution and mutants of it (a syntax error, a loop bound moved by one, a dropped last line, a
constant return), each kept as whatever the sandbox says it is. Candidates are verified concurrently with
`verify_code_many` (the sandbox's worker pool), whose verdicts are `verify_code`'s own. Procedural tasks set
`timeout_s` to 6 seconds (ours), so an infinite-loop candidate costs 6 s of a worker, not the default 10.
"""

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence

from data_builders.builders.code_tasks import FAMILIES, FENCES, LANGUAGE_NAMES, Family, render_tests
from data_builders.config import CodeAreaConfig
from data_builders.generators import Candidate, Generator, Query
from data_builders.records import user_message
from data_builders.seeds import CodeSeed, parse_code, read_jsonl
from verifiers import VerifierResult
from verifiers.code import verify_code_many

CATEGORY = "code"
PHRASINGS = (
    "Write a {lang} function `{entry}` that {description}. Reply with the code in a ```{fence} block.",
    "Implement `{entry}` in {lang}: it {description}. Put the complete function in a ```{fence} code block.",
    "In {lang}, define a function named `{entry}` which {description}. Answer with a ```{fence} block.",
    "I need a {lang} function called `{entry}`. It {description}. Please give the code in a ```{fence} block.",
)
# Other names a task may ask for; code and tests are renamed together.
NAME_VARIANTS = ("{entry}", "compute_{entry}", "{entry}_value", "my_{entry}")
PROCEDURAL_TIMEOUT_S = 6.0  # ours: correct solutions need well under 0.5 s of CPU; margin for a loaded machine
INTROS = ("Here is the implementation:", "This does it:", "Sure. Here is a function that works:", "")


def _answer(code: str, language: str, intro: str) -> str:
    block = f"```{FENCES[language]}\n{code.rstrip()}\n```"
    return f"{intro}\n\n{block}\n" if intro else f"{block}\n"


def procedural_pool(languages: Sequence[str]) -> list[tuple[Family, str, str, str]]:
    """Every distinct (family, language, entry name, phrasing) a procedural query can be made from."""
    return [(family, language, name.format(entry=family.entry), phrasing)
            for family in FAMILIES for language in languages if language in family.code
            for name in NAME_VARIANTS for phrasing in PHRASINGS]


def _renamed(text: str, old: str, new: str) -> str:
    return re.sub(rf"\b{re.escape(old)}\b", new, text)


def procedural_queries(area: CodeAreaConfig, seed: int, taken: set[str]) -> list[Query]:
    pool = procedural_pool(area.languages)
    if area.procedural > len(pool):
        raise ValueError(f"areas.code.procedural: {area.procedural} asked, but the procedural task families give "
                         f"{len(pool)} distinct queries for languages {area.languages}; ask for fewer or add seeds")
    rng = random.Random(f"{seed}:code:procedural")
    queries = []
    for family, language, entry, phrasing in rng.sample(pool, area.procedural):
        description = _renamed(family.description, family.entry, entry)
        prompt = phrasing.format(lang=LANGUAGE_NAMES[language], entry=entry, description=description,
                                 fence=FENCES[language])
        if prompt in taken:
            continue
        taken.add(prompt)
        tests = _renamed(render_tests(family, language), family.entry, entry)
        local = random.Random(f"{seed}:{prompt}")
        offline = []
        for kind, code in family.code[language].items():
            code = _renamed(code, family.entry, entry)
            intros = local.sample(INTROS, 2 if kind == "correct" else 1)
            offline += [Candidate(_answer(code, language, intro), kind) for intro in intros]
        reference = {"type": "code", "language": language, "tests": tests, "entry_point": entry,
                     "timeout_s": PROCEDURAL_TIMEOUT_S}
        queries.append(Query(CATEGORY, (user_message(prompt),), reference, f"procedural:code:{family.name}:{language}",
                             tuple(offline), offline[0].text, prompt))
    return queries


def mutants(code: str) -> list[tuple[str, str]]:
    """(kind, code) bugs a model plausibly writes, made from a correct solution; the sandbox judges each."""
    out = []
    broken = re.sub(r"^(\s*def [^\n]*\)[^\n:]*):", r"\1", code, count=1, flags=re.MULTILINE)
    if broken != code:
        out.append(("syntax_error", broken))
    bound = re.sub(r"range\(([^()]*(?:\([^()]*\))?[^()]*)\)", r"range(\1 - 1)", code, count=1)
    if bound != code:
        out.append(("off_by_one", bound))
    lines = code.rstrip().splitlines()
    if len(lines) > 2:
        out.append(("truncated", "\n".join(lines[:-1]) + "\n"))
    constant = re.sub(r"^(\s*)return .+$", r"\1return None", code, count=1, flags=re.MULTILINE)
    if constant != code:
        out.append(("wrong_return", constant))
    return out


def seed_query(parsed: CodeSeed, seed: int) -> Query:
    local = random.Random(f"{seed}:{parsed.ref}")
    gold = _answer(parsed.solution, "python", local.choice(INTROS))
    offline = [Candidate(gold, "correct")]
    for kind, code in mutants(parsed.solution):
        offline.append(Candidate(_answer(code, "python", local.choice(INTROS)), kind))
    reference = {"type": "code", "language": "python", "tests": parsed.tests, "entry_point": parsed.entry_point}
    return Query(CATEGORY, (user_message(parsed.prompt),), reference, f"seed:{parsed.style}:{parsed.ref}",
                 tuple(offline), gold, parsed.prompt)


def make_queries(area: CodeAreaConfig, seed: int, generator: Generator | None = None) -> tuple[list[Query], Counter]:
    taken: set[str] = set()
    queries, dropped = [], Counter()
    for path in area.seed_files:
        for row in read_jsonl(path):
            query = seed_query(parse_code(row), seed)
            if query.key in taken:
                dropped["duplicate seed task"] += 1
                continue
            taken.add(query.key)
            queries.append(query)
    if area.max_seed_queries is not None:
        queries = queries[: area.max_seed_queries]
    return queries + procedural_queries(area, seed, taken), dropped


def batch_verifier(area: CodeAreaConfig) -> Callable[[Sequence[tuple[str, dict]]], list[VerifierResult]]:
    """`verify_code_many` on `area.workers` sandboxes: `verify_code`'s verdicts, run concurrently."""
    return lambda items: verify_code_many(items, workers=area.workers)
