"""The reward service's application: GRPO's rewards over HTTP (reward models + rule-based verifiers + length
penalty, weighted). `create_app` wires the pieces; `python -m reward serve` (reward/serve.py) loads the models and
runs it under uvicorn.

Endpoints
    GET  /healthz   -> {"status": "ok", "model": model_path, "model_version": ..., "criteria": [...], ...}
    GET  /metrics   -> JSON counters (requests by status, items, cache, batch sizes, latency percentiles);
                       `?format=prometheus` gives the Prometheus text format (reward/metrics.py)
    POST /v1/score  {"items": [{"prompt": [messages] | str, "response": str, "reference": dict | JSON str | null}]}
                    -> {"results": [{"reward": float, "components": {"rm": float | null,
                        "criteria": {name: float}, "verifier": {...} | null, "length_penalty": float | null},
                        "cached": bool}]}                                       (bodies: reward/schemas.py)

Per item (`Scoring.compute`): each reward model's logit goes through `combine.bounded_rm_score` (tanh):
`model_path` gives component "rm", each of `criterion_models` (a model trained on one of the report's six criteria)
its own component; the verifier named by `reference["type"]` (the `verifiers` registry, plus `extra_verifiers`)
gives a score in [0, 1]; `reward = sum_k weights[k] * component_k + length_penalty` (`combine.combine_components`).

Why hand-written here: dynamic batching of reward-model forwards across concurrent requests (reward/batching.py),
the item cache with in-flight sharing (reward/cache.py) and admission control (reward/guard.py) are what make the
service fast and safe under GRPO's bursty load, and no FastAPI library does them for a reward model. Verifiers
(which may run model-written code in the sandbox) run in a thread pool, concurrently with the forwards; a verifier
that does not finish within `verifier_timeout_s` gives a component with status "timeout" and score 0 (its thread is
left to finish: the sandbox has its own wall-clock kill).

Errors, none of them a crash: a missing/wrong bearer token -> 401; invalid JSON or a schema violation -> 422
naming the field; a reference that is not JSON, has no "type", names an unknown verifier or lacks a field the
verifier needs -> 422 naming the item; a body over `max_request_bytes` or more than `max_items_per_request`
items -> 413; more than `max_pending_items` items admitted and unfinished -> 503 with Retry-After.
"""

import asyncio
import hashlib
import importlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

from reward.batching import DynamicBatcher
from reward.cache import ResultCache, item_key
from reward.combine import bounded_rm_score, combine_components, length_penalty
from reward.config import ServeConfig
from reward.guard import Admission, HTTPGuard
from reward.metrics import ServiceMetrics, prometheus_text
from reward.schemas import Components, ScoreItem, ScoreRequest, ScoreResponse, ScoreResult, VerifierComponent
from stagekit.config import ConfigError
from verifiers import VERIFIERS, parse_reference, verify

ScoreInput = tuple[list[dict] | str, str]  # (prompt, response); same as reward.model_scorer.ScoreInput
RMScorer = Callable[[Sequence[ScoreInput]], Sequence[float]]  # (prompt, response) pairs -> raw RM logits
VerifyFn = Callable[[str, dict], Any]  # (response, reference) -> VerifierResult; ValueError on a bad reference


