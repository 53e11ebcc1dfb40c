"""The reward service's request and response bodies (pydantic; FastAPI validates requests against them and serves
them as the OpenAPI schema at /openapi.json).

    POST /v1/score  ScoreRequest {"items": [ScoreItem]}  ->  ScoreResponse {"results": [ScoreResult]}

Requests refuse unknown fields (a misspelt `refrence` is a 422 naming it, not a silently unverified item); messages
let template fields such as `tool_calls` pass through to the chat template.

Every value of a request is checked here, before any scoring work, for what JSON allows but the rest of the service
cannot take: a lone surrogate (`"\\ud800"`, valid JSON, not encodable as UTF-8, so the tokenizer, the cache key and
the reply would fail), NaN or Infinity (Python's JSON reader accepts them; no JSON writer can echo them back), and
nesting deeper than `MAX_DEPTH` (a template or a recursive walk would overflow). Each is a 422 naming the field.
"""

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

MAX_DEPTH = 32  # deepest nesting of lists/objects accepted inside a message's extra fields or a reference


def check_text(text: str) -> str:
    """`text` if it encodes as UTF-8; ValueError naming the first lone surrogate otherwise."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"contains a lone surrogate (\\u{ord(text[err.start]):04x}) at character {err.start}: not valid Unicode "
            "text; send UTF-8"
        ) from None
    return text


def check_json_value(value: Any, where: str = "value", depth: int = 0) -> Any:
    """`value` if every string in it is valid text, every number finite and the nesting at most MAX_DEPTH deep;
    ValueError naming the path of the first offending part otherwise. Iterates at most MAX_DEPTH levels."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            check_text(value)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a finite number (JSON has no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json_value(key, f"{where} key", depth + 1)
            check_json_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json_value(item, f"{where}[{i}]", depth + 1)
    return value


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # tool calls and other template fields pass through

    role: str
    content: str

    @field_validator("role", "content")
    @classmethod
    def _valid_text(cls, value: str) -> str:
        return check_text(value)

    @model_validator(mode="after")
    def _valid_extra_fields(self) -> "Message":
        for key, value in (self.__pydantic_extra__ or {}).items():
            check_json_value(key, "field name")
            check_json_value(value, key)
        return self


class ScoreItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: list[Message] | str  # chat messages ending with the user turn, or plain text
    response: str
    reference: dict[str, Any] | str | None = None  # the verifier spec (a mapping or its JSON text); null: no verifier

    @field_validator("response")
    @classmethod
    def _valid_response(cls, value: str) -> str:
        return check_text(value)

    @field_validator("prompt")
    @classmethod
    def _valid_prompt(cls, value: list["Message"] | str) -> list["Message"] | str:
        return check_text(value) if isinstance(value, str) else value

    @field_validator("reference", mode="before")
    @classmethod
    def _valid_reference(cls, value: Any) -> Any:
        return check_json_value(value, "reference")


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


class JudgeComponent(BaseModel):
    """The judge model's grade of the response against the rubric (reward/judge.py); only status "ok" counts."""

    judge: str  # who judged: "<backend>:<model path or name>"
    rubric: str  # the criterion it graded, or "custom:<8 hex of the rubric text>"
    status: str  # "ok", "unparsable" (no single valid `Score: N` line), "timeout" (past judge.timeout_s), "error"
    score: float | None = None  # (raw_score - 1) / 9 in [0, 1] when ok, else None (adds nothing to the reward)
    raw_score: int | None = None  # the judge's N on its 1-10 scale, when ok
    reason: str = ""  # the judge's Reason line (else its answer's start), at most 500 characters; or the failure


class Components(BaseModel):
    rm: float | None
    criteria: dict[str, float] = {}
    verifier: VerifierComponent | None
    length_penalty: float | None = None
    judge: JudgeComponent | None = None  # present when the service has a `judge` configured


class ScoreResult(BaseModel):
    reward: float
    components: Components
    cached: bool = False  # answered from the cache or from an identical item in flight


class ScoreResponse(BaseModel):
    results: list[ScoreResult]
