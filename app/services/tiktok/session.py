"""A live session: one object that owns its browser, its profile copy (or master lock) and its timers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from starlette.websockets import WebSocket

from app.core.config import Settings
from app.core.errors import FileNotInSession, SessionNotFound, TooManyRelays
from app.schemas.live_view import LoginState, ViewState
from app.schemas.tiktok import LoginInfo, SessionInfo, SessionMode, TikTokLoginState
from app.services.common.access import Scope, SessionTokens
from app.services.common.cdp_relay import RelayHub
from app.services.common.executor import AbstractBrowsingExecutor, BrowserEnd
from app.services.common.files import DownloadInfo, is_plain_name, list_downloads, receive_file
from app.services.common.live_view import LiveView
from app.services.common.sandbox import SessionBox
from app.services.tiktok.login.login_detection import DetectionResult

logger = logging.getLogger(__name__)

SCREENSHOT_TIMEOUT_MS = 10_000


class SessionState(StrEnum):
    STARTING = "starting"
    LIVE = "live"
    CLOSING = "closing"


class EndReason(StrEnum):
    """Why a session ended: logged (`session.closed reason=…`), counted, and in wait mode's answer."""

    DELETED = "deleted"  # DELETE /tiktok/session/{id}
    MAX_DURATION = "max_duration"
    IDLE = "idle"  # SESSION_IDLE_TIMEOUT without activity
    CLIENT_CLOSED = "client_closed"  # a remote client sent Browser.close
    CLIENT_GONE = "client_gone"  # the POST's client hung up (before the answer, or in wait mode)
    BROWSER_CLOSED = BrowserEnd.BROWSER_CLOSED.value  # crashed, killed, or its window closed
    LAST_PAGE_CLOSED = BrowserEnd.LAST_PAGE_CLOSED.value
    DRIVER_LOST = BrowserEnd.DRIVER_LOST.value
    LOCK_LOST = "lock_lost"  # cluster mode: the account's write lock could not be kept
    SHUTDOWN = "shutdown"
    START_FAILED = "start_failed"
    LOGIN_DONE = "login_done"  # a remote login's Done
    CHECKED = "checked"  # a throw-away session that only proved a login (profile status, after login)


class SessionPurpose(StrEnum):
    CLIENT = "client"  # handed out to a client (POST /tiktok/session)
    LOGIN = "login"  # a person logs the account in through the live view (SPEC §13)


class ProfileHold(Protocol):
    """What keeps the session's profile: a clone to delete, or the master's exclusive lock to release."""

    async def remove(self) -> None: ...


