"""Clients of the reward service (reward/app.py), sync and async, and the GRPO reward function built on them.

    client = RewardClient("http://127.0.0.1:8765", timeout=60)       # or a list of replica URLs
    client.wait_until_ready(120)
    trainer = GRPOTrainer(..., reward_funcs=[make_reward_function(client)])

    async with AsyncRewardClient(["http://127.0.0.1:8765", "http://127.0.0.1:8766"]) as client:
        results = await client.score(items)

Several replica URLs are used round-robin: each request starts at the next replica, and a connection error,
timeout or 5xx answer fails over to the following one at once. When every replica has failed once in a row, the
client sleeps a jittered `backoff_s * 2**k` (k = 0, 1, ...; drawn from [1/2, 1] of that so that many clients do not
return in step; at least the Retry-After of a 503, at most `max_backoff_s`) before the next round. A request keeps
trying until `retry_budget_s` seconds have passed since its first attempt (and, if `retries` is set, at most
`retries + 1` attempts), then gives up naming every URL it tried. 4xx answers are the caller's mistake and raise
at once with the service's explanation.

What the defaults survive: a service down for up to `retry_budget_s` = 60 s (a restart that reloads a model), with
the gap between tries growing 0.5, 1, 2, 4, 8, 10, 10, ... s, so the client notices the service back within 10 s
(the GRPO stage sets 120 s: `reward_retry_budget_s`). Earlier defaults counted retries (3 at 0.5 s) and lost calls
to a 5 s restart (issue 20).
"""

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

COMPONENTS = ("total", "rm", "verifier", "length_penalty", "judge")


class RewardServiceError(RuntimeError):
    """The reward service could not be reached or refused a request; the message names the URL."""


class _Replicas:
    """Round-robin over replica base URLs and the retry schedule shared by the sync and async clients."""

    def __init__(self, base_url: str | Sequence[str], *, retries: int | None, backoff_s: float, max_backoff_s: float,
                 retry_budget_s: float, jitter: bool = True):  # fmt: skip
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("need at least one reward-service URL")
        if (retries is not None and retries < 0) or backoff_s < 0 or max_backoff_s < 0 or retry_budget_s < 0:
            raise ValueError(
                "need retries (or None), backoff_s, max_backoff_s, retry_budget_s >= 0, got "
                f"{retries}, {backoff_s}, {max_backoff_s}, {retry_budget_s}"
            )
        self.urls = [url.rstrip("/") for url in urls]
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.retry_budget_s = retry_budget_s
        self.jitter = random.Random() if jitter else None
        self._next = itertools.count()

    def attempts(self, retries: int | None = None):
        """Yields (url, seconds to sleep before trying it) for one request: rotate, back off after each full round,
        stop when the next try would start past the time budget or the attempt count (`retries`, if any)."""
        limit = self.retries if retries is None else retries
        start, first = time.monotonic(), next(self._next)
        for attempt in itertools.count():
            if limit is not None and attempt > limit:
                return
            url = self.urls[(first + attempt) % len(self.urls)]
            rounds_done, position = divmod(attempt, len(self.urls))
            sleep = 0.0
            if attempt and position == 0:  # every replica failed once in this round
                sleep = min(self.backoff_s * 2 ** (rounds_done - 1), self.max_backoff_s)
                if self.jitter is not None:
                    sleep *= self.jitter.uniform(0.5, 1.0)
            if attempt and time.monotonic() - start + sleep > self.retry_budget_s:
                return
            yield url, sleep

    def retry_delay(self, planned: float, response: httpx.Response | None) -> float:
        """The planned sleep, raised to a 503's Retry-After (capped at max_backoff_s)."""
        if planned == 0 or response is None or response.status_code != 503:
            return planned
        try:
            return max(planned, min(float(response.headers.get("retry-after", 0)), self.max_backoff_s))
        except ValueError:
            return planned

    @staticmethod
    def outcome(response: httpx.Response, method: str, url: str) -> tuple[Any, str | None]:
        """(json body, None) on success; (None, error) for a retryable 5xx; raises for a 4xx."""
        if response.status_code >= 500:
            return None, f"{url}: HTTP {response.status_code}: {response.text[:300]}"
        if response.status_code >= 400:
            raise RewardServiceError(f"{method} {url} -> HTTP {response.status_code}: {_detail(response)}")
        try:
            return response.json(), None
        except ValueError:  # a 200 that is not JSON: not the reward service (a proxy page, a wrong port)
            raise RewardServiceError(
                f"{method} {url} -> HTTP {response.status_code} but the reply is not JSON: {response.text[:200]!r}"
            ) from None

    def give_up(self, method: str, path: str, errors: list[str], started: float) -> RewardServiceError:
        where = self.urls[0] + path if len(self.urls) == 1 else f"{path} on {self.urls}"
        return RewardServiceError(
            f"{method} {where} failed after {len(errors)} attempt(s) in {time.monotonic() - started:.0f} s "
            f"(retry_budget_s={self.retry_budget_s:g}); last error: {errors[-1]}"
        )


