"""The reward service: GRPO's rewards over HTTP (reward models + rule-based verifiers + length penalty, weighted).

    python -m reward serve --config configs/reward/serve_tiny.yaml [--host 127.0.0.1 --port 8765]

Bound to loopback unless `host` says otherwise; set `api_token` (or the REWARD_API_TOKEN environment variable)
before exposing it. More GPUs or hosts: one replica per device (`--device cuda:N --port P`) and give
`RewardClient` the list of replica URLs (round-robin with fail-over).

Endpoints
    GET  /healthz   -> {"status": "ok", "model": model_path, "model_version": ..., "criteria": [...], ...}
    GET  /metrics   -> JSON counters (requests by status, items, cache, batch sizes, latency percentiles);
                       `?format=prometheus` gives the Prometheus text format
    POST /v1/score  {"items": [{"prompt": [messages] | str, "response": str, "reference": dict | JSON str | null}]}
                    -> {"results": [{"reward": float, "components": {"rm": float | null,
                        "criteria": {name: float}, "verifier": {...} | null, "length_penalty": float | null},
                        "cached": bool}]}

Per item: each reward model's logit goes through `combine.bounded_rm_score` (tanh): `model_path` gives component
"rm", each of `criterion_models` (a model trained on one of the report's six criteria) its own component; the
verifier named by `reference["type"]` (data_builders.verifiers, plus `extra_verifiers`) gives a score in [0, 1];
`reward = sum_k weights[k] * component_k + length_penalty` (`combine.combine_components`).

Why hand-written here: dynamic batching of reward-model forwards across concurrent requests (reward/batching.py),
the item cache with in-flight sharing (reward/cache.py) and admission control are what make the service fast and
safe under GRPO's bursty load, and no FastAPI library does them for a reward model. Verifiers (which may run
model-written code in the sandbox) run in a thread pool, concurrently with the forwards; a verifier that does
not finish within `verifier_timeout_s` gives a component with status "timeout" and score 0 (its thread is left
to finish: the sandbox has its own wall-clock kill).

Errors, none of them a crash: a missing/wrong bearer token -> 401; invalid JSON or a schema violation -> 422
naming the field; a reference that is not JSON, has no "type", names an unknown verifier or lacks a field the
verifier needs -> 422 naming the item; a body over `max_request_bytes` or more than `max_items_per_request`
items -> 413; more than `max_pending_items` items admitted and unfinished -> 503 with Retry-After.
"""

import asyncio
import hashlib
import importlib
import json
import os
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict

from pipeline.configs import ConfigError, parse_config
from reward.batching import DynamicBatcher
from reward.cache import ResultCache, item_key
from reward.combine import CRITERIA, bounded_rm_score, combine_components, length_penalty

ScoreInput = tuple[list[dict] | str, str]  # (prompt, response); same as reward.model_scorer.ScoreInput
RMScorer = Callable[[Sequence[ScoreInput]], Sequence[float]]  # (prompt, response) pairs -> raw RM logits
VerifyFn = Callable[[str, dict], Any]  # (response, reference) -> VerifierResult; ValueError on a bad reference
GUARDED_PATHS = ("/v1/score", "/metrics")  # need the bearer token when one is set; /healthz stays open for probes


