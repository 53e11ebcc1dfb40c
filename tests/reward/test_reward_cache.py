"""ResultCache: LRU bound, in-flight sharing, what is and is not stored; item_key canonical form."""

import asyncio

import pytest

from reward.cache import ResultCache, item_key


class Computation:
    """compute() factory that counts how often each key really ran."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False):
        self.runs: dict[str, int] = {}
        self.delay_s = delay_s
        self.fail = fail

    def __call__(self, key: str):
        async def compute():
            self.runs[key] = self.runs.get(key, 0) + 1
            await asyncio.sleep(self.delay_s)
            if self.fail:
                raise RuntimeError(f"failed {key}")
            return f"value-{key}"

        return compute


def test_concurrent_duplicates_share_one_computation():
    cache, fn = ResultCache(8), Computation(delay_s=0.02)

    async def scenario():
        keys = ["a", "b", "a", "a", "c", "b", "a", "a"]  # 8 samples, 3 distinct
        return await asyncio.gather(*(cache.get_or_compute(k, fn(k)) for k in keys))

    results = asyncio.run(scenario())
    assert [value for value, _ in results] == [f"value-{k}" for k in "abaacbaa"]
    assert [source for _, source in results].count("miss") == 3
    assert fn.runs == {"a": 1, "b": 1, "c": 1}
    assert cache.stats() | {} == {
        "entries": 3, "max_entries": 8, "in_flight": 0, "hits": 0, "shared_in_flight": 5, "misses": 3, "evictions": 0
    }  # fmt: skip


def test_lru_evicts_the_least_recently_used():
    cache, fn = ResultCache(2), Computation()

    async def scenario():
        for key in ["a", "b", "a", "c", "a", "b"]:  # "b" is evicted by "c" (a was used more recently)
            await cache.get_or_compute(key, fn(key))

    asyncio.run(scenario())
    assert fn.runs == {"a": 1, "b": 2, "c": 1}
    assert cache.hits == 2 and cache.evictions == 2 and len(cache) == 2


def test_failures_and_uncacheable_results_are_not_stored():
    cache, failing = ResultCache(4), Computation(fail=True)

    async def scenario():
        for _ in range(2):
            with pytest.raises(RuntimeError, match="failed x"):
                await cache.get_or_compute("x", failing("x"))
        flaky = Computation()
        for _ in range(2):
            await cache.get_or_compute("y", flaky("y"), cacheable=lambda value: False)
        return flaky

    flaky = asyncio.run(scenario())
    assert failing.runs == {"x": 2} and flaky.runs == {"y": 2} and len(cache) == 0


def test_a_cancelled_waiter_does_not_cancel_the_shared_computation():
    cache, fn = ResultCache(4), Computation(delay_s=0.05)

    async def scenario():
        first = asyncio.ensure_future(cache.get_or_compute("k", fn("k")))
        second = asyncio.ensure_future(cache.get_or_compute("k", fn("k")))
        await asyncio.sleep(0.01)
        first.cancel()
        return await second

    assert asyncio.run(scenario()) == ("value-k", "shared")
    assert fn.runs == {"k": 1}


def test_size_zero_turns_caching_off():
    cache, fn = ResultCache(0), Computation()

    async def scenario():
        return [await cache.get_or_compute("a", fn("a")) for _ in range(3)]

    assert asyncio.run(scenario()) == [("value-a", "miss")] * 3 and fn.runs == {"a": 3}


def test_item_key_is_canonical_and_covers_every_part():
    prompt = [{"role": "user", "content": "hi"}]
    key = item_key(prompt, "r", {"type": "math", "answer": "1"}, "v1")
    assert key == item_key(prompt, "r", {"answer": "1", "type": "math"}, "v1")  # key order does not matter
    others = [
        item_key([{"role": "user", "content": "ho"}], "r", {"type": "math", "answer": "1"}, "v1"),
        item_key(prompt, "r2", {"type": "math", "answer": "1"}, "v1"),
        item_key(prompt, "r", {"type": "math", "answer": "2"}, "v1"),
        item_key(prompt, "r", None, "v1"),
        item_key(prompt, "r", {"type": "math", "answer": "1"}, "v2"),
    ]
    assert len({key, *others}) == 6 and len(key) == 64
