"""A live session: one object that owns its browser, its profile copy (or master lock) and its timers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from app.schemas.tiktok import LoginInfo, SessionInfo, SessionMode, TikTokLoginState
from app.services.common.executor import AbstractBrowsingExecutor
from app.services.tiktok.utils.login_detection import DetectionResult

logger = logging.getLogger(__name__)


class ProfileHold(Protocol):
    """What keeps the session's profile: a clone to delete, or the master's exclusive lock to release."""

    async def remove(self) -> None: ...


class LiveSession:
    def __init__(self, session_id: str, mode: SessionMode, max_duration: float):
        self.id = session_id
        self.mode = mode
        self.created_at = datetime.now(UTC)
        self.expires_at = self.created_at + timedelta(seconds=max_duration)
        self.state = "starting"
        self.login: DetectionResult | None = None
        self.executor: AbstractBrowsingExecutor | None = None
        self.profile: ProfileHold | None = None
        self.end_reason: str | None = None
        self._max_duration = max_duration
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._on_closed: Callable[[LiveSession], None] | None = None

    def go_live(self, on_closed: Callable[[LiveSession], None]) -> None:
        """Called once the login is proven: from now on the session ends by itself when it must."""
        self.state = "live"
        self._on_closed = on_closed
        # The client gets the whole MAX_SESSION_DURATION from hand-out, not minus the start-up time.
        self.expires_at = datetime.now(UTC) + timedelta(seconds=self._max_duration)
        self._expiry = asyncio.get_running_loop().call_later(
            self._max_duration, self.close_soon, "max_duration"
        )
        if self.executor is not None:
            self.executor.on_end(self.close_soon)

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
        self.state = "closing"
        self.end_reason = reason
        if self._expiry is not None:
            self._expiry.cancel()
        try:
            if self.executor is not None:
                await self.executor.close()
        finally:
            if self.profile is not None:
                await self.profile.remove()
            if self._on_closed is not None:
                self._on_closed(self)
            logger.info(
                "session.closed id=%s reason=%s close_ms=%d",
                self.id,
                reason,
                int((time.monotonic() - started) * 1000),
            )

    def info(self) -> SessionInfo:
        login = self.login
        return SessionInfo(
            session_id=self.id,
            state=self.state,
            created_at=self.created_at,
            expires_at=self.expires_at,
            login=LoginInfo(
                state=TikTokLoginState(login.state.value) if login else TikTokLoginState.UNCERTAIN,
                method=login.method if login else "pending",
                elapsed_ms=login.elapsed_ms if login else 0,
            ),
            mode=self.mode,
        )