@dataclass
class ServeConfig:
    """Reward service settings (YAML + command line through TrlParser)."""

    model_path: str | None = None  # `python -m reward train` output directory; required unless weights.rm is 0
    # Per-criterion reward models, {criterion: checkpoint dir} (criteria: reward.combine.CRITERIA); each needs a
    # weight of the same name. A JSON string on the command line.
    criterion_models: dict | str | None = None
    model_version: str | None = None  # part of every cache key; default: a hash of the checkpoints' files
    host: str = "127.0.0.1"  # interface to bind; loopback by default so nothing is exposed by accident
    port: int = 8765  # TCP port
    api_token: str | None = None  # if set, /v1/score and /metrics need `Authorization: Bearer <token>`
    # Weights of the reward components; our design default (the report gives none): a verified answer outranks any
    # reward-model preference, the model breaks ties. A JSON string on the command line: --weights '{"rm": 0.5, ...}'.
    weights: dict | str | None = field(default_factory=lambda: {"rm": 0.2, "verifier": 1.0})
    rm_shift: float = 0.0  # subtracted from every RM logit before tanh (recentres an RM trained without centring)
    rm_scale: float = 1.0  # RM logits are divided by this before tanh: the logit range that maps to (-1, 1)
    length_penalty: float = 0.0  # reward subtracted per 1,000 response characters beyond length_penalty_free_chars
    length_penalty_free_chars: int = 2000  # responses up to this many characters get no length penalty
    max_batch_size: int = 64  # most items in one reward-model forward
    max_wait_ms: float = 5.0  # longest an item waits for others to join its batch
    max_items_per_request: int = 256  # larger requests get 413; the client splits its calls to fit
    max_request_bytes: int = 16_000_000  # larger bodies get 413 before they are parsed
    max_pending_items: int = 8192  # admitted, unfinished items across requests; beyond -> 503 + Retry-After
    retry_after_s: int = 1  # the Retry-After a 503 carries
    cache_size: int = 65536  # LRU entries of item results (0 turns the cache and in-flight sharing off)
    verifier_workers: int = 4  # threads running verifiers (code verifiers block on the sandbox)
    verifier_timeout_s: float = 30.0  # a verifier still running after this gives a "timeout" component
    # Extra verifier types, {type: "module:function"} with function(response, reference) -> VerifierResult; they
    # are looked up before data_builders' registry. A JSON string on the command line.
    extra_verifiers: dict | str | None = None
    max_length: int = 2048  # longest RM input in tokens; longer ones keep their last max_length tokens
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
    dtype: str = "float32"  # RM weights dtype: float32, bfloat16 or float16
    torch_threads: int = 0  # intra-op CPU threads of the RM forward; 0 = torch's default (1 is fastest on busy CPUs)
    keep_alive_s: float = 75.0  # idle HTTP keep-alive; longer than GRPO's gaps between steps, so clients reuse sockets

    def __post_init__(self):
        self.criterion_models = parse_mapping(self.criterion_models, "criterion_models")
        self.extra_verifiers = parse_mapping(self.extra_verifiers, "extra_verifiers")
        self.weights = parse_weights(self.weights, criteria=tuple(self.criterion_models))
        if self.api_token is None:
            self.api_token = os.environ.get("REWARD_API_TOKEN") or None
        for key in ("max_batch_size", "max_items_per_request", "verifier_workers", "max_length", "max_pending_items"):
            if getattr(self, key) < 1:
                raise ConfigError(f"`{key}` must be >= 1, got {getattr(self, key)}")
        for key in ("cache_size", "max_request_bytes", "retry_after_s", "length_penalty", "length_penalty_free_chars",
                    "torch_threads", "keep_alive_s"):  # fmt: skip
            if getattr(self, key) < 0:
                raise ConfigError(f"`{key}` must be >= 0, got {getattr(self, key)}")
        if self.max_pending_items < self.max_items_per_request:
            raise ConfigError(
                f"`max_pending_items` ({self.max_pending_items}) must be >= `max_items_per_request` "
                f"({self.max_items_per_request}), or a full request could never be admitted"
            )
        if self.verifier_timeout_s <= 0:
            raise ConfigError(f"`verifier_timeout_s` must be > 0, got {self.verifier_timeout_s}")
        if self.rm_scale <= 0:
            raise ConfigError(f"`rm_scale` must be > 0, got {self.rm_scale}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"`dtype` must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"`max_wait_ms` must be >= 0, got {self.max_wait_ms}")
        if self.weights["rm"] != 0 and not self.model_path:
            raise ConfigError("`model_path` is required when weights.rm != 0 (weights.rm: 0 serves verifiers only)")
        for name in self.criterion_models:
            if name not in CRITERIA:
                raise ConfigError(f"`criterion_models`: unknown criterion {name!r}; known: {list(CRITERIA)}")


