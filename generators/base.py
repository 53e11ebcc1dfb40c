"""What every generator takes and returns: queries in, k candidate responses per query out.

A `Query` is a prompt with the verifier `reference` that decides its candidates, plus, for the offline procedural
backend, the candidate responses its area wrote for it (correct ones and realistically flawed ones). Model
backends ignore those and sample their own. The builders and the reward service's judge only ever see the
`Generator` protocol, so swapping the procedural backend for a local model or a vLLM server changes no builder
code, and the judge runs on either model backend.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Candidate:
    """One response to a query; `kind` says how it was made ("correct", a flaw name, or "sampled" for a model)."""

    text: str
    kind: str = "sampled"
    tokens: int | None = None  # tokens generated, when the backend counts them (HF, OpenAI usage); else None


@dataclass(frozen=True)
class Query:
    """A prompt to answer and the reference that checks answers; `offline` candidates feed the procedural backend.

    `gold` is a response known to be right (a seed's reference solution), used to prove the reference is sound
    before the query is used: a reference that rejects its own gold answer is a broken query, not data.
    """

    category: str  # the SFT area: "math", "code", "instruction", "instruction_code"
    messages: tuple[dict, ...]  # chat prompt, ending with the user turn
    reference: dict  # verifier spec, e.g. {"type": "math", "answer": "12"}
    source: str  # where the query came from, e.g. "procedural:code", "seed:gsm8k:train.jsonl:12"
    offline: tuple[Candidate, ...] = field(default=())  # candidates the procedural backend draws from
    gold: str | None = None  # a response that must pass `reference`, when one is known
    key: str = ""  # what makes two queries the same task (deduplication); the prompt text when empty


@runtime_checkable
class Generator(Protocol):
    """Something that answers queries: `generate(queries, k)[i]` holds k candidates for `queries[i]`."""

    name: str

    def generate(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]: ...