class LiveSession:
    def __init__(self, session_id: str, mode: SessionMode, settings: Settings, account: str = "default"):
        self.id = session_id
        self.mode = mode
        self.account = account
        self.purpose = SessionPurpose.CLIENT
        # Let the session's own routes be opened from a bare URL (control) or watched (view); die with it.
        self.tokens = SessionTokens(view_ttl=settings.MAX_SESSION_DURATION)
        self.max_relays = settings.MAX_RELAYS_PER_SESSION
        self.max_upload_bytes = settings.MAX_UPLOAD_BYTES
        self.created_at = datetime.now(UTC)
        self.expires_at = self.created_at + timedelta(seconds=settings.MAX_SESSION_DURATION)
        self.state = SessionState.STARTING
        self.login: DetectionResult | None = None
        self.executor: AbstractBrowsingExecutor | None = None
        self.profile: ProfileHold | None = None
        self.end_reason: str | None = None
        self.ended = asyncio.Event()
        # How long each step of opening took (clone, launch, detect), for logs and the benchmark.
        self.phase_ms: dict[str, float] = {}
        self.relays = RelayHub()
        # Set when a remote client sends Browser.close, so the browser's end is told apart from a crash.
        self._client_closed_browser = False
        self.max_duration = settings.MAX_SESSION_DURATION
        self.idle_timeout = settings.SESSION_IDLE_TIMEOUT
        self._last_activity = time.monotonic()
        self._timers: list[asyncio.TimerHandle] = []
        self._closing: asyncio.Task[None] | None = None
        self._on_closed: Callable[[LiveSession], Awaitable[None]] | None = None

    @property
    def token(self) -> str:
        """The control token (in `cdp_url`)."""
        return self.tokens.control

    @property
    def view_token(self) -> str:
        """The view-only token of `view_url`."""
        return self.tokens.view.token

    def scope_of(self, token: str | None) -> Scope | None:
        return self.tokens.scope_of(token)

    @property
    def box(self) -> SessionBox:
        box = self.executor.box if self.executor is not None else None
        if box is None:
            raise SessionNotFound(f"session {self.id} has no browser")
        return box

    async def downloads(self) -> list[DownloadInfo]:
        """What the session's pages downloaded (finished files; Chromium's partial ones are left out)."""
        return await asyncio.to_thread(list_downloads, self.box.downloads)

    def download_path(self, name: str) -> Path:
        """The downloaded file `name`; `SessionNotFound`-style 404 for anything else."""
        path = self.box.downloads / name
        if not is_plain_name(name) or not path.is_file() or path.is_symlink():
            raise FileNotInSession(f"session {self.id} has no download named {name!r}")
        return path

    async def store_upload(self, name: str, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
        """Put a file where the browser can upload it; returns its path as the browser sees it and size."""
        box = self.box
        target = box.uploads / name
        size = await receive_file(target, chunks, self.max_upload_bytes)
        return box.browser_path(target), size

    def check_relay_room(self) -> None:
        """MAX_RELAYS_PER_SESSION: refused before the upgrade, so a refused client costs nothing."""
        if self.relays.connection_count >= self.max_relays:
            raise TooManyRelays(
                f"session {self.id} already has {self.max_relays} CDP and view connections "
                "(MAX_RELAYS_PER_SESSION); close one first",
                limit=self.max_relays,
            )

    def go_live(self, on_closed: Callable[[LiveSession], Awaitable[None]]) -> None:
        """Called once the login is proven: from now on the session ends by itself when it must."""
        self.state = SessionState.LIVE
        self._on_closed = on_closed
        loop = asyncio.get_running_loop()
        # The client gets the whole MAX_SESSION_DURATION from hand-out, not minus the start-up time.
        self.expires_at = datetime.now(UTC) + timedelta(seconds=self.max_duration)
        self._timers.append(loop.call_later(self.max_duration, self.close_soon, EndReason.MAX_DURATION))
        self.touch()
        if self.idle_timeout:
            self._timers.append(loop.call_later(self.idle_timeout, self._check_idle))
        if self.executor is not None:
            self.executor.on_end(self._browser_ended)
            if self.executor.ended_reason is not None:
                # Ended between its last check and now (a warm session's browser, say): end at once.
                self._browser_ended(self.executor.ended_reason)

    def _browser_ended(self, reason: str) -> None:
        self.close_soon(EndReason.CLIENT_CLOSED if self._client_closed_browser else reason)

    def _client_sent_browser_close(self) -> None:
        self._client_closed_browser = True

    def _relay_activity(self, _direction: str) -> None:
        self.touch()

    async def attach(self, client: WebSocket) -> None:
        """Relay a remote client to this session's browser until either side leaves or the session ends."""
        executor = self.executor
        endpoint = executor.devtools_url if executor is not None else None
        if executor is None or endpoint is None:
            await client.close(code=1011, reason="the session's browser has no DevTools endpoint")
            return
        box = executor.box
        await self.relays.relay(
            client,
            endpoint,
            on_activity=self._relay_activity,
            on_browser_close=self._client_sent_browser_close,
            upstream_socket=executor.devtools_socket,
            download_path=box.browser_path(box.downloads) if box is not None else None,
        )

    async def watch(self, client: WebSocket, scope: Scope, still_granted: Callable[[], bool]) -> None:
        """A person's live view over `client` (SPEC §13), counted and closed with the CDP relays."""
        await self.relays.serve(LiveView(client, self, scope, still_granted))

    def view_state(self) -> ViewState:
        """The session as a person watching it sees it: state, account, login, time left."""
        info = self.info()
        return ViewState(
            session_id=self.id,
            state=self.state,
            account=info.account,
            login=LoginState(state=info.login.state.value, method=info.login.method),
            expires_at=self.expires_at,
            end_reason=self.end_reason,
        )

    def touch(self) -> None:
        """Activity (CDP traffic, an API call for the session): pushes the idle timeout back. Cheap."""
        self._last_activity = time.monotonic()

    @property
    def idle_expires_at(self) -> datetime | None:
        if not self.idle_timeout:
            return None
        left = self.idle_timeout - (time.monotonic() - self._last_activity)
        return datetime.now(UTC) + timedelta(seconds=max(0.0, left))

    def _check_idle(self) -> None:
        # One timer re-armed for the time left, rather than a timer reset on every CDP frame.
        left = self.idle_timeout - (time.monotonic() - self._last_activity)
        if left <= 0:
            self.close_soon(EndReason.IDLE)
        elif self._closing is None:
            self._timers.append(asyncio.get_running_loop().call_later(left, self._check_idle))

    async def screenshot(self, full_page: bool = False) -> bytes:
        """PNG of the page a person would be looking at: the most recently opened one still open."""
        if self.executor is None or (page := self.executor.active_page()) is None:
            raise SessionNotFound(f"session {self.id} has no open page")
        return await page.screenshot(type="png", full_page=full_page, timeout=SCREENSHOT_TIMEOUT_MS)

    def close_soon(self, reason: str) -> None:
        """For callbacks that cannot await (timers, browser events)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(reason))

    async def close(self, reason: str) -> None:
        """Idempotent; returns when the browser is closed and the profile copy is gone."""
        self.close_soon(reason)
        assert self._closing is not None
        await asyncio.shield(self._closing)

    async def _close(self, reason: str) -> None:
        started = time.monotonic()
        self.state = SessionState.CLOSING
        self.end_reason = reason
        for timer in self._timers:
            timer.cancel()
        try:
            # Every attached client gets a normal close frame before its browser goes away.
            await self.relays.close_all()
            if self.executor is not None:
                await self.executor.close()
        finally:
            if self.profile is not None:
                await self.profile.remove()
            if self._on_closed is not None:
                await self._on_closed(self)
            self.ended.set()
            logger.info(
                "session.closed",
                extra={
                    "session_id": self.id,
                    "account": self.account,
                    "reason": reason,
                    "close_ms": int((time.monotonic() - started) * 1000),
                },
            )

    def info(self) -> SessionInfo:
        login = self.login
        return SessionInfo(
            session_id=self.id,
            state=self.state,
            created_at=self.created_at,
            expires_at=self.expires_at,
            idle_expires_at=self.idle_expires_at,
            login=LoginInfo(
                state=login.state if login else TikTokLoginState.UNCERTAIN,
                method=login.method if login else "pending",
                elapsed_ms=login.elapsed_ms if login else 0,
                verified_at=login.verified_at if login else None,
            ),
            mode=self.mode,
            account=self.account,
        )