def parse_mapping(value: dict | str | None, key: str) -> dict[str, str]:
    """A {name: string} config mapping from YAML or a JSON string on the command line; None -> {}."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"`{key}` is not valid JSON: {value!r}") from err
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"`{key}` must be a mapping of names to strings, got {value!r}")
    return dict(value)


def parse_weights(value: dict | str | None, *, criteria: Sequence[str] = ()) -> dict[str, float]:
    """`weights` from YAML (a mapping) or the command line (a JSON string) -> {"rm", "verifier", *criteria: float}."""
    expected = {"rm", "verifier", *criteria}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"`weights` is not valid JSON: {value!r}") from err
    if not isinstance(value, dict) or set(value) != expected:
        raise ConfigError(
            f"`weights` must have exactly the keys {sorted(expected)} (rm, verifier and one per criterion model), "
            f"got {value!r}"
        )
    try:
        return {key: float(weight) for key, weight in value.items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"`weights` values must be numbers, got {value!r}") from err


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """A short hash of a checkpoint directory's file names, sizes and modification times (cheap, no reads)."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


# ---- request and response schema ----


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # tool calls and other template fields pass through

    role: str
    content: str


class ScoreItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: list[Message] | str
    response: str
    reference: dict[str, Any] | str | None = None


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ScoreItem]


class VerifierComponent(BaseModel):
    verifier: str
    status: str = "ok"  # "ok", "timeout" (did not finish within verifier_timeout_s) or "error" (it raised)
    passed: bool
    score: float
    format_ok: bool
    details: dict[str, Any]


class Components(BaseModel):
    rm: float | None
    criteria: dict[str, float] = {}
    verifier: VerifierComponent | None
    length_penalty: float | None = None


class ScoreResult(BaseModel):
    reward: float
    components: Components
    cached: bool = False  # answered from the cache or from an identical item in flight


class ScoreResponse(BaseModel):
    results: list[ScoreResult]


class BadReference(ValueError):
    """A reference the verifier refused (unknown type, missing field); becomes a 422 naming the item."""


def parse_reference(reference: dict | str | None, index: int) -> dict | None:
    """A reference as sent (mapping, JSON string or null) -> mapping or None; HTTP 422 naming the item if malformed."""
    if isinstance(reference, str):
        try:
            reference = json.loads(reference)
        except json.JSONDecodeError as err:
            raise HTTPException(422, f"items[{index}].reference: not valid JSON ({err.msg})") from err
    if reference is None:
        return None
    if not isinstance(reference, dict) or not isinstance(reference.get("type"), str):
        raise HTTPException(422, f"items[{index}].reference: expected an object with a string 'type' field")
    return reference


def verifier_component(result: Any) -> VerifierComponent:
    return VerifierComponent(
        verifier=result.verifier,
        passed=result.passed,
        score=result.score,
        format_ok=result.format_ok,
        details=dict(result.details),
    )


def failed_component(kind: str, status: str, message: str) -> VerifierComponent:
    return VerifierComponent(
        verifier=kind, status=status, passed=False, score=0.0, format_ok=False, details={"error": message}
    )


def load_verifiers(extra: dict[str, str]) -> tuple[VerifyFn, Callable[[str], bool]]:
    """(verify, knows_type): data_builders' `verify` with the `extra_verifiers` ("module:function") in front."""
    from data_builders.verifiers import VERIFIERS, verify

    functions = {}
    for kind, target in extra.items():
        module_name, _, attr = target.partition(":")
        try:
            functions[kind] = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as err:
            raise ConfigError(f"`extra_verifiers.{kind}`: cannot import {target!r} ({err})") from err

    def verify_any(response: str, reference: dict) -> Any:
        function = functions.get(reference.get("type"))
        return function(response, reference) if function is not None else verify(response, reference)

    return verify_any, lambda kind: kind in functions or kind in VERIFIERS


class ServiceMetrics:
    """Counters behind GET /metrics; latencies of the last 10,000 score requests for the percentiles."""

    def __init__(self):
        self.started = time.time()
        self.requests: Counter[tuple[str, int]] = Counter()  # (path, status) -> count
        self.items = 0
        self.rejected_overload = 0
        self.verifier_status: Counter[str] = Counter()
        self.latencies: deque[float] = deque(maxlen=10_000)

    def latency_summary(self) -> dict[str, float]:
        values = sorted(self.latencies)
        if not values:
            return {"count": 0}

        def pct(q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))]

        return {"count": len(values), "p50_ms": pct(0.5) * 1e3, "p90_ms": pct(0.9) * 1e3, "p99_ms": pct(0.99) * 1e3}


