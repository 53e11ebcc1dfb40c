"""DynamicBatcher: concurrent callers share forwards and each gets its own result."""

import asyncio
import threading
import time

import pytest

from reward import batching
from reward.batching import DynamicBatcher


class Recorder:
    """batch_fn that squares numbers and records every batch it was called with (and from which thread)."""

    def __init__(self, delay_s: float = 0.0):
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s

    def __call__(self, items):
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        return [x * x for x in items]


async def _run(batcher: DynamicBatcher, coroutine_factory):
    await batcher.start()
    try:
        return await coroutine_factory()
    finally:
        await batcher.stop()


def test_concurrent_submits_are_batched_and_answered_in_place():
    fn = Recorder()
    batcher = DynamicBatcher(fn, max_batch_size=4, max_wait_ms=50)
    results = asyncio.run(_run(batcher, lambda: asyncio.gather(*(batcher.submit(i) for i in range(10)))))
    assert results == [i * i for i in range(10)]
    assert [len(b) for b in fn.batches] == [4, 4, 2]  # never above max_batch_size, 3 forwards for 10 callers
    assert list(batcher.batch_sizes) == [4, 4, 2] and batcher.stats()["batch_size_histogram"] == {"2": 1, "4": 2}
    assert sorted(x for b in fn.batches for x in b) == list(range(10))
    assert all(name.startswith("rm-forward") for name in fn.threads)  # off the event loop


def test_items_arriving_while_a_forward_runs_form_the_next_batch():
    fn = Recorder(delay_s=0.05)
    batcher = DynamicBatcher(fn, max_batch_size=64, max_wait_ms=1)

    async def staggered():
        first = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.01)  # first batch is running now
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(2, 7)]
        return await asyncio.gather(first, *rest)

    assert asyncio.run(_run(batcher, staggered)) == [1, 4, 9, 16, 25, 36]
    assert [len(b) for b in fn.batches] == [1, 5]


def test_a_lone_item_waits_at_most_max_wait(monkeypatch):
    """The batcher's waits for company are bounded by max_wait_ms: read from the timeouts it asks for (no clock)."""
    fn = Recorder()
    batcher = DynamicBatcher(fn, max_batch_size=8, max_wait_ms=30)
    timeouts, real_wait_for = [], asyncio.wait_for

    async def recording_wait_for(awaitable, timeout):
        timeouts.append(timeout)
        return await real_wait_for(awaitable, timeout)

    monkeypatch.setattr(batching.asyncio, "wait_for", recording_wait_for)

    async def one():
        return await batcher.submit(3)

    assert asyncio.run(_run(batcher, one)) == 9
    assert timeouts and all(0 < t <= 0.030 for t in timeouts)  # it waited for company, never past max_wait
    assert [len(b) for b in fn.batches] == [1]  # then went alone


def test_an_item_that_breaks_the_forward_fails_only_its_own_caller():
    """Issue 20: one bad item in a shared batch used to fail every caller of that batch (40 of 40 in one trial)."""
    calls = []

    def fn(items):
        calls.append(list(items))
        if -1 in items:
            raise RuntimeError("bad item")
        return [x + 1 for x in items]

    batcher = DynamicBatcher(fn, max_batch_size=8, max_wait_ms=20)

    async def scenario():
        answers = await asyncio.gather(batcher.submit(4), batcher.submit(-1), batcher.submit(5),
                                       return_exceptions=True)  # fmt: skip
        after = await batcher.submit(7)
        return answers, after

    (four, bad, five), after = asyncio.run(_run(batcher, scenario))
    assert isinstance(bad, RuntimeError) and "bad item" in str(bad)
    assert (four, five, after) == (5, 6, 8)
    assert calls[0] == [4, -1, 5] and calls[1:4] == [[4], [-1], [5]]  # the batch, then one at a time
    assert batcher.stats()["items"] == 3  # the two good singles and the later 7: the failed forwards are not counted


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBatcher(Recorder(), max_batch_size=0, max_wait_ms=1)
    with pytest.raises(ValueError, match="max_wait_ms"):
        DynamicBatcher(Recorder(), max_batch_size=1, max_wait_ms=-1)
