"""The reward service's application: GRPO's rewards over HTTP (reward models + rule-based verifiers + an optional
judge model + length penalty, weighted). `create_app` wires the pieces; `python -m reward serve` (reward/serve.py)
loads the models and runs it under uvicorn.

Endpoints
    GET  /healthz   -> {"status": "ok", "model": model_path, "model_version": ..., "criteria": [...], ...}
    GET  /metrics   -> JSON counters (requests by status, items, cache, batch sizes, latency percentiles);
                       `?format=prometheus` gives the Prometheus text format (reward/metrics.py)
    POST /v1/score  {"items": [{"prompt": [messages] | str, "response": str, "reference": dict | JSON str | null}]}
                    -> {"results": [{"reward": float, "components": {"rm": float | null,
                        "criteria": {name: float}, "verifier": {...} | null, "length_penalty": float | null,
                        "judge": {judge, rubric, status, score, raw_score, reason} | null},
                        "cached": bool}]}                                       (bodies: reward/schemas.py)

Per item (`Scoring.compute`): each reward model's logit goes through `combine.bounded_rm_score` (tanh):
`model_path` gives component "rm", each of `criterion_models` (a model trained on one of the report's six criteria)
its own component; the verifier named by `reference["type"]` (the `verifiers` registry, plus `extra_verifiers`)
gives a score in [0, 1]; with `judge` configured, a judge model (any `generators` backend, its own batcher) grades
the response against the rubric, (N - 1) / 9 for a strict `Score: N` line (reward/judge.py), bounded by
`judge.timeout_s`; `reward = sum_k weights[k] * component_k + length_penalty` (`combine.combine_components`).

Why hand-written here: dynamic batching of reward-model forwards across concurrent requests (reward/batching.py),
the item cache with in-flight sharing (reward/cache.py) and admission control (reward/guard.py) are what make the
service fast and safe under GRPO's bursty load, and no FastAPI library does them for a reward model.

Hostile input fails only its own item, before any shared work: every string, number and nesting level of a request
is checked by the schema (reward/schemas.py), every item is rendered with the chat template and tokenized (cut to
its last `max_length` tokens' worth of text first) on render threads before it joins a model batch, and a batch
whose forward raises is re-run item by item (reward/batching.py). Verifiers run concurrently with the forwards in
killable worker processes (`verifiers.pool`: wall time `verifier_timeout_s`, CPU, `verifier_memory_mb`), so a
runaway sympy expression or backtracking regex is killed and replaced, never holding the GIL or a slot; a killed
or timed-out check gives a component with status "timeout" (or "error" when the worker died) and score 0. The
sandbox-backed types (`thread_verifiers`: code) stay on threads: the sandbox kills its own processes.

Errors, none of them a crash: a missing/wrong bearer token -> 401; invalid JSON or a schema violation -> 422
naming the field; a reference that is not JSON, has no "type", names an unknown verifier or lacks a field the
verifier needs -> 422 naming the item; a body over `max_request_bytes` or more than `max_items_per_request`
items -> 413; more than `max_pending_items` items admitted and unfinished -> 503 with Retry-After.
"""

import asyncio
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from generators import Generator
from reward.batching import DynamicBatcher
from reward.cache import ResultCache, checkpoint_fingerprint, item_key
from reward.combine import bounded_rm_score, combine_components, length_penalty
from reward.config import ServeConfig
from reward.guard import Admission, HTTPGuard
from reward.judge import Judge, JudgeSettings, judge_messages, parse_answer, parse_judge
from reward.metrics import ServiceMetrics, prometheus_text
from reward.schemas import (
    Components,
    JudgeComponent,
    ScoreItem,
    ScoreRequest,
    ScoreResponse,
    ScoreResult,
    VerifierComponent,
    check_json_value,
)  # fmt: skip
from stagekit.config import ConfigError
from verifiers import parse_reference
from verifiers.pool import ProcessExpired, VerifierPool, resolve_verifiers

ScoreInput = tuple[list[dict] | str, str]  # (prompt, response); same as reward.model_scorer.ScoreInput
RMScorer = Callable[[Sequence[ScoreInput]], Sequence[float]]  # (prompt, response) pairs -> raw RM logits
VerifyFn = Callable[[str, dict], Any]  # (response, reference) -> VerifierResult; ValueError on a bad reference


class BadItem(ValueError):
    """An item the service cannot score (a prompt the chat template or tokenizer refuses, a reference the verifier
    refuses); becomes a 422 naming the item and field, and fails only its own request."""


class BadReference(BadItem):
    """A reference the verifier refused (unknown type, missing field)."""