def prometheus_text(snapshot: dict) -> str:
    """The JSON metrics snapshot in the Prometheus text exposition format (counters and gauges)."""
    lines = []

    def metric(name: str, kind: str, value: float, labels: str = "") -> None:
        if f"# TYPE {name} " not in "\n".join(lines):
            lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")

    for key, count in snapshot["requests"].items():
        path, status = key.rsplit(" ", 1)
        metric("reward_requests_total", "counter", count, f'path="{path}",status="{status}"')
    metric("reward_items_total", "counter", snapshot["items"])
    metric("reward_overload_rejections_total", "counter", snapshot["rejected_overload"])
    metric("reward_pending_items", "gauge", snapshot["pending_items"])
    for key in ("hits", "shared_in_flight", "misses", "evictions"):
        metric(f"reward_cache_{key}_total", "counter", snapshot["cache"][key])
    metric("reward_cache_entries", "gauge", snapshot["cache"]["entries"])
    for name, stats in snapshot["batching"].items():
        metric("reward_rm_forwards_total", "counter", stats["forwards"], f'model="{name}"')
        metric("reward_rm_items_total", "counter", stats["items"], f'model="{name}"')
    for status, count in snapshot["verifier_status"].items():
        metric("reward_verifier_results_total", "counter", count, f'status="{status}"')
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        if key in snapshot["latency"]:
            metric("reward_score_latency_ms", "gauge", snapshot["latency"][key], f'quantile="{key[1:-3]}"')
    return "\n".join(lines) + "\n"


