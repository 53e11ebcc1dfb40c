"""Client of the reward service (reward/service.py) and the GRPO reward function built on it.

    client = RewardClient("http://127.0.0.1:8765", timeout=60, retries=3)
    client.wait_until_ready(120)
    trainer = GRPOTrainer(..., reward_funcs=[make_reward_function(client)])

Connection errors, timeouts and 5xx answers are retried with exponential backoff (`backoff_s * 2**attempt`);
4xx answers are the caller's mistake and raise at once with the service's explanation.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

COMPONENTS = ("total", "rm", "verifier")


class RewardServiceError(RuntimeError):
    """The reward service could not be reached or refused a request; the message names the URL."""


class RewardClient:
    """Synchronous HTTP client for one reward-service URL."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        api_token: str | None = None,
        backoff_s: float = 0.5,
        chunk_size: int = 256,
        transport: httpx.BaseTransport | None = None,
    ):
        if retries < 0 or chunk_size < 1:
            raise ValueError(f"need retries >= 0 and chunk_size >= 1, got {retries} and {chunk_size}")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.chunk_size = chunk_size  # items per POST; keep at or below the service's max_items_per_request
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RewardClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _request(self, method: str, path: str, *, json: Any = None, retries: int | None = None) -> Any:
        url = f"{self.base_url}{path}"
        retries = self.retries if retries is None else retries
        last_error = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, path, json=json)
            except httpx.TransportError as err:
                last_error = f"{type(err).__name__}: {err}"
                continue
            if response.status_code >= 500:
                last_error = f"HTTP {response.status_code}: {response.text[:500]}"
                continue
            if response.status_code >= 400:
                raise RewardServiceError(f"{method} {url} -> HTTP {response.status_code}: {_detail(response)}")
            return response.json()
        raise RewardServiceError(f"{method} {url} failed after {retries + 1} attempt(s); last error: {last_error}")

    def healthz(self) -> dict:
        """GET /healthz (with retries)."""
        return self._request("GET", "/healthz")

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
            if len(answer["results"]) != len(chunk):
                raise RewardServiceError(f"{self.base_url}: {len(answer['results'])} results for {len(chunk)} items")
            results.extend(answer["results"])
        return results


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
    """The number one service result contributes: the total reward, or one component (None if absent)."""
    if component == "total":
        return result["reward"]
    value = result["components"][component]
    if component == "verifier" and value is not None:
        return value["score"]
    return value


def make_reward_function(client: RewardClient, *, component: str = "total") -> Callable[..., list[float | None]]:
    """A TRL GRPOTrainer reward function that scores completions through the reward service.

    Called as `f(prompts, completions, reference=None, **kwargs)`: prompts and completions in TRL's standard
    (strings) or conversational (message lists) format, `reference` the dataset column (JSON strings, mappings or
    None). Returns one float per completion, in order; for component "rm"/"verifier", None where the component is
    absent (TRL treats None as "not applicable").
    """
    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {COMPONENTS}, got {component!r}")

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

    reward_service.__name__ = "reward_service" if component == "total" else f"reward_service_{component}"
    return reward_service
