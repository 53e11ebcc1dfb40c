"""The reward service: GRPO's rewards over HTTP (reward model + rule-based verifiers, weighted).

    python -m reward serve --config configs/reward/serve_tiny.yaml [--host 127.0.0.1 --port 8765]

Bound to loopback unless `host` says otherwise; set `api_token` (or the REWARD_API_TOKEN environment variable)
before exposing it. More GPUs: one replica per device (`--device cuda:N --port P`); `RewardClient` talks to one
URL, so each trainer process is given a replica's URL (or a load balancer's).

Endpoints
    GET  /healthz   -> {"status": "ok", "model": model_path, ...}
    POST /v1/score  {"items": [{"prompt": [messages] | str, "response": str, "reference": dict | JSON str | null}]}
                    -> {"results": [{"reward": float, "components": {"rm": float | null, "verifier": {...} | null}}]}

Per item: the reward model's logit goes through `combine.bounded_rm_score` (tanh), the verifier named by
`reference["type"]` (data_builders.verifiers) gives a score in [0, 1], and
`reward = weights.rm * rm + weights.verifier * verifier` (`combine.combine_reward`; an absent component adds 0).
Reward-model forwards go through a `DynamicBatcher` shared by all requests; verifiers (which may run model
code in the sandbox) run in a thread pool, concurrently with the forward.

Errors: schema violations -> 422 naming the field; more than `max_items_per_request` items -> 413; a reference
that is not JSON, has no "type" or names an unknown verifier -> 422 naming the item and the type; a missing or
wrong bearer token when `api_token` is set -> 401.
"""

import asyncio
import json
import os
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict

from pipeline.configs import ConfigError, parse_config
from reward.batching import DynamicBatcher
from reward.combine import RewardWeights, bounded_rm_score, combine_reward
from reward.model_scorer import ScoreInput

RMScorer = Callable[[Sequence[ScoreInput]], Sequence[float]]  # (prompt, response) pairs -> raw RM logits
VerifyFn = Callable[[str, dict], Any]  # (response, reference) -> VerifierResult; ValueError on a bad reference


@dataclass
class ServeConfig:
    """Reward service settings (YAML + command line through TrlParser)."""

    model_path: str | None = None  # `python -m reward train` output directory; required unless weights.rm is 0
    host: str = "127.0.0.1"  # interface to bind; loopback by default so nothing is exposed by accident
    port: int = 8765  # TCP port
    api_token: str | None = None  # if set, /v1/score needs `Authorization: Bearer <token>`; else REWARD_API_TOKEN
    # Weights of the reward components; our design default (the report gives none): a verified answer outranks any
    # reward-model preference, the model breaks ties. A JSON string on the command line: --weights '{"rm": 0.5, ...}'.
    weights: dict | str | None = field(default_factory=lambda: {"rm": 0.2, "verifier": 1.0})
    rm_shift: float = 0.0  # subtracted from the RM logit before tanh (recentres an RM trained without centring)
    rm_scale: float = 1.0  # RM logits are divided by this before tanh: the logit range that maps to (-1, 1)
    max_batch_size: int = 64  # most items in one reward-model forward
    max_wait_ms: float = 5.0  # longest an item waits for others to join its batch
    max_items_per_request: int = 256  # larger requests get 413; the client splits its calls to fit
    verifier_workers: int = 4  # threads running verifiers (code verifiers block on the sandbox)
    max_length: int = 2048  # longest RM input in tokens; longer ones keep their last max_length tokens
    device: str = "auto"  # "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1", ...
    dtype: str = "float32"  # RM weights dtype: float32, bfloat16 or float16

    def __post_init__(self):
        self.weights = parse_weights(self.weights)
        if self.api_token is None:
            self.api_token = os.environ.get("REWARD_API_TOKEN") or None
        for key in ("max_batch_size", "max_items_per_request", "verifier_workers", "max_length"):
            if getattr(self, key) < 1:
                raise ConfigError(f"`{key}` must be >= 1, got {getattr(self, key)}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"`dtype` must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"`max_wait_ms` must be >= 0, got {self.max_wait_ms}")
        if self.weights["rm"] != 0 and not self.model_path:
            raise ConfigError("`model_path` is required when weights.rm != 0 (weights.rm: 0 serves verifiers only)")

    @property
    def reward_weights(self) -> RewardWeights:
        return RewardWeights(rm=self.weights["rm"], verifier=self.weights["verifier"])


def parse_weights(value: dict | str | None) -> dict[str, float]:
    """`weights` from YAML (a mapping) or the command line (a JSON string) -> {"rm": float, "verifier": float}."""
    if value is None:
        raise ConfigError("`weights` must be a mapping with keys rm and verifier")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"`weights` is not valid JSON: {value!r}") from err
    if not isinstance(value, dict) or set(value) != {"rm", "verifier"}:
        raise ConfigError(f"`weights` must have exactly the keys rm and verifier, got {value!r}")
    try:
        return {key: float(weight) for key, weight in value.items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"`weights` values must be numbers, got {value!r}") from err


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
    passed: bool
    score: float
    format_ok: bool
    details: dict[str, Any]