class HTTPGuard:
    """ASGI middleware in front of the app: bearer token, body-size limit (413 before parsing) and request metrics.

    Pure ASGI rather than a FastAPI dependency so that the token is checked before the body is read or validated
    (an unauthenticated caller learns nothing about the schema) and oversized bodies are refused unread."""

    def __init__(self, app, *, api_token: str | None, max_bytes: int, metrics: ServiceMetrics):
        self.app = app
        self.api_token = api_token
        self.max_bytes = max_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        start = time.perf_counter()
        status_holder = {"status": 500}

        async def send_recording(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_recording, path)
        finally:
            label = path if path in ("/v1/score", "/healthz", "/metrics") else "other"
            self.metrics.requests[(label, status_holder["status"])] += 1
            if path == "/v1/score" and status_holder["status"] == 200:
                self.metrics.latencies.append(time.perf_counter() - start)

    async def _handle(self, scope, receive, send, path):
        headers = dict(scope["headers"])
        if self.api_token is not None and path in GUARDED_PATHS:
            scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), self.api_token.encode()):
                response = JSONResponse(
                    {"detail": "missing or wrong bearer token"}, 401, headers={"WWW-Authenticate": "Bearer"}
                )
                return await response(scope, receive, send)
        too_large = JSONResponse({"detail": f"request body over max_request_bytes={self.max_bytes}"}, 413)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await too_large(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        body, more = b"", True  # read the body here (bounded), so a chunked upload cannot exceed the limit either
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await too_large(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    config: ServeConfig,
    scorer: RMScorer | None,
    *,
    verify: VerifyFn | None = None,
    criterion_scorers: dict[str, RMScorer] | None = None,
    known_verifier: Callable[[str], bool] | None = None,
) -> FastAPI:
    """The FastAPI app. `scorer` maps (prompt, response) pairs to raw RM logits (a `RewardModelScorer` when
    serving); None serves without the "rm" component and needs weights.rm == 0. `criterion_scorers` holds one
    scorer per entry of `config.criterion_models`. `verify` defaults to data_builders' plus `extra_verifiers`."""
    if scorer is None and config.weights["rm"] != 0:
        raise ConfigError("weights.rm != 0 but no reward-model scorer was given")
    criterion_scorers = dict(criterion_scorers or {})
    if set(criterion_scorers) != set(config.criterion_models):
        raise ConfigError(
            f"criterion_models {sorted(config.criterion_models)} but scorers for {sorted(criterion_scorers)}"
        )
    if verify is None:
        verify, known_verifier = load_verifiers(config.extra_verifiers)
    known_verifier = known_verifier or (lambda kind: True)
    weights = dict(config.weights)
    weights["length_penalty"] = 1.0  # already a signed reward
    model_version = config.model_version or "+".join(
        checkpoint_fingerprint(path) if path and Path(path).is_dir() else str(path)
        for path in [config.model_path if scorer is not None else None, *config.criterion_models.values()]
    )
    metrics = ServiceMetrics()
    cache = ResultCache(config.cache_size)
    state = {"pending": 0}
    scorers = ({"rm": scorer} if scorer is not None else {}) | criterion_scorers

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.batchers = {
            name: DynamicBatcher(fn, max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms)
            for name, fn in scorers.items()
        }
        app.state.batcher = app.state.batchers.get("rm")
        for batcher in app.state.batchers.values():
            await batcher.start()
        app.state.verifier_pool = ThreadPoolExecutor(config.verifier_workers, thread_name_prefix="verifier")
        try:
            yield
        finally:
            for batcher in app.state.batchers.values():
                await batcher.stop()
            app.state.verifier_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="qwenpost reward service", lifespan=lifespan)
    app.state.cache = cache
    app.state.metrics = metrics
    app.add_middleware(HTTPGuard, api_token=config.api_token, max_bytes=config.max_request_bytes, metrics=metrics)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {
            "status": "ok",
            "model": config.model_path if scorer is not None else None,
            "criteria": sorted(config.criterion_models),
            "model_version": model_version,
            "weights": config.weights,
            "max_items_per_request": config.max_items_per_request,
        }

    def snapshot() -> dict:
        return {
            "uptime_s": time.time() - metrics.started,
            "requests": {f"{path} {status}": n for (path, status), n in sorted(metrics.requests.items())},
            "items": metrics.items,
            "rejected_overload": metrics.rejected_overload,
            "pending_items": state["pending"],
            "cache": cache.stats(),
            "batching": {name: batcher.stats() for name, batcher in app.state.batchers.items()},
            "verifier_status": dict(metrics.verifier_status),
            "latency": metrics.latency_summary(),
        }

    @app.get("/metrics")
    async def get_metrics(format: str = "json"):
        if format == "prometheus":
            return PlainTextResponse(prometheus_text(snapshot()), media_type="text/plain; version=0.0.4")
        if format != "json":
            raise HTTPException(422, f"format: expected 'json' or 'prometheus', got {format!r}")
        return snapshot()

    async def run_verifier(response: str, reference: dict | None) -> VerifierComponent | None:
        if reference is None:
            return None
        loop = asyncio.get_running_loop()
        kind = reference["type"]
        try:
            result = await asyncio.wait_for(
                loop.run_in_executor(app.state.verifier_pool, verify, response, reference), config.verifier_timeout_s
            )
        except TimeoutError:
            message = f"verifier did not finish within {config.verifier_timeout_s}s"
            component = failed_component(kind, "timeout", message)
        except ValueError as err:  # data_builders raises ValueError for an unknown type or a malformed reference
            raise BadReference(f"reference (type {kind!r}): {err}") from err
        except Exception as err:  # a verifier bug is this item's problem, not the whole request's
            component = failed_component(kind, "error", f"{type(err).__name__}: {err}")
        else:
            component = verifier_component(result)
        metrics.verifier_status[component.status] += 1
        return component

    async def run_rm(name: str, prompt: list[dict] | str, response: str) -> float:
        logit = await app.state.batchers[name].submit((prompt, response))
        return bounded_rm_score(logit, shift=config.rm_shift, scale=config.rm_scale)

    async def compute(prompt: list[dict] | str, response: str, reference: dict | None) -> ScoreResult:
        names = list(app.state.batchers)
        rm_tasks = [asyncio.ensure_future(run_rm(name, prompt, response)) for name in names]
        try:
            verifier = await run_verifier(response, reference)
            rm_scores = dict(zip(names, await asyncio.gather(*rm_tasks), strict=True))
        finally:
            for task in rm_tasks:  # a bad reference must not leave forwards awaited by nobody
                task.cancel()
        penalty = None
        if config.length_penalty > 0:
            penalty = length_penalty(
                len(response), per_1k_chars=config.length_penalty, free_chars=config.length_penalty_free_chars
            )
        components = Components(
            rm=rm_scores.pop("rm", None),
            criteria=rm_scores,
            verifier=verifier,
            length_penalty=penalty,
        )
        scores = {"rm": components.rm, **components.criteria, "length_penalty": penalty}
        scores["verifier"] = verifier.score if verifier is not None else None
        return ScoreResult(reward=combine_components(scores, weights), components=components)

    def cacheable(result: ScoreResult) -> bool:
        return result.components.verifier is None or result.components.verifier.status == "ok"

    async def score_item(item: ScoreItem, reference: dict | None, index: int) -> ScoreResult:
        prompt = item.prompt
        if not isinstance(prompt, str):
            prompt = [message.model_dump(exclude_none=True) for message in prompt]
        key = item_key(prompt, item.response, reference, model_version)
        try:
            result, source = await cache.get_or_compute(
                key, lambda: compute(prompt, item.response, reference), cacheable=cacheable
            )
        except BadReference as err:
            raise HTTPException(422, f"items[{index}].{err}") from err
        if source != "miss":
            result = result.model_copy(update={"cached": True})
        return result

    @app.post("/v1/score")
    async def score(request: ScoreRequest) -> ScoreResponse:
        items = request.items
        if len(items) > config.max_items_per_request:
            raise HTTPException(
                413, f"{len(items)} items in one request; this service takes at most {config.max_items_per_request}"
            )
        references = [parse_reference(item.reference, i) for i, item in enumerate(items)]
        for i, reference in enumerate(references):
            if reference is not None and not known_verifier(reference["type"]):
                raise HTTPException(422, f"items[{i}].reference: unknown verifier type {reference['type']!r}")
        if state["pending"] + len(items) > config.max_pending_items:
            metrics.rejected_overload += 1
            raise HTTPException(
                503,
                f"overloaded: {state['pending']} items pending (max_pending_items={config.max_pending_items})",
                headers={"Retry-After": str(config.retry_after_s)},
            )
        state["pending"] += len(items)
        metrics.items += len(items)
        tasks = [asyncio.ensure_future(score_item(item, references[i], i)) for i, item in enumerate(items)]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            state["pending"] -= len(items)
        return ScoreResponse(results=results)

    return app


