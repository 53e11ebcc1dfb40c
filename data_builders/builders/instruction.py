"""Instruction-following queries (SFT area 4): a base task plus 1-3 verifiable constraints, and IFEval seeds.

A procedural prompt is a writing task ("Write a short blog post about urban gardening.") followed by constraints
drawn from the instruction verifier's registry (`verifiers.instruction.CONSTRAINTS`), never two that IFEval keeps
apart (`CONFLICTS`), each phrased with the registry's own `describe`. Its reference is
`{"type": "instruction", "constraints": [{"kind": id, **kwargs}, ...], "prompt": ...}`.

Offline candidates come from a small response composer: topic sentences, then what each constraint needs
(keywords, placeholders, highlights, bullets, paragraphs or sections, a title, a postscript, an end phrase,
quotes, case, no commas, JSON), each constraint either followed or deliberately broken (one candidate per broken
constraint, plus one that ignores all of them). The number of body sentences is searched so that the length
constraints come out as intended; a composed "followed" response is the query's gold answer, so a composer bug
drops the query instead of entering the data. IFEval-style seed prompts get composed candidates when all their
constraints are ones the composer writes; other seed prompts need a model backend and are dropped (and counted)
under the procedural one.
"""

import json
import random
from collections import Counter
from collections.abc import Callable

from data_builders.config import InstructionAreaConfig
from data_builders.generators import Candidate, Generator, Query
from data_builders.records import user_message
from data_builders.seeds import parse_instruction, read_jsonl
from verifiers.instruction import CONFLICTS, CONSTRAINTS, KEYWORD_POOL, check_constraints

CATEGORY = "instruction"
TOPICS = (
    "urban gardening", "public libraries", "learning a new language", "night sky watching", "home cooking",
    "long-distance running", "board games", "saving money", "bird watching", "remote work", "recycling",
    "train travel", "photography", "volunteering", "sleep habits", "chess", "baking bread", "rock climbing",
    "podcasts", "museums", "beekeeping", "learning to swim", "journaling", "city parks",
)
TASKS = (
    "Write a short blog post about {topic}.", "Write an email to a colleague about {topic}.",
    "Explain {topic} to a ten-year-old.", "Give advice to someone who wants to get into {topic}.",
    "Describe the benefits of {topic}.", "Write a short essay on {topic}.",
)
SENTENCES = (
    "{Topic} shapes the way many people spend their free time.",
    "Most people first notice {topic} when a friend mentions it.",
    "There are simple ways to learn more about {topic}, and most of them are free.",
    "Experts often disagree about the best approach to {topic}.",
    "A small change in routine can make {topic} far more enjoyable.",
    "Local groups often organise events around {topic}.",
    "Books and online courses make {topic} easier to understand.",
    "The story of {topic} is older than most people think.",
    "Good habits make {topic} more rewarding over time.",
    "Curiosity, patience and a little planning are the best starting points.",
    "Some of the best ideas about {topic} come from beginners.",
    "It helps to talk about {topic} with friends and family.",
    "Progress is slow at first, but it builds steadily.",
    "Nobody needs expensive equipment to begin.",
)
TIPS = ("Start small", "Set a regular time", "Keep simple notes", "Ask for feedback", "Join a local group",
        "Track your progress", "Celebrate small wins", "Stay patient")
HIGHLIGHTS = ("start small", "stay curious", "ask questions", "keep notes", "be patient", "share what you learn")
PLACEHOLDER_FIELDS = ("name", "date", "place", "email")
FILLER_WORDS = ("thing", "idea", "part")  # for frequency sentences: "A {keyword} is a useful ..."
PS_LINES = ("I hope this helps you get started.", "Let me know what you think.")
# Constraints the composer writes; the rest of the registry needs a model backend.
SUPPORTED = (
    "punctuation:no_comma", "change_case:english_lowercase", "change_case:english_capital",
    "length_constraints:number_words", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "detectable_format:title",
    "detectable_content:postscript", "startend:end_checker", "startend:quotation",
    "detectable_format:number_bullet_lists", "detectable_format:number_highlighted_sections",
    "detectable_content:number_placeholders", "detectable_format:json_format", "detectable_format:multiple_sections",
)
# Pairs the composer cannot lay out together, beyond IFEval's own conflicts.
LAYOUT_CONFLICTS = {frozenset(("length_constraints:number_paragraphs", "detectable_format:multiple_sections")),
                    frozenset(("length_constraints:number_sentences", "detectable_format:multiple_sections")),
                    frozenset(("length_constraints:number_sentences", "detectable_format:number_bullet_lists"))}


