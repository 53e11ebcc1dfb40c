"""An OpenAI-compatible HTTP endpoint as a generator, as a vLLM server (`vllm serve MODEL`) exposes it.

POST `{base_url}/chat/completions` with `{"model", "messages", "n": k, "temperature", "top_p", "max_tokens"}` and read
`choices[*].message.content`. Requests run concurrently (httpx async client, at most `concurrency` in flight);
a timeout, a connection error, a 429 or a 5xx is retried up to `max_retries` times with exponential backoff
(`backoff_s * 2**attempt`); any other 4xx stops the build with the server's message. A server that returns fewer
than `n` choices (some ignore `n`) is asked again for the rest. Hand-written rather than the `openai` client so the
project needs only httpx, and so retries and concurrency are explicit and tested against a local stub server.
"""

import asyncio
import os
from collections.abc import Sequence

import httpx

from data_builders.generators.base import Candidate, Query

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class EndpointError(ConnectionError):
    """The endpoint refused a request, or kept failing after every retry (an OSError: the CLI reports it)."""


class OpenAIGenerator:
    """k samples per query from `{base_url}/chat/completions`; order of results follows the order of queries."""

    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, temperature: float = 0.7,
                 top_p: float = 1.0, max_tokens: int = 512, concurrency: int = 8, max_retries: int = 4,
                 backoff_s: float = 0.5, timeout_s: float = 120.0, seed: int | None = None) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"openai generator: base_url must start with http:// or https://, got {base_url!r}")
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError(f"openai generator: bad limits concurrency={concurrency}, max_retries={max_retries}, "
                             f"timeout_s={timeout_s}, backoff_s={backoff_s}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.temperature, self.top_p, self.max_tokens = model, temperature, top_p, max_tokens
        self.concurrency, self.max_retries = concurrency, max_retries
        self.backoff_s, self.timeout_s = backoff_s, timeout_s
        self.seed = seed
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.retries = 0  # requests retried so far, for the summary and the tests

    def generate(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return asyncio.run(self._generate_all(queries, k))

    async def _generate_all(self, queries: Sequence[Query], k: int) -> list[list[Candidate]]:
        limit = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s), headers=self.headers) as client:
            return list(await asyncio.gather(*(self._samples(client, limit, q, k) for q in queries)))

    async def _samples(self, client: httpx.AsyncClient, limit: asyncio.Semaphore, query: Query,
                       k: int) -> list[Candidate]:
        texts: list[str] = []
        while len(texts) < k:
            body = {"model": self.model, "messages": list(query.messages), "n": k - len(texts),
                    "temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}
            if self.seed is not None:
                body["seed"] = self.seed
            async with limit:
                data = await self._post(client, body)
            try:
                choices = [choice["message"]["content"] or "" for choice in data["choices"]]
            except (KeyError, TypeError) as exc:
                raise EndpointError(f"{self.url}: response without choices[*].message.content: {data!r:.200}") from exc
            if not choices:
                raise EndpointError(f"{self.url}: response with no choices for query from {query.source}")
            texts.extend(choices[: k - len(texts)])
        return [Candidate(text) for text in texts]

    async def _post(self, client: httpx.AsyncClient, body: dict) -> dict:
        for attempt in range(self.max_retries + 1):
            try:
                response = await client.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return response.json()
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    raise EndpointError(f"{self.url}: {problem}")
            if attempt == self.max_retries:
                raise EndpointError(f"{self.url}: gave up after {self.max_retries + 1} attempts; last: {problem}")
            self.retries += 1
            await asyncio.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")
