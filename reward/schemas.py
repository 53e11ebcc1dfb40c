"""The reward service's request and response bodies (pydantic; FastAPI validates requests against them and serves
them as the OpenAPI schema at /openapi.json).

    POST /v1/score  ScoreRequest {"items": [ScoreItem]}  ->  ScoreResponse {"results": [ScoreResult]}

Requests refuse unknown fields (a misspelt `refrence` is a 422 naming it, not a silently unverified item); messages
let template fields such as `tool_calls` pass through to the chat template.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # tool calls and other template fields pass through

    role: str
    content: str


class ScoreItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: list[Message] | str  # chat messages ending with the user turn, or plain text
    response: str
    reference: dict[str, Any] | str | None = None  # the verifier spec (a mapping or its JSON text); null: no verifier


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