class BadReference(ValueError):
    """A reference the verifier refused (unknown type, missing field); becomes a 422 naming the item."""


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """A short hash of a checkpoint directory's file names, sizes and modification times (cheap, no reads)."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if file.is_file():
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def item_reference(reference: dict | str | None, index: int) -> dict | None:
    """A reference as sent (mapping, JSON string or null) -> mapping with a string `type`, or None; HTTP 422 naming
    the item otherwise (`verifiers.parse_reference` reads it)."""
    if reference is None:
        return None
    where = f"items[{index}].reference"
    try:
        reference = parse_reference(reference, where)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    if not isinstance(reference.get("type"), str):
        raise HTTPException(422, f"{where}: expected an object with a string 'type' field")
    return reference


def load_verifiers(extra: dict[str, str]) -> tuple[VerifyFn, Callable[[str], bool]]:
    """(verify, knows_type): the `verifiers` registry's `verify` with the `extra_verifiers` ("module:function") in
    front."""
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


class Scoring:
    """One item's reward: the reward-model forwards (batched across requests) and the verifier (a thread pool),
    concurrently, combined by the configured weights, answered from the cache when the same item was seen."""

    def __init__(self, config: ServeConfig, verify: VerifyFn, metrics: ServiceMetrics, model_version: str):
        self.config, self.verify, self.metrics, self.model_version = config, verify, metrics, model_version
        self.weights = dict(config.weights) | {"length_penalty": 1.0}  # the penalty is already a signed reward
        self.cache = ResultCache(config.cache_size)
        self.batchers: dict[str, DynamicBatcher] = {}  # set when the app starts (they need its event loop)
        self.verifier_pool: ThreadPoolExecutor | None = None

    async def start(self, scorers: dict[str, RMScorer]) -> None:
        self.batchers = {
            name: DynamicBatcher(fn, max_batch_size=self.config.max_batch_size, max_wait_ms=self.config.max_wait_ms)
            for name, fn in scorers.items()
        }
        for batcher in self.batchers.values():
            await batcher.start()
        self.verifier_pool = ThreadPoolExecutor(self.config.verifier_workers, thread_name_prefix="verifier")

    async def stop(self) -> None:
        for batcher in self.batchers.values():
            await batcher.stop()
        if self.verifier_pool is not None:
            self.verifier_pool.shutdown(wait=False, cancel_futures=True)

    async def run_verifier(self, response: str, reference: dict | None) -> VerifierComponent | None:
        if reference is None:
            return None
        loop = asyncio.get_running_loop()
        kind = reference["type"]
        timeout = self.config.verifier_timeout_s
        try:
            result = await asyncio.wait_for(
                loop.run_in_executor(self.verifier_pool, self.verify, response, reference), timeout
            )
        except TimeoutError:
            component = failed_component(kind, "timeout", f"verifier did not finish within {timeout}s")
        except ValueError as err:  # the registry raises ValueError for an unknown type or a malformed reference
            raise BadReference(f"reference (type {kind!r}): {err}") from err
        except Exception as err:  # a verifier bug is this item's problem, not the whole request's
            component = failed_component(kind, "error", f"{type(err).__name__}: {err}")
        else:
            component = verifier_component(result)
        self.metrics.verifier_status[component.status] += 1
        return component

    async def run_rm(self, name: str, prompt: list[dict] | str, response: str) -> float:
        logit = await self.batchers[name].submit((prompt, response))
        return bounded_rm_score(logit, shift=self.config.rm_shift, scale=self.config.rm_scale)

    async def compute(self, prompt: list[dict] | str, response: str, reference: dict | None) -> ScoreResult:
        names = list(self.batchers)
        rm_tasks = [asyncio.ensure_future(self.run_rm(name, prompt, response)) for name in names]
        try:
            verifier = await self.run_verifier(response, reference)
            rm_scores = dict(zip(names, await asyncio.gather(*rm_tasks), strict=True))
        finally:
            for task in rm_tasks:  # a bad reference must not leave forwards awaited by nobody
                task.cancel()
        penalty = None
        if self.config.length_penalty > 0:
            penalty = length_penalty(
                len(response), per_1k_chars=self.config.length_penalty,
                free_chars=self.config.length_penalty_free_chars,
            )  # fmt: skip
        components = Components(rm=rm_scores.pop("rm", None), criteria=rm_scores, verifier=verifier,
                                length_penalty=penalty)  # fmt: skip
        scores = {"rm": components.rm, **components.criteria, "length_penalty": penalty}
        scores["verifier"] = verifier.score if verifier is not None else None
        return ScoreResult(reward=combine_components(scores, self.weights), components=components)

    @staticmethod
    def cacheable(result: ScoreResult) -> bool:
        """A timed-out or failed verifier is not an answer to keep: the next identical item tries again."""
        return result.components.verifier is None or result.components.verifier.status == "ok"

    async def score_item(self, item: ScoreItem, reference: dict | None, index: int) -> ScoreResult:
        prompt = item.prompt
        if not isinstance(prompt, str):
            prompt = [message.model_dump(exclude_none=True) for message in prompt]
        key = item_key(prompt, item.response, reference, self.model_version)
        try:
            result, source = await self.cache.get_or_compute(
                key, lambda: self.compute(prompt, item.response, reference), cacheable=self.cacheable
            )
        except BadReference as err:
            raise HTTPException(422, f"items[{index}].{err}") from err
        if source != "miss":
            result = result.model_copy(update={"cached": True})
        return result


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
    scorer per entry of `config.criterion_models`. `verify` defaults to the `verifiers` registry plus
    `extra_verifiers`."""
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
    model_version = config.model_version or "+".join(
        checkpoint_fingerprint(path) if path and Path(path).is_dir() else str(path)
        for path in [config.model_path if scorer is not None else None, *config.criterion_models.values()]
    )
    metrics = ServiceMetrics()
    scoring = Scoring(config, verify, metrics, model_version)
    admission = Admission(max_pending=config.max_pending_items, retry_after_s=config.retry_after_s, metrics=metrics)
    scorers = ({"rm": scorer} if scorer is not None else {}) | criterion_scorers

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await scoring.start(scorers)
        app.state.batchers = scoring.batchers
        app.state.batcher = scoring.batchers.get("rm")
        try:
            yield
        finally:
            await scoring.stop()

    app = FastAPI(title="qwenpost reward service", lifespan=lifespan)
    app.state.cache = scoring.cache
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

    @app.get("/metrics")
    async def get_metrics(format: str = "json"):
        snapshot = metrics.snapshot(pending_items=admission.pending, cache=scoring.cache, batchers=scoring.batchers)
        if format == "prometheus":
            return PlainTextResponse(prometheus_text(snapshot), media_type="text/plain; version=0.0.4")
        if format != "json":
            raise HTTPException(422, f"format: expected 'json' or 'prometheus', got {format!r}")
        return snapshot

    @app.post("/v1/score")
    async def score(request: ScoreRequest) -> ScoreResponse:
        items = request.items
        if len(items) > config.max_items_per_request:
            raise HTTPException(
                413, f"{len(items)} items in one request; this service takes at most {config.max_items_per_request}"
            )
        references = [item_reference(item.reference, i) for i, item in enumerate(items)]
        for i, reference in enumerate(references):
            if reference is not None and not known_verifier(reference["type"]):
                raise HTTPException(422, f"items[{i}].reference: unknown verifier type {reference['type']!r}")
        admission.admit(len(items))
        tasks = [asyncio.ensure_future(scoring.score_item(item, references[i], i)) for i, item in enumerate(items)]
        try:
            results = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            admission.release(len(items))
        return ScoreResponse(results=results)

    return app
