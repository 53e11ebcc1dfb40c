"""Robust system instructions (SFT area 8): system prompts composed of persona, tone, format and constraint parts,
and conversations whose response keeps to the system prompt's format, checked by the instruction verifier.

12 personas x 8 tones x 6 policies, with 1..`max_constraints` format rules drawn from the instruction composer's
constraints (`builders.instruction.SUPPORTED`, never two that conflict), give thousands of distinct system prompts.
The format rules are phrased with the verifier's own `describe`, and the reference is the ordinary
`{"type": "instruction", "constraints": [...]}`, so "kept consistent with the conversation" is checked on the
response like any IFEval constraint; persona, tone and policy parts are context the rules must survive. The user
turn is an everyday task (builders.instruction's tasks and topics) that says nothing about format. Candidates come
from the instruction area's response composer: responses that follow every rule, one per broken rule, and one
that ignores the system prompt.
"""

import random
from collections import Counter

from data_builders.builders.instruction import (
    SENTENCES,
    TASKS,
    TOPICS,
    composed_candidates,
    draw_rules,
    instruction_reference,
)
from data_builders.config import SystemAreaConfig
from data_builders.generators import Generator, Query
from data_builders.records import user_message
from verifiers.instruction import CONSTRAINTS

CATEGORY = "system"
PERSONAS = (
    "You are a helpful assistant.", "You are a patient tutor for secondary-school students.",
    "You are the customer-support assistant of a regional train company.", "You are a friendly librarian.",
    "You are an assistant for a community gardening club.", "You are a careful research assistant.",
    "You are a travel advisor for budget travellers.", "You are the help desk of a small software company.",
    "You are a fitness coach who answers questions by message.", "You are a museum guide answering visitors.",
    "You are an assistant that helps people plan their week.", "You are a cooking assistant for busy families.",
)
TONES = (
    "Keep a warm, encouraging tone.", "Be concise and neutral.", "Sound professional but approachable.",
    "Write plainly, as if to a newcomer.", "Be upbeat and practical.", "Stay calm and factual.",
    "Be polite and a little formal.", "Write with light, friendly humour.",
)
POLICIES = (
    "Do not mention that you are following instructions.", "Never ask the user for personal data.",
    "Do not recommend specific brands.", "If you are unsure, say so briefly.",
    "Stay on the user's topic.", "Do not use technical jargon without explaining it.",
)


def system_prompt(rng: random.Random, count: int, topic_text: str) -> tuple[str, list[tuple[str, dict]]]:
    """A system prompt and its format rules as (constraint id, kwargs)."""
    rules = draw_rules(rng, count, topic_text)
    formats = " ".join(CONSTRAINTS[cid].describe(kw) for cid, kw in rules)
    text = f"{rng.choice(PERSONAS)} {rng.choice(TONES)} Format rules for every reply: {formats} {rng.choice(POLICIES)}"
    return text, rules


def make_queries(area: SystemAreaConfig, seed: int, generator: Generator | None = None) -> tuple[list[Query], Counter]:
    rng = random.Random(f"{seed}:system")
    queries, taken, dropped = [], set(), Counter()
    attempts = 0
    while len(queries) < area.procedural:
        attempts += 1
        if attempts > 50 * max(area.procedural, 1):
            raise ValueError(f"areas.system.procedural: could only make {len(queries)} distinct conversations")
        topic, task = rng.choice(TOPICS), rng.choice(TASKS)
        system, rules = system_prompt(rng, rng.randint(1, area.max_constraints),
                                      " ".join(SENTENCES).format(topic=topic, Topic=topic))
        user = task.format(topic=topic)
        key = f"{system}\n{user}"
        if key in taken:
            continue
        taken.add(key)
        gold, offline = composed_candidates(topic, rules, key, f"{seed}:system:{key}")
        if gold is None:
            dropped["composer could not follow the system prompt"] += 1
            continue
        messages = ({"role": "system", "content": system}, user_message(user))
        queries.append(Query(CATEGORY, messages, instruction_reference(rules, key), "procedural:system",
                             tuple(offline), gold, key))  # fmt: skip
    return queries, dropped
