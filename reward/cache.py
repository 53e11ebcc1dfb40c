"""Result cache of the reward service: a bounded LRU of finished item scores plus sharing of in-flight ones.

GRPO samples 8 responses per prompt and short answers repeat, so many items of a step are byte-identical. The
service keys each item by a hash of (prompt, response, reference, model version) (`item_key`; the version names the
reward models' checkpoints and, with a judge, the judge's `identity`: backend, settings, rubric, prompt); a key already
scored is answered from the LRU, and a key being scored right now is awaited rather than computed twice, so the
duplicates among a group cost one forward and one verifier run. Hand-written because it has to sit inside the
asyncio request path with in-flight sharing and a size bound; `functools.lru_cache` has neither, and no FastAPI
library dedupes concurrent identical computations.

A computation runs as its own task, so a caller that disconnects does not cancel the work others await. Results a
caller marks as not cacheable (a verifier or judge timeout or error, which may be load and not the response) are
shared with the callers already waiting but not stored.
"""

import asyncio
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """A short hash of a checkpoint directory's file names, sizes and modification times (cheap, no reads): the
    part of the cache key that changes when a reward model or a judge checkpoint is replaced."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def item_key(prompt: Any, response: str, reference: dict | None, model_version: str) -> str:
    """sha256 of the canonical JSON of (prompt, response, reference, model_version); key order does not matter."""
    payload = json.dumps([prompt, response, reference, model_version], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class ResultCache:
    """LRU of at most `max_entries` results plus the computations in flight; `max_entries=0` turns both off."""

    def __init__(self, max_entries: int):
        if max_entries < 0:
            raise ValueError(f"cache_size must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._done: OrderedDict[str, Any] = OrderedDict()
        self._inflight: dict[str, asyncio.Task] = {}
        self.hits = 0  # answered from the LRU
        self.shared = 0  # joined a computation already in flight
        self.misses = 0  # computed
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._done)

    async def get_or_compute(
        self, key: str, compute: Callable[[], Awaitable[Any]], *, cacheable: Callable[[Any], bool] = lambda _: True
    ) -> tuple[Any, str]:
        """(result, source) for `key`; source "hit" (from the LRU), "shared" (joined the computation in flight) or
        "miss" (`compute()` started here, once per key however many callers wait for it)."""
        if self.max_entries == 0:
            self.misses += 1
            return await compute(), "miss"
        if key in self._done:
            self.hits += 1
            self._done.move_to_end(key)
            return self._done[key], "hit"
        task = self._inflight.get(key)
        source = "shared"
        if task is not None:
            self.shared += 1
        else:
            source = "miss"
            self.misses += 1
            task = asyncio.ensure_future(compute())
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._finish(key, t, cacheable))
        return await asyncio.shield(task), source  # cancelling one waiter leaves the computation to the others

    def _finish(self, key: str, task: asyncio.Task, cacheable: Callable[[Any], bool]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None or not cacheable(task.result()):
            return  # failures are raised to every waiter and recomputed next time
        self._done[key] = task.result()
        if len(self._done) > self.max_entries:
            self._done.popitem(last=False)
            self.evictions += 1

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._done),
            "max_entries": self.max_entries,
            "in_flight": len(self._inflight),
            "hits": self.hits,
            "shared_in_flight": self.shared,
            "misses": self.misses,
            "evictions": self.evictions,
        }
