"""Dynamic batching: items from concurrent requests share one reward-model forward.

Each caller awaits `DynamicBatcher.submit(item)`. One worker task takes the first waiting item, then keeps
collecting until it holds `max_batch_size` items or `max_wait_ms` have passed since that first item, runs
`batch_fn` on the whole batch in a dedicated thread (so the event loop keeps accepting requests while the
model runs), and hands every caller the result at its own position. GRPO sends many small requests at once
(one per completion group); this turns them into a few large forwards.

A batch whose forward raises is run again one item at a time, so an item that breaks the forward fails only its
own caller, never its neighbours (the service renders and checks items before they get here; this is the
backstop).
"""

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class DynamicBatcher:
    """Gathers items across callers into batches for `batch_fn(items) -> results` (same length, same order)."""

    def __init__(self, batch_fn: Callable[[Sequence[Any]], Sequence[Any]], *, max_batch_size: int, max_wait_ms: float):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.batch_fn = batch_fn
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.batch_sizes: deque[int] = deque(maxlen=4096)  # the most recent `batch_fn` calls: items in each
        self.batch_histogram: Counter[int] = Counter()  # batch size -> number of forwards of that size, ever
        self.forward_seconds = 0.0  # total time spent in `batch_fn`
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        # One thread: forwards never overlap, so the model needs no locking and batches stay large.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rm-forward")
        self._worker = asyncio.create_task(self._run(), name="dynamic-batcher")

    async def stop(self) -> None:
        """Cancel the worker and fail whatever is still waiting."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(RuntimeError("reward service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._worker = self._executor = self._queue = None

    def stats(self) -> dict:
        """Forwards run, items scored, mean/max batch size and the size histogram (JSON-ready)."""
        forwards = sum(self.batch_histogram.values())
        items = sum(size * count for size, count in self.batch_histogram.items())
        return {
            "forwards": forwards,
            "items": items,
            "mean_batch_size": items / forwards if forwards else 0.0,
            "max_batch_size_seen": max(self.batch_histogram, default=0),
            "batch_size_histogram": {str(k): v for k, v in sorted(self.batch_histogram.items())},
            "forward_seconds": self.forward_seconds,
            "queued": self._queue.qsize() if self._queue is not None else 0,
        }

    async def submit(self, item: Any) -> Any:
        """Queue one item and wait for its result."""
        if self._queue is None:
            raise RuntimeError("DynamicBatcher.submit() before start()")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        """Block for one item, then gather more until the batch is full or the wait since the first has expired."""
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), timeout=remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            live = [(item, future) for item, future in batch if not future.cancelled()]  # caller gave up
            if not live:
                continue
            items = [item for item, _ in live]
            start = loop.time()
            try:
                results = await self._forward(loop, items)
            except Exception as err:
                if len(live) == 1:
                    if not live[0][1].done():
                        live[0][1].set_exception(err)
                    continue
                await self._one_by_one(loop, live)  # find the item that breaks the forward; the others score
                continue
            self.forward_seconds += loop.time() - start
            self._record(len(items))
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _forward(self, loop, items: list) -> Sequence[Any]:
        results = await loop.run_in_executor(self._executor, self.batch_fn, items)
        if len(results) != len(items):
            raise RuntimeError(f"batch_fn returned {len(results)} results for {len(items)} items")
        return results

    def _record(self, size: int) -> None:
        self.batch_sizes.append(size)
        self.batch_histogram[size] += 1

    async def _one_by_one(self, loop, live: list[tuple[Any, asyncio.Future]]) -> None:
        for item, future in live:
            if future.done():
                continue
            start = loop.time()
            try:
                result = (await self._forward(loop, [item]))[0]
            except Exception as err:  # this item's caller sees its own failure; the worker keeps serving
                future.set_exception(err)
                continue
            self.forward_seconds += loop.time() - start
            self._record(1)
            if not future.done():
                future.set_result(result)