def _kwargs(cid: str, rng: random.Random, body_text: str) -> dict:
    """Kwargs the composer can meet (smaller ranges than IFEval's for lengths), via the registry's sampler."""
    free = [w for w in KEYWORD_POOL if w not in body_text.lower()]
    if cid == "length_constraints:number_words":
        return {"num_words": rng.randint(15, 90), "relation": rng.choice(("less than", "at least"))}
    if cid == "length_constraints:number_sentences":
        return {"num_sentences": rng.randint(2, 8), "relation": rng.choice(("less than", "at least"))}
    if cid == "length_constraints:number_paragraphs":
        return {"num_paragraphs": rng.randint(1, 4)}
    if cid == "keywords:existence":
        return {"keywords": sorted(rng.sample(free, 2))}
    if cid == "keywords:frequency":
        return {"keyword": rng.choice(free), "frequency": rng.randint(1, 3),
                "relation": rng.choice(("less than", "at least"))}
    if cid == "keywords:forbidden_words":
        return {"forbidden_words": sorted(rng.sample(free, 2))}
    if cid == "detectable_format:multiple_sections":
        return {"section_spliter": rng.choice(("Section", "SECTION")), "num_sections": rng.randint(2, 4)}
    return CONSTRAINTS[cid].sample_kwargs(rng)


def draw_constraints(rng: random.Random, count: int, pool: tuple[str, ...] = SUPPORTED) -> list[str]:
    """`count` (or fewer, when conflicts leave none) distinct ids, pairwise free of conflicts."""
    chosen: list[str] = []
    candidates = list(pool)
    rng.shuffle(candidates)
    for cid in candidates:
        if len(chosen) == count:
            break
        if any(cid in CONFLICTS[other] or frozenset((cid, other)) in LAYOUT_CONFLICTS for other in chosen):
            continue
        chosen.append(cid)
    return chosen


def draw_rules(rng: random.Random, count: int, body_text: str) -> list[tuple[str, dict]]:
    """`draw_constraints`' ids, each with arguments drawn for `body_text` and validated: (constraint id, kwargs)."""
    return [(cid, CONSTRAINTS[cid].validate(_kwargs(cid, rng, body_text))) for cid in draw_constraints(rng, count)]


def _count_sentence(keyword: str, times: int) -> list[str]:
    return [f"A {keyword} is a useful {FILLER_WORDS[i % len(FILLER_WORDS)]} to keep in mind." for i in range(times)]