def item_reference(reference: dict | str | None, index: int) -> dict | None:
    """A reference as sent (mapping, JSON string or null) -> mapping with a string `type`, or None; HTTP 422 naming
    the item otherwise (`verifiers.parse_reference` reads it)."""
    if reference is None:
        return None
    where = f"items[{index}].reference"
    try:
        reference = check_json_value(parse_reference(reference, where), where)
    except ValueError as err:
        raise HTTPException(422, str(err)) from err
    if not isinstance(reference.get("type"), str):
        raise HTTPException(422, f"{where}: expected an object with a string 'type' field")
    return reference


def load_verifiers(extra: dict[str, str]) -> tuple[VerifyFn, Callable[[str], bool]]:
    """(verify, knows_type): the `verifiers` registry's `verify` with the `extra_verifiers` ("module:function") in
    front (`verifiers.pool.resolve_verifiers`); ConfigError naming a target that cannot be imported."""
    try:
        return resolve_verifiers(extra)
    except ValueError as err:
        raise ConfigError(str(err)) from err


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


def _printable(value: Any) -> Any:
    """`value` with every string made encodable (a lone surrogate becomes its escape), for an error reply."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    return value if isinstance(value, int | bool | None) else str(value)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 listing each problem's type, location and message. FastAPI's default handler also echoes the offending
    input, which fails to encode when it is NaN, Infinity or a lone surrogate (a 500 instead of a 422)."""
    detail = [{"type": err.get("type"), "loc": _printable(list(err.get("loc", ()))), "msg": _printable(err.get("msg"))}
              for err in exc.errors()]  # fmt: skip
    return JSONResponse({"detail": detail}, 422)


