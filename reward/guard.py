"""The reward service's guard: who may call it and how much it takes in, decided before any scoring work.

- `HTTPGuard` (ASGI middleware, in front of every route): the bearer token on every path but /healthz (401; the
  schema at /openapi.json and /docs included), the body size
  (413 before the body is parsed, also for chunked uploads), and the request counters of GET /metrics. Pure ASGI
  rather than a FastAPI dependency so that the token is checked before the body is read or validated (an
  unauthenticated caller learns nothing about the schema) and an oversized body is refused unread.
- `Admission`: the items admitted and not yet finished, across requests; a request that would take the total past
  `max_pending_items` gets 503 with Retry-After instead of queueing without bound.
"""

import secrets
import time

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from reward.metrics import ServiceMetrics

OPEN_PATHS = ("/healthz",)  # all other paths (the API, /metrics, /openapi.json, /docs) need the token when one is set


class Admission:
    """Counts admitted, unfinished items; `admit(n)` raises 503 (Retry-After) past `max_pending`."""

    def __init__(self, *, max_pending: int, retry_after_s: int, metrics: ServiceMetrics):
        self.max_pending, self.retry_after_s, self.metrics = max_pending, retry_after_s, metrics
        self.pending = 0

    def admit(self, n: int) -> None:
        if self.pending + n > self.max_pending:
            self.metrics.rejected_overload += 1
            raise HTTPException(
                503,
                f"overloaded: {self.pending} items pending (max_pending_items={self.max_pending})",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.pending += n
        self.metrics.items += n

    def release(self, n: int) -> None:
        self.pending -= n


class HTTPGuard:
    """ASGI middleware in front of the app: bearer token, body-size limit (413 before parsing) and request metrics."""

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
        if self.api_token is not None and path not in OPEN_PATHS:
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