class RewardClient:
    """Synchronous HTTP client for one or several reward-service replicas."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        timeout: float = 60.0,
        retries: int | None = None,
        api_token: str | None = None,
        backoff_s: float = 0.5,
        chunk_size: int = 256,
        transport: httpx.BaseTransport | None = None,
        max_backoff_s: float = 10.0,
        retry_budget_s: float = 60.0,
        jitter: bool = True,
    ):
        if chunk_size < 1:
            raise ValueError(f"need chunk_size >= 1, got {chunk_size}")
        self._replicas = _Replicas(base_url, retries=retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                                   retry_budget_s=retry_budget_s, jitter=jitter)  # fmt: skip
        self.base_url = self._replicas.urls[0]
        self.urls = self._replicas.urls
        self.retries = retries
        self.chunk_size = chunk_size  # items per POST; keep at or below the service's max_items_per_request
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        self._http = httpx.Client(timeout=timeout, headers=headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _request(self, method: str, path: str, *, json: Any = None, retries: int | None = None) -> Any:
        errors: list[str] = []
        started = time.monotonic()
        response = None
        for url, sleep in self._replicas.attempts(retries):
            delay = self._replicas.retry_delay(sleep, response)
            if delay:
                time.sleep(delay)
            response = None
            try:
                response = self._http.request(method, url + path, json=json)
            except httpx.TransportError as err:
                errors.append(_transport_error(url, err, self._http.timeout))
                continue
            body, error = self._replicas.outcome(response, method, url + path)
            if error is None:
                return body
            errors.append(error)
        raise self._replicas.give_up(method, path, errors, started)

    def healthz(self) -> dict:
        """GET /healthz (with retries)."""
        return self._request("GET", "/healthz")

    def metrics(self) -> dict:
        """GET /metrics as JSON (with retries)."""
        return self._request("GET", "/metrics")

    def wait_until_ready(self, timeout_s: float, *, poll_s: float = 0.5) -> dict:
        """Poll /healthz until the service answers ok; RewardServiceError naming the URL after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                health = self._request("GET", "/healthz", retries=0)
                if health.get("status") == "ok":
                    return health
                last_error = f"status {health.get('status')!r}"
            except RewardServiceError as err:
                last_error = str(err)
            if time.monotonic() + poll_s > deadline:
                raise RewardServiceError(
                    f"reward service at {self.base_url} not ready after {timeout_s:g}s "
                    f"(start it with `python -m reward serve --config ...`); last error: {last_error}"
                )
            time.sleep(poll_s)

    def score(self, items: Sequence[dict]) -> list[dict]:
        """POST /v1/score in chunks of `chunk_size`; one result dict per item, in order."""
        results: list[dict] = []
        for start in range(0, len(items), self.chunk_size):
            chunk = list(items[start : start + self.chunk_size])
            answer = self._request("POST", "/v1/score", json={"items": chunk})
            _check_count(answer, chunk, self.base_url)
            results.extend(answer["results"])
        return results