def main(argv: list[str] | None = None) -> None:
    """Parse the config, load the reward model(s), serve until interrupted."""
    import uvicorn

    config = parse_config(ServeConfig, argv)

    def load(key: str, path: str) -> RMScorer:
        if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "config.json")):
            raise ConfigError(f"`{key}`: no reward-model checkpoint directory at {path}")
        from reward.model_scorer import RewardModelScorer  # torch is imported only when a model is served

        return RewardModelScorer.from_pretrained(
            path, device=config.device, dtype=config.dtype, max_length=config.max_length
        )

    if config.torch_threads > 0 and (config.weights["rm"] != 0 or config.criterion_models):
        import torch

        torch.set_num_threads(config.torch_threads)
    scorer = load("model_path", config.model_path) if config.weights["rm"] != 0 else None
    criterion_scorers = {name: load(f"criterion_models.{name}", p) for name, p in config.criterion_models.items()}
    app = create_app(config, scorer, criterion_scorers=criterion_scorers)
    if config.host not in ("127.0.0.1", "localhost", "::1") and config.api_token is None:
        print(f"reward service: warning: listening on {config.host} without an api_token")
    print(
        f"reward service: http://{config.host}:{config.port} model={config.model_path} "
        f"criteria={sorted(config.criterion_models)} weights={config.weights} "
        "(POST /v1/score, GET /healthz, GET /metrics)",
        flush=True,
    )
    uvicorn.run(  # per-request access logs would flood
        app, host=config.host, port=config.port, access_log=False, timeout_keep_alive=config.keep_alive_s
    )
