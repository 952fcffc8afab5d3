"""Relay one client WebSocket to one browser DevTools WebSocket, message for message, byte for byte.

The relay does not speak CDP. It moves each message unchanged (text stays text, binary stays binary),
reads the next message only after the previous one was handed to the other side (back pressure, no
queue of its own), and looks at client messages only for the one command it must notice:
`Browser.close`.

The client side is a Starlette `WebSocket` that the route has authenticated but NOT accepted: the relay
connects to the browser first and accepts only then, so a client that sees the upgrade succeed is
really attached. (A socket the caller already accepted is used as it is.)

What the service must give uvicorn for the client side (the relay cannot set it, uvicorn reads frames
before the relay sees them):

    uvicorn.Config(..., ws="websockets-sansio", ws_max_size=CLIENT_MAX_MESSAGE_BYTES,
                   ws_per_message_deflate=False)

- `ws_max_size`: uvicorn's default (16 MiB) would cut off a client sending a large command (a
  `Fetch.fulfillRequest` body, a big `Runtime.evaluate` script) that Chromium itself accepts.
- `ws="websockets-sansio"` (uvicorn >= 0.35; what "auto" picks there when `websockets` is installed):
  it stops reading the client socket after each message until the relay takes it, which is the client
  half of the back pressure. Without the `websockets` package uvicorn has no WebSocket support at all.
- `ws_per_message_deflate=False`: Playwright and Puppeteer never offer compression, but a client that
  does (Python's websockets, by default) would have the server deflate every 30 MB screenshot in the
  event loop, stalling every other session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from websockets.asyncio.client import ClientConnection, connect, unix_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

logger = logging.getLogger(__name__)

Direction = Literal["to_browser", "to_client"]
ActivityCallback = Callable[[Direction], None]
BrowserCloseCallback = Callable[[], None]

# Above Chromium's own limit for what it accepts from a DevTools client (kReceiveBufferSizeForDevTools,
# 100 MB, in devtools_http_handler.cc), so the relay never refuses a message the browser would take.
CLIENT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

OPEN_TIMEOUT = 5.0  # seconds to reach the browser's endpoint before the client is told it is unreachable
# Closing must fit in a session's 2 s teardown; the browser answers a close frame at once, and a client
# that stopped reading (its socket buffer full) is given up on rather than waited for.
CLOSE_TIMEOUT = 1.0

NORMAL_CLOSURE = 1000
INTERNAL_ERROR = 1011

# Every CDP command carries its method as a JSON string token; inside any other string the quotes would
# be escaped (\"Browser.close\"), so this substring is absent from nearly every message and a C-speed
# `in` rules them out. Only a hit is parsed, to tell the command from a parameter that equals the name.
_BROWSER_CLOSE_TEXT = '"Browser.close"'
_BROWSER_CLOSE_BYTES = _BROWSER_CLOSE_TEXT.encode()
# Likewise for the one kind of command the relay rewrites (SPEC §11): where downloads go.
_DOWNLOAD_BEHAVIOR_TEXT = "etDownloadBehavior"
_DOWNLOAD_BEHAVIOR_BYTES = _DOWNLOAD_BEHAVIOR_TEXT.encode()
_DOWNLOAD_COMMANDS = frozenset({"Browser.setDownloadBehavior", "Page.setDownloadBehavior"})


class RelayEnd:
    """Why a relay ended."""

    CLIENT_LEFT = "client_left"  # the client disconnected; the browser keeps running
    BROWSER_LEFT = "browser_left"  # the browser closed the DevTools connection (it exited, or Browser.close)
    CLOSED = "closed"  # `close()` from outside: the session ended
    UNREACHABLE = "unreachable"  # the browser's endpoint could not be reached
    ERROR = "error"  # a bug; logged with its traceback


# What the client is told when the relay ends for each reason (it is gone when it left itself). The
# browser going away is a normal end too: SPEC 8 wants a normal close frame whenever the session ends.
_CLIENT_CLOSE: dict[str, tuple[int, str]] = {
    RelayEnd.CLOSED: (NORMAL_CLOSURE, "session ended"),
    RelayEnd.BROWSER_LEFT: (NORMAL_CLOSURE, "browser closed"),
    RelayEnd.ERROR: (INTERNAL_ERROR, "relay error"),
}


def is_browser_close(message: str | bytes) -> bool:
    """True for a `Browser.close` command; cheap for every other message."""
    hit = _BROWSER_CLOSE_TEXT in message if isinstance(message, str) else _BROWSER_CLOSE_BYTES in message
    if not hit:
        return False
    try:
        command = json.loads(message)
    except ValueError:
        return False
    return isinstance(command, dict) and command.get("method") == "Browser.close"


def redirect_downloads(message: str | bytes, download_path: str) -> str | bytes:
    """A `*.setDownloadBehavior` command with its `downloadPath` set to the session's own folder (and
    files kept under the names pages give them).

    Playwright's `connect_over_cdp` names a folder of the client's machine; any client may name any
    path. Downloads are the session's, so they land in its folder whatever was asked. Every other
    message is returned as it is (the same object).
    """
    hit = (
        _DOWNLOAD_BEHAVIOR_TEXT in message
        if isinstance(message, str)
        else _DOWNLOAD_BEHAVIOR_BYTES in message
    )
    if not hit:
        return message
    try:
        command = json.loads(message)
    except ValueError:
        return message
    if not isinstance(command, dict) or command.get("method") not in _DOWNLOAD_COMMANDS:
        return message
    params = command.get("params")
    if not isinstance(params, dict) or params.get("behavior") not in ("allow", "allowAndName"):
        return message
    params["downloadPath"] = download_path
    # By the page's own name, not a GUID: the files are listed to people (GET …/downloads), and the
    # client's own copy of a GUID-named file is on a machine the browser never reaches anyway.
    params["behavior"] = "allow"
    text = json.dumps(command, separators=(",", ":"))
    return text if isinstance(message, str) else text.encode()


def _ignore_activity(direction: Direction) -> None:
    pass


class CdpRelay:
    """One client, one upstream DevTools connection of its own. `run()` once; `close()` from anywhere."""

    def __init__(
        self,
        client: WebSocket,
        upstream_url: str,
        *,
        on_activity: ActivityCallback | None = None,
        on_browser_close: BrowserCloseCallback | None = None,
        open_timeout: float = OPEN_TIMEOUT,
        upstream_headers: Mapping[str, str] | None = None,
        upstream_socket: Path | None = None,
        download_path: str | None = None,
    ) -> None:
        self._client = client
        self._upstream_url = upstream_url
        # A sandboxed browser's DevTools: a unix socket only the service can open.
        self._upstream_socket = upstream_socket
        self._download_path = download_path
        # For an upstream that is another instance's /cdp (cluster mode): the client's credentials.
        self._upstream_headers = upstream_headers
        # Called for every message in either direction, in the relay's task: keep it to a timestamp.
        self._on_activity = on_activity or _ignore_activity
        # Called before a client's Browser.close is forwarded (the command still goes to the browser).
        self._on_browser_close = on_browser_close
        self._open_timeout = open_timeout
        self._stop = asyncio.Event()
        self._running = False
        self._finished = asyncio.Event()
        self.end: str | None = None

    async def run(self) -> str:
        """Relay until either side ends or `close()` is called; returns a `RelayEnd` value."""
        if self._running or self._finished.is_set():
            raise RuntimeError("a CdpRelay runs once")
        self._running = True
        try:
            self.end = await self._run()
        except Exception:
            logger.exception("cdp.relay_failed")
            self.end = RelayEnd.ERROR
            await self._close_client(INTERNAL_ERROR, "relay error")
        finally:
            self._finished.set()
        logger.info("cdp.relay_closed end=%s", self.end)
        return self.end

    async def close(self) -> None:
        """End the relay: the client gets a normal close frame (1000), the upstream connection is closed.

        Idempotent. Returns once the relay has finished (within about CLOSE_TIMEOUT). Called
        before `run()`, it makes `run()` close the client at once without reaching the browser.
        """
        self._stop.set()
        if self._running:
            await self._finished.wait()

    async def _run(self) -> str:
        if self._stop.is_set():
            await self._close_client(NORMAL_CLOSURE, "session ended")
            return RelayEnd.CLOSED
        try:
            upstream = await self._connect_upstream(
                additional_headers=self._upstream_headers,
                # websockets' 1 MiB default would cut screenshots and page content; Chromium sets the limit.
                max_size=None,
                # Pause reading the browser's socket as soon as one message waits for the client.
                max_queue=1,
                # Chromium does not do permessage-deflate; offering it only costs a header.
                compression=None,
                # The endpoint is on 127.0.0.1: never route it through HTTP(S)_PROXY from the environment.
                proxy=None,
                # Chromium answers no ping while it parses a large command (a 40 MiB one outlasted the
                # 20 s default ping timeout), and a dead browser closes its socket anyway.
                ping_interval=None,
                open_timeout=self._open_timeout,
                close_timeout=CLOSE_TIMEOUT,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            logger.warning("cdp.upstream_unreachable error=%s", type(exc).__name__)
            await self._close_client(INTERNAL_ERROR, "browser DevTools endpoint unreachable")
            return RelayEnd.UNREACHABLE

        end = RelayEnd.ERROR
        try:
            if self._client.application_state == WebSocketState.CONNECTING:
                try:
                    await self._client.accept()
                except OSError:  # uvicorn's ClientDisconnected: the client left while we connected
                    end = RelayEnd.CLIENT_LEFT
                    return end
            end = await self._pump(upstream)
            return end
        finally:
            # Only this relay's own DevTools connection closes: the browser and other clients are
            # untouched. Both sides at once, so a slow one does not delay the other past a session's
            # teardown budget.
            closing = [upstream.close()]
            if end in _CLIENT_CLOSE:
                closing.append(self._close_client(*_CLIENT_CLOSE[end]))
            await asyncio.gather(*closing)

    def _connect_upstream(self, **options: object) -> connect:
        if self._upstream_socket is None:
            return connect(self._upstream_url, **options)
        return unix_connect(str(self._upstream_socket), self._upstream_url, **options)

    async def _pump(self, upstream: ClientConnection) -> str:
        to_browser = asyncio.create_task(self._client_to_browser(upstream))
        to_client = asyncio.create_task(self._browser_to_client(upstream))
        stopped = asyncio.create_task(self._stop.wait())
        tasks = (to_browser, to_client, stopped)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # Both directions stop before either socket is closed, so no send races the close frame.
            await asyncio.gather(*tasks, return_exceptions=True)
        if stopped in done:
            return RelayEnd.CLOSED
        # A direction that ended with a bug re-raises here and is logged by `run()`.
        return (to_browser if to_browser in done else to_client).result()

    async def _client_to_browser(self, upstream: ClientConnection) -> str:
        while True:
            message = await self._client.receive()
            if message["type"] == "websocket.disconnect":
                return RelayEnd.CLIENT_LEFT
            data: str | bytes = message["text"] if message.get("text") is not None else message["bytes"]
            self._on_activity("to_browser")
            if self._on_browser_close is not None and is_browser_close(data):
                self._on_browser_close()
            if self._download_path is not None:
                data = redirect_downloads(data, self._download_path)
            try:
                # Returns once the frame is in the socket's write buffer below its limit: the next
                # client message is not read before then.
                await upstream.send(data)
            except ConnectionClosed:
                return RelayEnd.BROWSER_LEFT

    async def _browser_to_client(self, upstream: ClientConnection) -> str:
        while True:
            try:
                data = await upstream.recv()
            except ConnectionClosed:
                return RelayEnd.BROWSER_LEFT
            self._on_activity("to_client")
            try:
                if isinstance(data, str):
                    await self._client.send_text(data)
                else:
                    await self._client.send_bytes(data)
            except WebSocketDisconnect:
                return RelayEnd.CLIENT_LEFT

    async def _close_client(self, code: int, reason: str) -> None:
        if self._client.client_state == WebSocketState.DISCONNECTED:
            return
        if self._client.application_state == WebSocketState.DISCONNECTED:
            return
        # Accepting first turns "unreachable" into a close code the client can read, instead of a bare
        # HTTP 403 from refusing the upgrade.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if self._client.application_state == WebSocketState.CONNECTING:
                    await self._client.accept()
                await self._client.close(code, reason)


class SessionClient(Protocol):
    """A client's connection to a session: a CDP relay, or a person's live view (live_view.py)."""

    async def run(self) -> str:
        """Serve the client until it leaves or `close()` is called; returns why it ended."""
        ...

    async def close(self) -> None:
        """End it with a normal close frame; idempotent; before `run()`, `run()` closes at once."""
        ...


class RelayHub:
    """The client connections of one session: CDP relays (each on its own upstream connection) and
    live views, counted together against MAX_RELAYS_PER_SESSION and closed together when it ends."""

    def __init__(self) -> None:
        self._clients: set[SessionClient] = set()
        self._closed = False

    @property
    def open_count(self) -> int:
        """CDP relays open."""
        return sum(1 for client in self._clients if isinstance(client, CdpRelay))

    @property
    def connection_count(self) -> int:
        """Every client connection, CDP relays and live views: what MAX_RELAYS_PER_SESSION limits."""
        return len(self._clients)

    async def relay(
        self,
        client: WebSocket,
        upstream_url: str,
        *,
        on_activity: ActivityCallback | None = None,
        on_browser_close: BrowserCloseCallback | None = None,
        upstream_headers: Mapping[str, str] | None = None,
        upstream_socket: Path | None = None,
        download_path: str | None = None,
    ) -> str:
        """Run a relay for this client until it ends; returns its `RelayEnd` value.

        After `close_all()` the client is closed at once with 1000: the session it asked for has ended.
        """
        relay = CdpRelay(
            client,
            upstream_url,
            on_activity=on_activity,
            on_browser_close=on_browser_close,
            upstream_headers=upstream_headers,
            upstream_socket=upstream_socket,
            download_path=download_path,
        )
        return await self.serve(relay)

    async def serve(self, connection: SessionClient) -> str:
        """Run a client's connection until it ends, counted among the session's connections."""
        if self._closed:
            await connection.close()
        self._clients.add(connection)
        try:
            return await connection.run()
        finally:
            self._clients.discard(connection)

    async def close_all(self) -> None:
        """Close every connection (1000 to each client) and refuse new ones; returns when all have ended."""
        self._closed = True
        await asyncio.gather(*(client.close() for client in list(self._clients)))