class AsyncRewardClient:
    """asyncio twin of `RewardClient` (same arguments, retries and fail-over); its chunks are sent concurrently."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        timeout: float = 60.0,
        retries: int | None = None,
        api_token: str | None = None,
        backoff_s: float = 0.5,
        chunk_size: int = 256,
        transport: httpx.AsyncBaseTransport | None = None,
        max_backoff_s: float = 10.0,
        max_connections: int = 100,
        retry_budget_s: float = 60.0,
        jitter: bool = True,
    ):
        if chunk_size < 1:
            raise ValueError(f"need chunk_size >= 1, got {chunk_size}")
        self._replicas = _Replicas(base_url, retries=retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s,
                                   retry_budget_s=retry_budget_s, jitter=jitter)  # fmt: skip
        self.base_url = self._replicas.urls[0]
        self.urls = self._replicas.urls
        self.chunk_size = chunk_size
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, transport=transport, limits=limits)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncRewardClient":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()

    async def _request(self, method: str, path: str, *, json: Any = None, retries: int | None = None) -> Any:
        errors: list[str] = []
        started = time.monotonic()
        response = None
        for url, sleep in self._replicas.attempts(retries):
            delay = self._replicas.retry_delay(sleep, response)
            if delay:
                await asyncio.sleep(delay)
            response = None
            try:
                response = await self._http.request(method, url + path, json=json)
            except httpx.TransportError as err:
                errors.append(_transport_error(url, err, self._http.timeout))
                continue
            body, error = self._replicas.outcome(response, method, url + path)
            if error is None:
                return body
            errors.append(error)
        raise self._replicas.give_up(method, path, errors, started)

    async def healthz(self) -> dict:
        return await self._request("GET", "/healthz")

    async def metrics(self) -> dict:
        return await self._request("GET", "/metrics")

    async def score(self, items: Sequence[dict]) -> list[dict]:
        """POST /v1/score in chunks of `chunk_size`, concurrently; one result dict per item, in order."""
        chunks = [list(items[i : i + self.chunk_size]) for i in range(0, len(items), self.chunk_size)]
        answers = await asyncio.gather(*(self._request("POST", "/v1/score", json={"items": c}) for c in chunks))
        results: list[dict] = []
        for answer, chunk in zip(answers, chunks, strict=True):
            _check_count(answer, chunk, self.base_url)
            results.extend(answer["results"])
        return results


def _check_count(answer: Any, chunk: list, url: str) -> None:
    """A /v1/score reply must be {"results": [{"reward": number, "components": {...}}, ...]}, one per item."""
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise RewardServiceError(f"{url}/v1/score: bad reply, expected {{'results': [...]}}, got {str(answer)[:200]}")
    if len(results) != len(chunk):
        raise RewardServiceError(f"{url}: {len(results)} results for {len(chunk)} items")
    for i, result in enumerate(results):
        reward = result.get("reward") if isinstance(result, dict) else None
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or reward != reward:
            raise RewardServiceError(f"{url}/v1/score: bad reply, results[{i}].reward is {reward!r}, not a number")
        if not isinstance(result.get("components"), dict):
            raise RewardServiceError(f"{url}/v1/score: bad reply, results[{i}] has no 'components' mapping")


def _transport_error(url: str, err: httpx.TransportError, timeout: httpx.Timeout) -> str:
    """One attempt's failure, in words: timeouts name the limit, connection errors say the service may be down."""
    if isinstance(err, httpx.TimeoutException):
        return f"{url}: timed out ({type(err).__name__}, limit {timeout.read or timeout.connect} s)"
    if isinstance(err, httpx.ConnectError):
        return f"{url}: cannot connect ({err}); is `python -m reward serve` running there?"
    return f"{url}: {type(err).__name__}: {err}"


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:500]


def completion_text(completion: str | list[dict]) -> str:
    """A TRL completion (plain text, or a list of assistant messages) -> the response text."""
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content") or "" for message in completion)


def pick_component(result: dict, component: str) -> float | None:
    """The number one service result contributes: the total reward, one component (None if absent; the judge's
    mapped score only when its status is "ok"), or one criterion's score as "criterion:<name>"."""
    if component == "total":
        return result["reward"]
    if component.startswith("criterion:"):
        return result["components"].get("criteria", {}).get(component.partition(":")[2])
    value = result["components"].get(component)
    if component in ("verifier", "judge") and value is not None:
        return value["score"] if component == "verifier" or value.get("status") == "ok" else None
    return value


def make_reward_function(client: RewardClient, *, component: str = "total") -> Callable[..., list[float | None]]:
    """A TRL GRPOTrainer reward function that scores completions through the reward service.

    Called as `f(prompts, completions, reference=None, **kwargs)`: prompts and completions in TRL's standard
    (strings) or conversational (message lists) format, `reference` the dataset column (JSON strings, mappings or
    None). Returns one float per completion, in order; for component "rm"/"verifier"/"length_penalty"/
    "judge"/"criterion:<name>", None where the component is absent (TRL treats None as "not applicable").
    """
    if component not in COMPONENTS and not component.startswith("criterion:"):
        raise ValueError(f"component must be one of {COMPONENTS} or 'criterion:<name>', got {component!r}")

    def reward_service(
        prompts: Sequence[str | list[dict]],
        completions: Sequence[str | list[dict]],
        reference: Sequence[str | dict | None] | None = None,
        **kwargs,
    ) -> list[float | None]:
        references = reference if reference is not None else [None] * len(completions)
        if not len(prompts) == len(completions) == len(references):
            raise ValueError(
                f"{len(prompts)} prompts, {len(completions)} completions, {len(references)} references: must match"
            )
        items = [
            {"prompt": prompt, "response": completion_text(completion), "reference": ref}
            for prompt, completion, ref in zip(prompts, completions, references, strict=True)
        ]
        return [pick_component(result, component) for result in client.score(items)]

    name = component.replace("criterion:", "")
    reward_service.__name__ = "reward_service" if component == "total" else f"reward_service_{name}"
    return reward_service
