"""The offline procedural backend (the default): no model, candidates written by each area's task maker.

Each query carries a pool of candidate responses, correct ones and ones flawed the way model outputs are
(an off-by-one loop bound, a wrong intermediate step, a violated constraint). This backend draws k of them without
replacement, with a random stream seeded by (seed, query), the way a model samples k responses at a temperature:
some draws hold no correct candidate and some no flawed one, so rejection sampling and pairing have real work to
do and real drops to count. A query without offline candidates gets none (the builders count it as needing a
model backend). Hand-written because the point is a model-free, byte-reproducible stand-in.
"""

import hashlib
import random
from collections.abc import Sequence

from generators.base import Candidate, Query


class ProceduralGenerator:
    """Draws k of each query's offline candidates; a pure function of (queries, k, seed)."""

    name = "procedural"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def generate(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out = []
        for query in queries:
            if not query.offline:  # e.g. a seed prompt no task maker can answer: it needs a model backend
                out.append([])
                continue
            key = hashlib.sha256(f"{self.seed}\n{query.source}\n{query.messages[-1]['content']}".encode()).digest()
            rng = random.Random(key)
            pool = list(query.offline)
            out.append(rng.sample(pool, min(k, len(pool))))
        return out