def compose(topic: str, body: list[str], constraints: list[tuple[str, dict]], follow: dict[str, bool],
            sentences: int, rng_key: str) -> str:
    """One response with `sentences` body sentences; `follow[id]` says whether to follow or break each constraint."""
    rng = random.Random(rng_key)
    kw = dict(constraints)
    ok = follow.get
    content = list(body[:sentences])
    if "keywords:existence" in kw:
        words = kw["keywords:existence"]["keywords"]
        shown = words if ok("keywords:existence") else words[:0]
        if shown:
            content.append(f"It even connects to {' and '.join(shown)}.")
    if "keywords:frequency" in kw:
        spec = kw["keywords:frequency"]
        if spec["relation"] == "at least":
            times = spec["frequency"] if ok("keywords:frequency") else spec["frequency"] - 1
        else:
            times = 0 if ok("keywords:frequency") else spec["frequency"]
        content += _count_sentence(spec["keyword"], times)
    if "keywords:forbidden_words" in kw and not ok("keywords:forbidden_words"):
        content.append(f"Some compare it to a {kw['keywords:forbidden_words']['forbidden_words'][0]}.")
    if "detectable_content:number_placeholders" in kw:
        n = kw["detectable_content:number_placeholders"]["num_placeholders"] - (not ok(
            "detectable_content:number_placeholders"))
        if n > 0:
            fields = " and ".join(f"[{f}]" for f in (PLACEHOLDER_FIELDS * 2)[:n])
            content.append(f"Fill in {fields} before you share this.")
    if "detectable_format:number_highlighted_sections" in kw:
        n = kw["detectable_format:number_highlighted_sections"]["num_highlights"] - (not ok(
            "detectable_format:number_highlighted_sections"))
        if n > 0:
            content.append("Remember to " + " and ".join(f"*{h}*" for h in (HIGHLIGHTS * 2)[:n]) + ".")
    if "detectable_format:json_format" in kw and ok("detectable_format:json_format"):
        text = json.dumps({"topic": topic, "response": " ".join(content)}, indent=2)
        return f"```json\n{text}\n```" if rng.random() < 0.5 else text
    bullets: list[str] = []
    if "detectable_format:number_bullet_lists" in kw:
        n = kw["detectable_format:number_bullet_lists"]["num_bullets"]
        n += not ok("detectable_format:number_bullet_lists")
        bullets = [f"* {tip}." for tip in (TIPS * 2)[:n]]
    groups = 2 if len(content) >= 4 else 1
    divider = "\n\n"
    headers: list[str] = []
    if "length_constraints:number_paragraphs" in kw:
        target = kw["length_constraints:number_paragraphs"]["num_paragraphs"]
        groups = target if ok("length_constraints:number_paragraphs") else target + 1
        divider = "\n***\n"
    if "detectable_format:multiple_sections" in kw:
        spec = kw["detectable_format:multiple_sections"]
        groups = spec["num_sections"] if ok("detectable_format:multiple_sections") else spec["num_sections"] - 1
        headers = [f"{spec['section_spliter']} {i + 1}\n" for i in range(groups)]
    if groups > len(content) or groups < 1:
        return ""  # this layout cannot be made with so few sentences; the search tries another length
    chunks = [content[i * len(content) // groups : (i + 1) * len(content) // groups] for i in range(groups)]
    paragraphs = [(headers[i] if headers else "") + " ".join(chunk) for i, chunk in enumerate(chunks)]
    if bullets:
        paragraphs[-1] += "\n" + "\n".join(bullets)
    text = divider.join(paragraphs)
    if "detectable_format:title" in kw and ok("detectable_format:title"):
        text = f"<<{topic.title()}>>\n\n{text}"
    if "detectable_content:postscript" in kw and ok("detectable_content:postscript"):
        text += f"\n\n{kw['detectable_content:postscript']['postscript_marker']} {rng.choice(PS_LINES)}"
    if "startend:end_checker" in kw and ok("startend:end_checker"):
        text += f"\n\n{kw['startend:end_checker']['end_phrase']}"
    if "startend:quotation" in kw and ok("startend:quotation"):
        text = f'"{text}"'
    if "change_case:english_lowercase" in kw and ok("change_case:english_lowercase"):
        text = text.lower()
    if "change_case:english_capital" in kw and ok("change_case:english_capital"):
        text = text.upper()
    if "punctuation:no_comma" in kw:
        if ok("punctuation:no_comma"):
            text = text.replace(", ", " ").replace(",", "")
        elif "," not in text:
            text += "\n\nIn short, give it a try."
    return text


def composed_candidates(topic: str, constraints: list[tuple[str, dict]], prompt: str, key: str,
                        checker: Callable = check_constraints) -> tuple[str | None, list[Candidate]]:
    """(gold, offline candidates): two responses that follow every constraint, one per broken constraint, one
    that ignores them all. Each is composed at the first body length where the verifier agrees with the intent."""
    rng = random.Random(key)
    body = [s.format(topic=topic, Topic=topic[0].upper() + topic[1:]) for s in SENTENCES]
    ids = [cid for cid, _ in constraints]
    out: list[Candidate] = []

    def make(follow: dict[str, bool], kind: str, attempt: int) -> None:
        order = body[:]
        random.Random(f"{key}:{kind}:{attempt}").shuffle(order)
        start = rng.randint(2, len(body))
        for sentences in [*range(start, len(body) + 1), *range(start - 1, 0, -1)]:
            text = compose(topic, order, constraints, follow, sentences, f"{key}:{kind}")
            if text and check_constraints(text, constraints, prompt) == [follow[c] for c in ids]:
                if all(text != c.text for c in out):
                    out.append(Candidate(text, kind))
                return

    everything = {cid: True for cid in ids}
    make(everything, "correct", 0)
    make(everything, "correct", 1)
    gold = out[0].text if out else None
    for cid in ids:
        make({**everything, cid: False}, f"violates:{cid}", 0)
    if len(ids) > 1:
        make({cid: False for cid in ids}, "ignores_all", 0)
    return gold, out


def instruction_reference(constraints: list[tuple[str, dict]], prompt: str) -> dict:
    return {"type": "instruction", "constraints": [{"kind": cid, **kw} for cid, kw in constraints], "prompt": prompt}


def procedural_queries(area: InstructionAreaConfig, seed: int, taken: set[str]) -> tuple[list[Query], Counter]:
    rng = random.Random(f"{seed}:instruction:procedural")
    queries, dropped = [], Counter()
    attempts = 0
    while len(queries) < area.procedural:
        attempts += 1
        if attempts > 50 * max(area.procedural, 1):
            raise ValueError(f"areas.instruction.procedural: could only make {len(queries)} distinct prompts")
        topic, task = rng.choice(TOPICS), rng.choice(TASKS)
        body_text = " ".join(SENTENCES).format(topic=topic, Topic=topic)
        constraints = draw_rules(rng, rng.randint(1, area.max_constraints), body_text)
        prompt = " ".join([task.format(topic=topic), *(CONSTRAINTS[cid].describe(kw) for cid, kw in constraints)])
        if prompt in taken:
            continue
        taken.add(prompt)
        gold, offline = composed_candidates(topic, constraints, prompt, f"{seed}:{prompt}")
        if gold is None:
            dropped["composer could not follow the constraints"] += 1
            continue
        queries.append(Query(CATEGORY, (user_message(prompt),), instruction_reference(constraints, prompt),
                             "procedural:instruction", tuple(offline), gold, prompt))
    return queries, dropped


def seed_queries(area: InstructionAreaConfig, seed: int, taken: set[str]) -> tuple[list[Query], Counter]:
    queries, dropped = [], Counter()
    for path in area.seed_files:
        for row in read_jsonl(path):
            parsed = parse_instruction(row, known=set(CONSTRAINTS))
            if parsed.prompt in taken:
                dropped["duplicate seed prompt"] += 1
                continue
            taken.add(parsed.prompt)
            try:
                constraints = [(cid, CONSTRAINTS[cid].validate(kw)) for cid, kw in parsed.constraints]
            except ValueError as exc:
                raise ValueError(f"{parsed.where}: {exc}") from exc
            offline: list[Candidate] = []
            gold = None
            if all(cid in SUPPORTED for cid, _ in constraints):
                gold, offline = composed_candidates("this topic", constraints, parsed.prompt,
                                                    f"{seed}:{parsed.prompt}")
            reference = instruction_reference(constraints, parsed.prompt)
            queries.append(Query(CATEGORY, (user_message(parsed.prompt),), reference, f"seed:ifeval:{parsed.ref}",
                                 tuple(offline), gold, parsed.prompt))
    if area.max_seed_queries is not None:
        queries = queries[: area.max_seed_queries]
    return queries, dropped


def make_queries(
    area: InstructionAreaConfig, seed: int, generator: Generator | None = None
) -> tuple[list[Query], Counter]:
    taken: set[str] = set()
    seeds, dropped = seed_queries(area, seed, taken)
    procedural, more = procedural_queries(area, seed, taken)
    return seeds + procedural, dropped + more
