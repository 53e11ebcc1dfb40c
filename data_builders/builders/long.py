"""Long-generation queries (SFT area 1) by back-translation: a long document is the response, and the instruction
it answers is written for it, with an output-length constraint.

Documents come from `documents` (local files: `.txt` is one document, `.jsonl` one per line in `text_field`,
`.parquet` one per row of that column) and, offline, from `procedural` multi-section reports built from generated
tables (monthly figures per region: each section walks through one region's table, with changes and extremes
computed from it). The instruction is written by the generator when a model backend is configured (the report's
back-translation: "given this text, write the instruction it answers, with its length in words") and otherwise by
a procedural back-translator from the document's title and headings, whose stated length, like a model's, is only
roughly right. The length constraint becomes the reference `{"type": "long", "min_words", "max_words",
"max_tokens"}` (stated length x (1 +- length_tolerance); at most 8,192 tokens, RECIPE.md), and a pair is kept only
if the document meets it: the report's "low-quality pairs filtered out". The response is always the document
itself, so `response_generator` keeps the procedural backend for the sampling step; its other candidates (the
document cut in half, the document with a repeated appendix) give the preference split its rejected replies.
"""

import math
import random
import re
from collections import Counter
from pathlib import Path

from data_builders.config import LongAreaConfig
from data_builders.generators import Candidate, Generator, ProceduralGenerator, Query
from data_builders.records import user_message
from data_builders.seeds import read_jsonl
from verifiers.text import count_words
from verifiers.tokens import count_tokens

CATEGORY = "long"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
REGIONS = ("North", "South", "East", "West", "Central", "Coastal", "Mountain", "Lakes", "Valley", "Island")
ORGS = ("Harbor Logistics", "Greenfield Energy", "Orchid Health", "Summit Tools", "Riverbank Foods", "Atlas Books")
METRICS = (("revenue", "thousand euros"), ("deliveries", "parcels"), ("visits", "patients"), ("orders", "orders"))
KINDS = ("a report", "an annual review", "a briefing document")


def procedural_document(rng: random.Random, sections: int) -> tuple[str, str, list[str]]:
    """(text, title, headings) of a report whose sections describe a generated table, one region each."""
    org, (metric, unit) = rng.choice(ORGS), rng.choice(METRICS)
    year = rng.randint(2015, 2025)
    regions = rng.sample(REGIONS, sections)
    table = {r: [rng.randint(40, 400) for _ in MONTHS] for r in regions}
    title = f"{org}: {metric} by region in {year}"
    totals = {r: sum(v) for r, v in table.items()}
    overview = (f"This report describes monthly {metric} of {org} in {year} across {sections} regions: "
                f"{', '.join(regions)}. Together they recorded {sum(totals.values())} {unit}. "
                f"The largest total came from {max(totals, key=totals.get)} and the smallest from "
                f"{min(totals, key=totals.get)}. Each of the following sections walks through one region month by "
                "month.")
    lines = [f"# {title}", "", "## Overview", "", overview]
    headings = ["Overview"]
    for region in regions:
        values = table[region]
        headings.append(f"The {region} region")
        lines += ["", f"## The {region} region", ""]
        sentences = [f"In January, {metric} in the {region} region reached {values[0]} {unit}."]
        for month, prev, value in zip(MONTHS[1:], values, values[1:]):
            change = (value - prev) / prev * 100
            direction = "rose" if value > prev else "fell" if value < prev else "held steady"
            detail = f" by {abs(change):.1f} percent" if value != prev else ""
            sentences.append(f"In {month}, the figure {direction}{detail} to {value} {unit}.")
        best, worst = max(range(12), key=values.__getitem__), min(range(12), key=values.__getitem__)
        sentences.append(f"The strongest month was {MONTHS[best]} with {values[best]} {unit}, and the weakest was "
                         f"{MONTHS[worst]} with {values[worst]} {unit}; the year closed at {totals[region]} {unit}.")
        lines.append(" ".join(sentences))
    ranked = sorted(regions, key=totals.get, reverse=True)
    headings.append("Conclusion")
    conclusion = (f"Ranked by yearly total, the regions were {', '.join(f'{r} ({totals[r]})' for r in ranked)}. "
                  f"The gap between the first and the last was {totals[ranked[0]] - totals[ranked[-1]]} {unit}, "
                  "which planning for the coming year should take into account.")
    lines += ["", "## Conclusion", "", conclusion]
    return "\n".join(lines) + "\n", title, headings


