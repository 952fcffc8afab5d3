"""How `python -m app` (`make run`) serves the app: uvicorn, with the options and the HTTP protocol it needs.

`HeadLimitedH11Protocol` enforces SPEC §9's limits on request heads, which no ASGI app can: the app
sees a request only once its head has been read and parsed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import sys
from typing import Any, ClassVar

import h11
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.api.errors import error_body
from app.api.state import app_state
from app.core.config import Settings, load_settings
from app.core.errors import ServiceError
from app.services.common.cdp_relay import CLIENT_MAX_MESSAGE_BYTES
from app.services.tiktok.browser_factory import sandbox_problem

logger = logging.getLogger(__name__)

# SPEC §9: a request head (request line and headers) over 32 KiB in all is refused with 431 …
MAX_HEAD_BYTES = 32 * 1024
# … and a client that has not sent its whole head within 10 s is disconnected.
HEAD_TIMEOUT = 10.0

# The blank line that ends a head; h11 accepts a bare LF as a line end, so this does too.
_HEAD_END = re.compile(rb"\n\r?\n")


class RequestHeadersTooLarge(ServiceError):
    code = "REQUEST_HEADERS_TOO_LARGE"
    http_status = 431
    message = "Request header fields too large"
    description = "A request head (request line and headers) over 32 KiB in all"
    example = {"details": "the request head is larger than 32768 bytes"}


class HeadMeter:
    """Measures one request head as its bytes arrive, without parsing it.

    Looks at no more bytes than the limit allows, whatever a client sends: deciding costs the same for a
    33 KiB head as for a 128 MiB one.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self.complete = False
        # The last bytes looked at: the blank line may be split between two reads.
        self._tail = b""

    def feed(self, data: bytes) -> bool:
        """Count `data`; True when the head is known to be over the limit."""
        if self.complete:
            return False
        window = self._tail + data[: self.limit + 1 - self.size]
        end = _HEAD_END.search(window)
        if end is None:
            self.size += len(data)
            self._tail = window[-2:]
        else:
            self.complete = True
            self.size += end.end() - len(self._tail)
        return self.size > self.limit


class HeadLimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with SPEC §9's limits on request heads.

    - A head over `max_head_bytes` is answered 431 with the service's error envelope as soon as that is
      known, before h11 sees any of it, and the connection is closed: the rest is never read.
    - A head must be complete within `head_timeout` of the connection opening, or, on a kept-alive
      connection, of its first byte (an idle kept-alive connection waits for `timeout_keep_alive`).

    httptools, uvicorn's default parser, has no limit on a head's size at all. WebSocket upgrades are
    handed to the WebSocket protocol as usual once their head is complete.
    """

    max_head_bytes: ClassVar[int] = MAX_HEAD_BYTES
    head_timeout: ClassVar[float] = HEAD_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head: HeadMeter | None = None  # the head being received, when one has begun
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.conn.their_state is h11.IDLE:
            head = self._head or self._begin_head()
            if head.feed(data):
                self._refuse_head()
                return
        super().data_received(data)

    def handle_events(self) -> None:
        # Also called after a response, when h11 may already hold the next head: a client pipelining
        # requests sent it along with the last request's bytes. (One case escapes the count: a head
        # pipelined behind a body that the app answered before reading it whole, found in the same read
        # as the body's end; it is one read at most, 256 KiB, and h11's own limit refuses it unfinished.)
        if self._track_head():
            super().handle_events()
            self._track_head()

    def _track_head(self) -> bool:
        """Follow h11 from one head to the next; False when the connection was refused."""
        if self.conn.their_state is not h11.IDLE:
            self._end_head()  # the head is complete (or the connection failed)
        elif self._head is None and not self._refused:
            held = self.conn.trailing_data[0]
            if held and self._begin_head().feed(held):
                self._refuse_head()
        return not self._refused

    def _begin_head(self) -> HeadMeter:
        self._head = HeadMeter(self.max_head_bytes)
        self._arm_head_timer()
        return self._head

    def _end_head(self) -> None:
        self._head = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            logger.info("http.head_timeout", extra={"client": self._peer(), "timeout": self.head_timeout})
            self.transport.close()

    def _peer(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else ""

    def _refuse_head(self) -> None:
        self._refused = True
        self._end_head()
        logger.info("http.head_too_large", extra={"client": self._peer(), "limit": self.max_head_bytes})
        error = RequestHeadersTooLarge(f"the request head is larger than {self.max_head_bytes} bytes")
        body = json.dumps(error_body(error), separators=(",", ":")).encode()  # as JSONResponse writes it
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-error-code", error.code.encode()),
            (b"connection", b"close"),
        ]
        head = b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        # Closing stops reading at once: whatever else the client sends is never read.
        self.transport.write(head + b"\r\n" + body)
        self.transport.close()


def head_limited_protocol(
    head_timeout: float = HEAD_TIMEOUT, max_head_bytes: int = MAX_HEAD_BYTES
) -> type[HeadLimitedH11Protocol]:
    """The protocol class with other limits (tests shorten the timeout rather than wait 10 s)."""
    if (head_timeout, max_head_bytes) == (HEAD_TIMEOUT, MAX_HEAD_BYTES):
        return HeadLimitedH11Protocol
    limits = {"head_timeout": head_timeout, "max_head_bytes": max_head_bytes}
    return type("HeadLimitedH11Protocol", (HeadLimitedH11Protocol,), limits)


def uvicorn_options(head_timeout: float = HEAD_TIMEOUT) -> dict[str, Any]:
    """What `python -m app` passes to uvicorn beside the app, host and port."""
    return {
        "log_config": None,  # our handler and redaction filter, not uvicorn's own
        "access_log": False,  # `app.api.request_log` writes one line per request, with its id
        # SPEC §9's limits on request heads (size and time), which uvicorn's default parser lacks.
        "http": head_limited_protocol(head_timeout),
        # A second line behind the protocol's own count: h11 refuses to buffer more of an unfinished head.
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        # The sans-I/O implementation stops reading a client's socket until the relay took its last
        # message: the client half of the relay's back pressure.
        "ws": "websockets-sansio",
        # A CDP client may send large commands (page content, file payloads); 16 MiB is uvicorn's default.
        "ws_max_size": CLIENT_MAX_MESSAGE_BYTES,
        # CDP clients do not compress; deflating a 30 MB screenshot on the event loop would stall everyone.
        "ws_per_message_deflate": False,
        # Pings still find dead clients, but Chromium can take many seconds to swallow a big command
        # while the client's pongs wait unread behind it: 20 s (the default) would cut healthy clients.
        "ws_ping_timeout": 60,
        # Longer than common clients' idle-connection expiry (httpx: 5 s), so the server never closes a
        # kept-alive connection at the moment a client reuses it.
        "timeout_keep_alive": 30,
    }


class Server(uvicorn.Server):
    """uvicorn's server, ending the sessions before it drains connections.

    uvicorn waits for every response in flight before the lifespan shutdown runs, and sends 1012 to
    every WebSocket: a wait-mode POST (answered only when its session ends) would hold SIGTERM up until
    MAX_SESSION_DURATION, and CDP clients would never get their normal close frame. Ending the sessions
    first answers both. `python -m app` (`make run`) runs this server.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.config.app
        if isinstance(app, Starlette):
            try:
                service = app_state(app).tiktok_service
            except LookupError:  # stopped before it started: no session to end
                pass
            else:
                await service.end_all_sessions()
        await super().shutdown(sockets)


def load_service_settings() -> Settings:
    """The settings, or one line naming the variable and exit 2: bad values, an unusable USER_DATA_DIR,
    and (SPEC §11) a sandbox that cannot be made here, found before the server starts."""
    settings = load_settings()
    problem = sandbox_problem(settings)
    if problem is not None:
        print(
            f"configuration error: SESSION_ISOLATION: the browser sandbox cannot be made: {problem}. "
            "Set SESSION_ISOLATION=none to run browsers without it (a session's client can then reach "
            "the service's files).",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return settings
