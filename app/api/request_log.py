"""One log line per request (SPEC §9), and a request id on every log line written while it runs.

A pure ASGI middleware, so WebSocket relays and held wait-mode answers pass through untouched. The
query string is logged only through the redaction filter: session tokens travel in it.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import current_request_id
from app.core.redaction import redact_text

logger = logging.getLogger("app.request")

REQUEST_ID_HEADER = "x-request-id"
# A caller's own id is kept (to follow a request through a proxy) only when it looks like one.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestLog:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        reset = current_request_id.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope.get("path", "") + (f"?{query}" if query else "")
            logger.info(
                "request",
                extra={
                    "method": scope.get("method", "WS"),
                    "path": redact_text(path),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "request_id": request_id,
                },
            )
            current_request_id.reset(reset)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            given = value.decode("latin-1")
            if _ACCEPTED_ID.fullmatch(given):
                return given
    return uuid.uuid4().hex[:16]
