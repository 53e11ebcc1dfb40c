"""Code queries (SFT area 3): MBPP/HumanEval seeds, seeds in 20 languages and procedural function tasks, verified by
running tests.

Every query carries `{"type": "code", "language": ..., "tests": ..., "entry_point": ...}`; a candidate passes only
if the code verifier (`verifiers.code.verify_code`) extracts its code and the tests pass in the sandbox, as the
report keeps only code that passes its unit tests. The seed's reference solution (or the task's correct code) is
the gold answer and must pass before the query is used.

Languages: procedural tasks come in every language of `areas.code.languages` that a family has code for (20 are
accepted: the sandbox's table); their tests are translated from the family's typed examples the MultiPL-E way
(`multipl_e.translate_tests`), and queries outside Python, JavaScript and C++ also show the MultiPL-E signature
(Java's `class Problem`, Go's `package main`, ...), since the translated tests call exactly that. Seed files may hold
rows in any of those languages (`parse_multilingual_code`): a row with a `language` field and either a typed task
(`name`, `params`, `returns`, `description`, `examples`: tests translated here) or the tests written out (`prompt`,
`tests`, `entry_point`), plus the reference solution in `code`. Rows without `language` are Python MBPP/HumanEval
rows (`data_builders.seeds.parse_code`). A row whose language is not in `areas.code.languages` is skipped (counted).

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

from data_builders.builders.code_tasks import FAMILIES, FENCES, LANGUAGE_NAMES, Family
from data_builders.builders.multipl_e import (
    Unsupported,
    entry_name,
    supports,
    task_from_dict,
    translate_prompt,
    translate_tests,
)
from data_builders.config import CODE_LANGUAGES, CodeAreaConfig
from data_builders.generators import Candidate, Generator, Query
from data_builders.records import user_message
from data_builders.seeds import CodeSeed, SeedRow, parse_code, read_jsonl
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
# ours: runtimes whose start-up alone takes seconds on a loaded machine (measured: Racket 5-8 s, R and Ruby 3-5 s
# with 16 runs at once; JVM and mono about 1 s); compile and check steps have the sandbox's own limits
SLOW_START_TIMEOUT_S = {"racket": 20.0, "r": 15.0, "ruby": 15.0, "scala": 10.0, "kotlin": 10.0, "java": 10.0,
                        "csharp": 10.0, "typescript": 10.0}
ORIGINAL_LANGUAGES = ("python", "javascript", "cpp")  # prompts without a signature block, as before
INTROS = ("Here is the implementation:", "This does it:", "Sure. Here is a function that works:", "")


def _answer(code: str, language: str, intro: str) -> str:
    block = f"```{FENCES[language]}\n{code.rstrip()}\n```"
    return f"{intro}\n\n{block}\n" if intro else f"{block}\n"


def procedural_pool(languages: Sequence[str]) -> list[tuple[Family, str, str, str]]:
    """Every distinct (family, language, entry name, phrasing) a procedural query can be made from: the languages a
    family has code for and whose translator can express its types."""
    return [(family, language, name.format(entry=family.entry), phrasing)
            for family in FAMILIES for language in languages
            if language in family.code and supports(family.task, language)
            for name in NAME_VARIANTS for phrasing in PHRASINGS]


def _renamed(text: str, old: str, new: str) -> str:
    return re.sub(rf"\b{re.escape(old)}\b", new, text)


def timeout_for(language: str) -> float:
    return SLOW_START_TIMEOUT_S.get(language, PROCEDURAL_TIMEOUT_S)


def procedural_queries(area: CodeAreaConfig, seed: int, taken: set[str]) -> list[Query]:
    pool = procedural_pool(area.languages)
    if area.procedural > len(pool):
        raise ValueError(f"areas.code.procedural: {area.procedural} asked, but the procedural task families give "
                         f"{len(pool)} distinct queries for languages {area.languages}; ask for fewer or add seeds")
    rng = random.Random(f"{seed}:code:procedural")
    queries = []
    for family, language, variant, phrasing in rng.sample(pool, area.procedural):
        task = family.task.renamed(variant)
        old, entry = entry_name(family.entry, language), entry_name(variant, language)
        description = _renamed(family.description, family.entry, entry)
        prompt = phrasing.format(lang=LANGUAGE_NAMES[language], entry=entry, description=description,
                                 fence=FENCES[language])
        types = (task.returns, *dict(task.params).values())
        containers = any(t.kind not in ("int", "float", "bool", "str") for t in types)
        # C++ tests pass std::vector<long>
        if language not in ORIGINAL_LANGUAGES or (language == "cpp" and containers):
            prompt += (f"\nComplete this {LANGUAGE_NAMES[language]} code (the tests call exactly this signature):"
                       f"\n\n```{FENCES[language]}\n{translate_prompt(task, language).rstrip()}\n```")
        if prompt in taken:
            continue
        taken.add(prompt)
        tests = translate_tests(task, language)
        local = random.Random(f"{seed}:{prompt}")
        offline = []
        for kind, code in family.code[language].items():
            code = _renamed(code, old, entry)
            intros = local.sample(INTROS, 2 if kind == "correct" else 1)
            offline += [Candidate(_answer(code, language, intro), kind) for intro in intros]
        reference = {"type": "code", "language": language, "tests": tests, "entry_point": entry,
                     "timeout_s": timeout_for(language)}
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


def parse_multilingual_code(row: SeedRow) -> tuple[str, str, str, str | None, str]:
    """(language, prompt, tests, entry_point, solution) of a seed row with a `language` field; ValueError naming the
    file and line. A typed task (`name`, `params`, `returns`, `description`, `examples`) gets the MultiPL-E prompt
    and translated tests; otherwise `prompt` and `tests` are taken as written (tests in that language, appended after
    the code, as the code verifier runs them)."""
    language = row.text("language").strip().lower()
    if language not in CODE_LANGUAGES:
        raise row.fail(f"field 'language' must be one of {list(CODE_LANGUAGES)}, got {language!r}")
    solution = row.text("code", "solution")
    if "params" in row.row or "examples" in row.row:
        try:
            task = task_from_dict(row.row)
            tests = translate_tests(task, language)
            signature = translate_prompt(task, language)
        except Unsupported as exc:
            raise row.fail(f"typed task cannot be translated to {language}: {exc}") from exc
        except ValueError as exc:
            raise row.fail(f"typed task: {exc}") from exc
        entry = entry_name(task.name, language)
        prompt = (f"Complete this {LANGUAGE_NAMES[language]} function; reply with the whole function in a "
                  f"```{FENCES[language]} block.\n\n```{FENCES[language]}\n{signature.rstrip()}\n```")
        return language, prompt, tests, entry, solution.replace("\r\n", "\n")
    prompt, tests = row.text("prompt", "text"), row.text("tests", "test")
    entry = row.row.get("entry_point")
    if entry is not None and (not isinstance(entry, str) or not entry.isidentifier()):
        raise row.fail(f"field 'entry_point' must be an identifier or null, got {entry!r:.80}")
    return language, prompt.strip(), tests, entry, solution.replace("\r\n", "\n")


def multilingual_seed_query(row: SeedRow, seed: int) -> Query:
    language, prompt, tests, entry, solution = parse_multilingual_code(row)
    local = random.Random(f"{seed}:{row.ref}")
    gold = _answer(solution, language, local.choice(INTROS))
    offline = [Candidate(gold, "correct")]
    if language == "python":
        offline += [Candidate(_answer(code, language, local.choice(INTROS)), kind) for kind, code in mutants(solution)]
    reference = {"type": "code", "language": language, "tests": tests, "entry_point": entry,
                 "timeout_s": timeout_for(language)}
    return Query(CATEGORY, (user_message(prompt),), reference, f"seed:{language}:{row.ref}", tuple(offline), gold,
                 prompt)


def make_queries(area: CodeAreaConfig, seed: int, generator: Generator | None = None) -> tuple[list[Query], Counter]:
    taken: set[str] = set()
    queries, dropped = [], Counter()
    for path in area.seed_files:
        for row in read_jsonl(path):
            if "language" in row.row:
                language = str(row.row["language"]).strip().lower()
                if language in CODE_LANGUAGES and language not in area.languages and language != "python":
                    dropped[f"seed in a language not in areas.code.languages ({language})"] += 1
                    continue
                query = multilingual_seed_query(row, seed)
            else:
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