class Components(BaseModel):
    rm: float | None
    verifier: VerifierComponent | None


class ScoreResult(BaseModel):
    reward: float
    components: Components


class ScoreResponse(BaseModel):
    results: list[ScoreResult]


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


def _default_verify() -> VerifyFn:
    from data_builders.verifiers import verify

    return verify


def _bearer_check(api_token: str | None) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        if api_token is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.encode(), api_token.encode()):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return check


def create_app(config: ServeConfig, scorer: RMScorer | None, *, verify: VerifyFn | None = None) -> FastAPI:
    """The FastAPI app. `scorer` maps (prompt, response) pairs to raw RM logits (a `RewardModelScorer` when
    serving); None serves verifiers only and needs weights.rm == 0. `verify` defaults to data_builders'."""
    if scorer is None and config.weights["rm"] != 0:
        raise ConfigError("weights.rm != 0 but no reward-model scorer was given")
    verify = verify or _default_verify()
    weights = config.reward_weights

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.batcher = None
        if scorer is not None:
            app.state.batcher = DynamicBatcher(
                scorer, max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms
            )
            await app.state.batcher.start()
        app.state.verifier_pool = ThreadPoolExecutor(config.verifier_workers, thread_name_prefix="verifier")
        try:
            yield
        finally:
            if app.state.batcher is not None:
                await app.state.batcher.stop()
            app.state.verifier_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="qwenpost reward service", lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {
            "status": "ok",
            "model": config.model_path if scorer is not None else None,
            "weights": config.weights,
            "max_items_per_request": config.max_items_per_request,
        }

    async def run_verifier(response: str, reference: dict | None, index: int) -> VerifierComponent | None:
        if reference is None:
            return None
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(app.state.verifier_pool, verify, response, reference)
        except ValueError as err:  # data_builders raises ValueError for an unknown type or a malformed reference
            raise HTTPException(422, f"items[{index}].reference (type {reference['type']!r}): {err}") from err
        return verifier_component(result)

    async def run_rm(prompt: list[dict] | str, response: str) -> float | None:
        if app.state.batcher is None:
            return None
        logit = await app.state.batcher.submit((prompt, response))
        return bounded_rm_score(logit, shift=config.rm_shift, scale=config.rm_scale)

    @app.post("/v1/score", dependencies=[Depends(_bearer_check(config.api_token))])
    async def score(request: ScoreRequest) -> ScoreResponse:
        items = request.items
        if len(items) > config.max_items_per_request:
            raise HTTPException(
                413, f"{len(items)} items in one request; this service takes at most {config.max_items_per_request}"
            )
        references = [parse_reference(item.reference, i) for i, item in enumerate(items)]
        prompts = [
            item.prompt if isinstance(item.prompt, str) else [m.model_dump(exclude_none=True) for m in item.prompt]
            for item in items
        ]
        rm_tasks = [asyncio.ensure_future(run_rm(p, item.response)) for p, item in zip(prompts, items, strict=True)]
        try:
            verifier_results = await asyncio.gather(
                *(run_verifier(item.response, ref, i) for i, (item, ref) in enumerate(zip(items, references)))
            )
            rm_scores = await asyncio.gather(*rm_tasks)
        finally:
            for task in rm_tasks:  # a 422 from a verifier must not leave forwards awaited by nobody
                task.cancel()
        results = [
            ScoreResult(
                reward=combine_reward(rm, ver.score if ver is not None else None, weights),
                components=Components(rm=rm, verifier=ver),
            )
            for rm, ver in zip(rm_scores, verifier_results, strict=True)
        ]
        return ScoreResponse(results=results)

    return app


def main(argv: list[str] | None = None) -> None:
    """Parse the config, load the reward model, serve until interrupted."""
    import uvicorn

    from reward.model_scorer import RewardModelScorer

    config = parse_config(ServeConfig, argv)
    scorer = None
    if config.weights["rm"] != 0:
        if not os.path.isdir(config.model_path):
            raise ConfigError(f"`model_path`: no reward-model checkpoint directory at {config.model_path}")
        scorer = RewardModelScorer.from_pretrained(
            config.model_path, device=config.device, dtype=config.dtype, max_length=config.max_length
        )
    app = create_app(config, scorer)
    if config.host not in ("127.0.0.1", "localhost", "::1") and config.api_token is None:
        print(f"reward service: warning: listening on {config.host} without an api_token")
    print(
        f"reward service: http://{config.host}:{config.port} model={config.model_path} "
        f"weights={config.weights} (POST /v1/score, GET /healthz)",
        flush=True,
    )
    uvicorn.run(app, host=config.host, port=config.port, access_log=False)  # per-request logs would flood
