"""An OpenAI-compatible HTTP endpoint as a generator, as a vLLM server (`vllm serve MODEL`) exposes it.

POST `{base_url}/chat/completions` with `{"model", "messages", "n": k, "temperature", "top_p", "max_tokens"}` and read
`choices[*].message.content`. Requests run concurrently (httpx async client, at most `concurrency` in flight).

`base_url` may be a list of servers (a pool of vLLM replicas): requests start at the next server in turn
(round-robin), and a timeout, a connection error, a 429 or a 5xx fails over to the following server at once;
after every server has failed once in a row the generator sleeps `backoff_s * 2**round` before the next round,
for at most `max_retries + 1` attempts per request. Any other 4xx stops the build with the server's message.
Each candidate carries its share of the answer's `usage.completion_tokens`; `tokens` and `generate_s` add up
what this generator produced, for the tokens/s a build reports. A server that returns fewer
than `n` choices (some ignore `n`) is asked again for the rest. Hand-written rather than the `openai` client so the
project needs only httpx, and so retries and concurrency are explicit and tested against a local stub server.
"""

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import Sequence

import httpx

from generators.base import Candidate, Query

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class EndpointError(ConnectionError):
    """The endpoint refused a request, or kept failing after every retry (an OSError: the CLI reports it)."""


class OpenAIGenerator:
    """k samples per query from `{base_url}/chat/completions`; order of results follows the order of queries."""

    name = "openai"

    def __init__(self, base_url: str | list[str], model: str, *, api_key: str | None = None, temperature: float = 0.7,
                 top_p: float = 1.0, max_tokens: int = 512, concurrency: int = 8, max_retries: int = 4,
                 backoff_s: float = 0.5, timeout_s: float = 120.0, seed: int | None = None) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url) if isinstance(base_url, list) else []
        if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
            raise ValueError("openai generator: base_url must be a URL starting with http:// or https:// (or a "
                             f"non-empty list of them), got {base_url!r}")
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError(f"openai generator: bad limits concurrency={concurrency}, max_retries={max_retries}, "
                             f"timeout_s={timeout_s}, backoff_s={backoff_s}")
        self.urls = [u.rstrip("/") + "/chat/completions" for u in urls]
        self.url = self.urls[0]
        self._turn = itertools.count()  # round-robin: each request starts at the next server
        self.model, self.temperature, self.top_p, self.max_tokens = model, temperature, top_p, max_tokens
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff_s, self.timeout_s = backoff_s, timeout_s
        self.seed = seed
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.retries = 0  # requests retried so far, for the summary and the tests
        self.failovers: Counter = Counter()  # server URL -> attempts that failed there
        self.tokens = 0  # completion tokens generated so far (the servers' usage counts)
        self.generate_s = 0.0  # wall time spent in `generate`
        self.chunk_seed: int | None = None  # set by `reseed`: a per-chunk sampling seed when `seed` is set

    def reseed(self, seed: int) -> None:
        """With a configured `seed`, give the next requests a seed derived from it and `seed` here (the scaled
        engine's chunk), so a server that honours request seeds (vLLM) redoes a chunk the same way."""
        if self.seed is not None:
            self.chunk_seed = (self.seed * 1_000_003 + seed) % 2**31

    def generate(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        start = time.perf_counter()
        try:
            return asyncio.run(self._generate_all(queries, k))
        finally:
            self.generate_s += time.perf_counter() - start

    async def _generate_all(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]:
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), headers=self.headers) as client:
            return list(await asyncio.gather(*(self._samples(client, limit, q, k) for q in queries)))

    async def _samples(self, client: httpx.AsyncClient, limit: asyncio.Semaphore, query: Query,
                       k: int) -> list[Candidate]:
        texts: list[str] = []
        counts: list[int | None] = []
        while len(texts) < k:
            body = {"model": self.model, "messages": list(query.messages), "n": k - len(texts),
                    "temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}
            if self.seed is not None:
                body["seed"] = self.seed if self.chunk_seed is None else self.chunk_seed
            async with limit:
                data = await self._post(client, body)
            try:
                choices = [choice["message"]["content"] or "" for choice in data["choices"]]
            except (KeyError, TypeError) as exc:
                raise EndpointError(f"{self.url}: response without choices[*].message.content: {data!r:.200}") from exc
            if not choices:
                raise EndpointError(f"{self.url}: response with no choices for query from {query.source}")
            used = data.get("usage") if isinstance(data, dict) else None
            total = used.get("completion_tokens") if isinstance(used, dict) else None
            share = total // len(choices) if isinstance(total, int) and total >= 0 else None
            if share is not None:
                self.tokens += total
            counts.extend([share] * len(choices[: k - len(texts)]))
            texts.extend(choices[: k - len(texts)])
        return [Candidate(text, tokens=n) for text, n in zip(texts, counts, strict=True)]

    async def _post(self, client: httpx.AsyncClient, body: dict) -> dict:
        first = next(self._turn)
        problems = []
        for attempt in range(self.max_retries + 1):
            url = self.urls[(first + attempt) % len(self.urls)]
            rounds, position = divmod(attempt, len(self.urls))
            if attempt and position == 0:  # every server failed once in a row: back off before the next round
                await asyncio.sleep(self.backoff_s * 2 ** (rounds - 1))
            try:
                response = await client.post(url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return response.json()
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    raise EndpointError(f"{url}: {problem}")
            problems.append(f"{url}: {problem}")
            self.failovers[url] += 1
            if attempt == self.max_retries:
                raise EndpointError(f"gave up after {self.max_retries + 1} attempts over {len(self.urls)} "
                                    f"server(s); last: {problems[-1]}")
            self.retries += 1
        raise AssertionError("unreachable")