def read_documents(paths: list[str], field: str) -> list[tuple[str, str]]:
    """(source, text) of every document in `paths`, ValueError naming the file (and line) on bad input."""
    out = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ValueError(f"areas.long.documents: file not found: {path}")
        if path.suffix == ".txt":
            out.append((f"{path.name}", path.read_text(encoding="utf-8")))
        elif path.suffix == ".jsonl":
            for seed in read_jsonl(path):
                if not isinstance(seed.row.get(field), str):
                    raise ValueError(f"{path}:{seed.line}: expected an object with a string field {field!r}")
                out.append((f"{path.name}:{seed.line}", seed.row[field]))
        elif path.suffix == ".parquet":
            import pandas as pd

            frame = pd.read_parquet(path)
            if field not in frame.columns:
                raise ValueError(f"{path}: no column {field!r} (columns: {list(frame.columns)})")
            out += [(f"{path.name}:{i}", str(text)) for i, text in enumerate(frame[field])]
        else:
            raise ValueError(f"areas.long.documents: {path}: expected a .txt, .jsonl or .parquet file")
    return out


def title_and_headings(text: str) -> tuple[str, list[str]]:
    """A document's first line (without '#') as its title and its markdown headings, for the back-translator."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    title = lines[0].lstrip("# ").strip() if lines else "the topic"
    if len(title.split()) > 14:
        title = " ".join(title.split()[:14]) + " ..."
    headings = [line.lstrip("# ").strip() for line in lines[1:] if line.startswith("#")]
    return title, headings


def back_translate(text: str, rng: random.Random) -> str:
    """The procedural back-translator: an instruction naming the title, the sections and an approximate length."""
    title, headings = title_and_headings(text)
    stated = max(10, int(round(count_words(text) * rng.uniform(0.75, 1.3), -1)))
    sections = f" Organise it in sections: {'; '.join(headings)}." if headings else ""
    return f"Write {rng.choice(KINDS)} titled \"{title}\".{sections} Use about {stated} words."


_STATED = re.compile(r"(\d[\d,]*)\s+words", re.IGNORECASE)


def length_reference(instruction: str, area: LongAreaConfig) -> dict | None:
    """The `long` reference of the length the instruction states ("about 800 words"), or None if it states none."""
    found = _STATED.findall(instruction)
    if not found:
        return None
    stated = int(found[-1].replace(",", ""))
    reference = {"type": "long", "min_words": math.floor(stated * (1 - area.length_tolerance)),
                 "max_words": math.ceil(stated * (1 + area.length_tolerance)), "max_tokens": area.max_response_tokens}
    if area.tokenizer:
        reference["tokenizer"] = area.tokenizer
    return reference


def _candidates(text: str) -> tuple[Candidate, ...]:
    paragraphs = text.split("\n\n")
    half = "\n\n".join(paragraphs[: max(1, len(paragraphs) // 2)])
    appendix = "\n\n## Appendix\n\n" + "\n\n".join(paragraphs[len(paragraphs) // 2 :])
    return Candidate(text, "correct"), Candidate(half, "truncated"), Candidate(text + appendix + appendix, "padded")


def make_queries(area: LongAreaConfig, seed: int, generator: Generator | None = None) -> tuple[list[Query], Counter]:
    rng = random.Random(f"{seed}:long")
    dropped: Counter = Counter()
    documents = read_documents(area.documents, area.text_field)
    if area.max_documents is not None:
        documents = documents[: area.max_documents]
    for _ in range(area.procedural):
        text, _, _ = procedural_document(rng, rng.randint(area.min_sections, area.max_sections))
        documents.append(("procedural", text))
    kept = []
    for source, text in documents:
        if count_words(text) < area.min_document_words:
            dropped["document shorter than min_document_words"] += 1
        elif count_tokens(text, area.tokenizer) > area.max_response_tokens:
            dropped["document over max_response_tokens"] += 1
        else:
            kept.append((source, text.strip() + "\n"))
    if generator is not None and generator.name != "procedural":
        asks = [Query(CATEGORY, (user_message(
            f"Here is a document:\n\n{text}\n\nWrite the instruction a user could have given for which this document "
            "is the ideal response. State the length the response should have in words (for example 'in about 800 "
            "words'). Reply with the instruction only."),), {"type": "long", "min_words": 0, "max_words": 10**9},
            f"backtranslation:{source}") for source, text in kept]
        instructions = [samples[0].text.strip() if samples else "" for samples in generator.generate(asks, 1)]
    else:
        instructions = [back_translate(text, rng) for _, text in kept]
    queries, taken = [], set()
    for (source, text), instruction in zip(kept, instructions, strict=True):
        reference = length_reference(instruction, area)
        if reference is None:
            dropped["instruction states no length"] += 1
            continue
        if not reference["min_words"] <= count_words(text) <= reference["max_words"]:
            dropped["document does not fit its length constraint"] += 1
            continue
        if instruction in taken:
            dropped["duplicate instruction"] += 1
            continue
        taken.add(instruction)
        origin = "procedural:long" if source == "procedural" else f"document:long:{source}"
        queries.append(Query(CATEGORY, (user_message(instruction),), reference, origin, _candidates(text), text,
                             instruction))
    return queries, dropped


def response_generator(area: LongAreaConfig, generator: Generator, seed: int) -> Generator:
    """Back-translation: the document is the response, so candidates always come from the offline pool."""
    return ProceduralGenerator(seed=seed)