class Scoring:
    """One item's reward: the reward-model forwards (batched across requests) and the verifier (a killable process
    pool, or threads for the sandbox-backed types), concurrently, combined by the configured weights, answered from
    the cache when the same item was seen.

    A scorer with `encode(prompt, response) -> ids` and `score_ids(list of ids) -> logits` (a `RewardModelScorer`)
    has each item rendered and tokenized on the render threads before it joins a batch, so a prompt the template
    refuses fails its own item (422) and a megabyte response is cut before tokenizing without holding the batcher;
    a plain callable of (prompt, response) pairs is batched as given."""

    def __init__(self, config: ServeConfig, verify: VerifyFn, metrics: ServiceMetrics, model_version: str, *,
                 in_processes: bool, judge: Judge | None = None):  # fmt: skip
        """`verify` runs the thread-side types; `in_processes`: the others run in a `VerifierPool` of the registry
        plus `config.extra_verifiers` (else everything runs `verify` on threads). `model_version` goes into every
        cache key (with a judge it includes the judge's identity). `judge`: the judge component, or None."""
        self.config, self.verify, self.metrics, self.model_version = config, verify, metrics, model_version
        self.in_processes = in_processes
        self.judge = judge
        self.weights = dict(config.weights) | {"length_penalty": 1.0}  # the penalty is already a signed reward
        if judge is not None:
            self.weights["judge"] = judge.settings.weight
        self.judge_batcher: DynamicBatcher | None = None
        self.cache = ResultCache(config.cache_size)
        self.batchers: dict[str, DynamicBatcher] = {}  # set when the app starts (they need its event loop)
        self.encoders: dict[str, Callable[[Any, str], list[int]]] = {}
        self.verifier_threads: ThreadPoolExecutor | None = None
        self.verifier_processes: VerifierPool | None = None
        self.render_pool: ThreadPoolExecutor | None = None

    async def start(self, scorers: dict[str, RMScorer]) -> None:
        self.batchers = {}
        for name, scorer in scorers.items():
            batch_fn = scorer
            if callable(getattr(scorer, "encode", None)) and callable(getattr(scorer, "score_ids", None)):
                self.encoders[name], batch_fn = scorer.encode, scorer.score_ids
            self.batchers[name] = DynamicBatcher(
                batch_fn, max_batch_size=self.config.max_batch_size, max_wait_ms=self.config.max_wait_ms
            )
        for batcher in self.batchers.values():
            await batcher.start()
        if self.judge is not None:  # its own batcher: judge calls never wait behind (or hold) a reward-model forward
            self.judge_batcher = DynamicBatcher(
                self.judge.answer, max_batch_size=self.judge.settings.max_batch_size,
                max_wait_ms=self.config.max_wait_ms,
            )
            await self.judge_batcher.start()
        self.verifier_threads = ThreadPoolExecutor(self.config.verifier_workers, thread_name_prefix="verifier")
        self.render_pool = ThreadPoolExecutor(max(2, min(8, os.cpu_count() or 2)), thread_name_prefix="render")
        if self.in_processes:  # the registry (+ extra_verifiers) in killable worker processes
            self.verifier_processes = VerifierPool(
                self.config.verifier_workers, timeout_s=self.config.verifier_timeout_s,
                memory_mb=self.config.verifier_memory_mb, extra_verifiers=self.config.extra_verifiers,
            )  # fmt: skip

    def all_batchers(self) -> dict[str, DynamicBatcher]:
        """The reward models' batchers and, under "judge", the judge's (for /metrics)."""
        return self.batchers | ({"judge": self.judge_batcher} if self.judge_batcher is not None else {})

    async def stop(self) -> None:
        for batcher in self.all_batchers().values():
            await batcher.stop()
        for pool in (self.verifier_threads, self.render_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        if self.verifier_processes is not None:
            self.verifier_processes.close()

    async def run_verifier(self, response: str, reference: dict | None) -> VerifierComponent | None:
        if reference is None:
            return None
        loop = asyncio.get_running_loop()
        kind = reference["type"]
        timeout = self.config.verifier_timeout_s
        in_process = self.verifier_processes is not None and kind not in self.config.thread_verifiers
        try:
            if in_process:  # the pool kills the worker at `timeout`; the outer wait is a backstop
                future = asyncio.wrap_future(self.verifier_processes.submit(response, reference))
                result = await asyncio.wait_for(future, timeout + 30)
            else:
                result = await asyncio.wait_for(
                    loop.run_in_executor(self.verifier_threads, self.verify, response, reference), timeout
                )
        except TimeoutError:
            component = failed_component(kind, "timeout", f"verifier did not finish within {timeout}s (killed)")
        except ProcessExpired as err:  # its worker hit the CPU or memory limit, or crashed
            component = failed_component(kind, "error", f"verifier process died (exit code {err.exitcode}): "
                                                        "CPU or memory limit")  # fmt: skip
        except MemoryError:
            component = failed_component(kind, "error", f"verifier ran out of its {self.config.verifier_memory_mb} MB")
        except ValueError as err:  # the registry raises ValueError for an unknown type or a malformed reference
            raise BadReference(f"reference (type {kind!r}): {err}") from err
        except Exception as err:  # a verifier bug is this item's problem, not the whole request's
            component = failed_component(kind, "error", f"{type(err).__name__}: {err}")
        else:
            component = verifier_component(result)
        self.metrics.verifier_status[component.status] += 1
        return component

    async def run_judge(self, prompt: list[dict] | str, response: str) -> JudgeComponent | None:
        """The judge's grade: asked through the judge batcher, bounded by `judge.timeout_s` from submission (queueing
        included; an item still queued when its caller gives up is skipped), parsed strictly. Never raises."""
        if self.judge is None:
            return None
        settings = self.judge.settings
        name = {"judge": settings.label, "rubric": settings.rubric_name}
        try:
            chat = judge_messages(prompt, response, settings)
            answer = await asyncio.wait_for(self.judge_batcher.submit(chat), settings.timeout_s)
        except TimeoutError:
            component = JudgeComponent(**name, status="timeout",
                                       reason=f"judge did not answer within {settings.timeout_s}s")  # fmt: skip
        except Exception as err:  # the backend failed (a server down, a model error): this item's judge only
            component = JudgeComponent(**name, status="error", reason=f"{type(err).__name__}: {str(err)[:300]}")
        else:
            verdict = parse_answer(answer if isinstance(answer, str) else "")
            if verdict.raw_score is None:
                reason = f"{verdict.problem}; answer: {verdict.reason}"
                component = JudgeComponent(**name, status="unparsable", reason=reason)
            else:
                component = JudgeComponent(**name, status="ok", score=verdict.score, raw_score=verdict.raw_score,
                                           reason=verdict.reason)  # fmt: skip
        self.metrics.judge_status[component.status] += 1
        return component

    async def encode(self, prompt: list[dict] | str, response: str) -> dict[str, Any]:
        """Each reward model's input for the item: token ids (rendered and tokenized here, off the event loop) or
        the (prompt, response) pair for scorers without `encode`. BadItem naming the prompt if rendering fails."""
        loop = asyncio.get_running_loop()
        inputs: dict[str, Any] = {}
        for name in self.batchers:
            encode = self.encoders.get(name)
            if encode is None:
                inputs[name] = (prompt, response)
                continue
            try:
                inputs[name] = await loop.run_in_executor(self.render_pool, encode, prompt, response)
            except Exception as err:  # the chat template or the tokenizer refused this prompt
                raise BadItem(f"prompt: cannot be rendered with the reward model's chat template "
                              f"({type(err).__name__}: {str(err)[:300]})") from err  # fmt: skip
        return inputs

    async def run_rm(self, name: str, model_input: Any) -> float:
        logit = await self.batchers[name].submit(model_input)
        return bounded_rm_score(logit, shift=self.config.rm_shift, scale=self.config.rm_scale)

    async def compute(self, prompt: list[dict] | str, response: str, reference: dict | None) -> ScoreResult:
        inputs = await self.encode(prompt, response)
        names = list(self.batchers)
        rm_tasks = [asyncio.ensure_future(self.run_rm(name, inputs[name])) for name in names]
        judge_task = asyncio.ensure_future(self.run_judge(prompt, response))
        try:
            verifier = await self.run_verifier(response, reference)
            rm_scores = dict(zip(names, await asyncio.gather(*rm_tasks), strict=True))
            judge = await judge_task
        finally:
            for task in [*rm_tasks, judge_task]:  # a bad reference must not leave work awaited by nobody
                task.cancel()
        penalty = None
        if self.config.length_penalty > 0:
            penalty = length_penalty(
                len(response), per_1k_chars=self.config.length_penalty,
                free_chars=self.config.length_penalty_free_chars,
            )  # fmt: skip
        components = Components(rm=rm_scores.pop("rm", None), criteria=rm_scores, verifier=verifier,
                                length_penalty=penalty, judge=judge)  # fmt: skip
        scores = {"rm": components.rm, **components.criteria, "length_penalty": penalty}
        scores["verifier"] = verifier.score if verifier is not None else None
        if judge is not None:
            scores["judge"] = judge.score if judge.status == "ok" else None
        return ScoreResult(reward=combine_components(scores, self.weights), components=components)

    @staticmethod
    def cacheable(result: ScoreResult) -> bool:
        """A timed-out or failed verifier or judge is not an answer to keep: the next identical item tries again. An
        unparsable judge answer is the judge's answer to this item, and is kept."""
        verifier, judge = result.components.verifier, result.components.judge
        verifier_done = verifier is None or verifier.status == "ok"
        return verifier_done and (judge is None or judge.status in ("ok", "unparsable"))

    async def score_item(self, item: ScoreItem, reference: dict | None, index: int) -> ScoreResult:
        prompt = item.prompt
        if not isinstance(prompt, str):
            prompt = [message.model_dump(exclude_none=True) for message in prompt]
        key = item_key(prompt, item.response, reference, self.model_version)
        try:
            result, source = await self.cache.get_or_compute(
                key, lambda: self.compute(prompt, item.response, reference), cacheable=self.cacheable
            )
        except BadItem as err:
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
    judge: Generator | None = None,
) -> FastAPI:
    """The FastAPI app. `scorer` maps (prompt, response) pairs to raw RM logits (a `RewardModelScorer` when
    serving); None serves without the "rm" component and needs weights.rm == 0. `criterion_scorers` holds one
    scorer per entry of `config.criterion_models`. `verify` (run on threads, no kill) replaces the default: the
    `verifiers` registry plus `extra_verifiers` in killable worker processes (`verifiers.pool`), with
    `config.thread_verifiers` on threads. `judge` is the generator of `config.judge` (`generators.make_model_generator`
    of its settings when serving; any object with `generate(queries, k)` in tests); required exactly when
    `config.judge` is set."""
    if scorer is None and config.weights["rm"] != 0:
        raise ConfigError("weights.rm != 0 but no reward-model scorer was given")
    criterion_scorers = dict(criterion_scorers or {})
    if set(criterion_scorers) != set(config.criterion_models):
        raise ConfigError(
            f"criterion_models {sorted(config.criterion_models)} but scorers for {sorted(criterion_scorers)}"
        )
    in_processes = verify is None
    if in_processes:  # resolved once here: the thread-side verify and the 422 check of unknown types
        verify, known_verifier = load_verifiers(config.extra_verifiers)
    known_verifier = known_verifier or (lambda kind: True)
    judge_settings: JudgeSettings | None = parse_judge(config.judge)
    if (judge is None) != (judge_settings is None):
        raise ConfigError("`judge` is configured but no judge generator was given" if judge is None
                          else "a judge generator was given but `judge` is not configured")  # fmt: skip
    model_version = config.model_version or "+".join(
        checkpoint_fingerprint(path) if path and Path(path).is_dir() else str(path)
        for path in [config.model_path if scorer is not None else None, *config.criterion_models.values()]
    )
    judge_identity = judge_settings.identity(checkpoint_fingerprint) if judge_settings is not None else None
    cache_version = model_version if judge_identity is None else f"{model_version}|judge:{judge_identity}"
    metrics = ServiceMetrics()
    scoring = Scoring(config, verify, metrics, cache_version, in_processes=in_processes,
                      judge=Judge(judge_settings, judge) if judge is not None else None)  # fmt: skip
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
    app.add_exception_handler(RequestValidationError, validation_error)
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
            "judge": None if judge_settings is None else {**judge_settings.public(), "identity": judge_identity},
            "max_items_per_request": config.max_items_per_request,
        }

    @app.get("/metrics")
    async def get_metrics(format: str = "json"):
        snapshot = metrics.snapshot(pending_items=admission.pending, cache=scoring.cache,
                                    batchers=scoring.all_batchers())  # fmt: skip
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
