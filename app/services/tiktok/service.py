"""TikTok sessions: open (copy, launch, prove the login), keep a registry, end them on every path."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from app.core.config import Settings
from app.core.errors import (
    BrowserLaunchFailed,
    MasterProfileMissing,
    NotLoggedIn,
    ServiceError,
    SessionNotFound,
    SessionStartTimeout,
    TooManySessions,
)
from app.core.redaction import redact_proxy
from app.schemas.tiktok import SessionMode
from app.services.common.browser import BrowserOptions, browser_version, chromium_flags, find_browser
from app.services.common.fingerprint import FingerprintSource
from app.services.common.profile_lock import HeldLock, ProfileLock
from app.services.common.user_data import UserDataLayout, clone_master, sweep_orphan_clones
from app.services.tiktok.executor import TiktokExecutor
from app.services.tiktok.session import LiveSession
from app.services.tiktok.utils.cookie_store import read_cookie_rows, stored_cookie_signal
from app.services.tiktok.utils.login_detection import DetectionConfig, DetectionResult
from app.services.tiktok.utils.login_signals import LoginState, Verdict

logger = logging.getLogger(__name__)

PROFILE_HOWTO = (
    "No master profile yet. Create one with `python -m app.cli profile login` (log in by hand in the "
    "window that opens) or `python -m app.cli profile import-cookies FILE`."
)


class _MasterHold:
    """Write mode keeps the master's exclusive lock, instead of a clone, for the session's life."""

    def __init__(self, held: HeldLock):
        self._held = held

    async def remove(self) -> None:
        self._held.release()


class TiktokService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.layout = UserDataLayout(settings.USER_DATA_DIR)
        self.lock = ProfileLock(self.layout.lock_file)
        self.detection = DetectionConfig.from_settings(settings)
        self.fingerprints = FingerprintSource()
        self._sessions: dict[str, LiveSession] = {}
        self._starting = 0

    async def start(self) -> None:
        await asyncio.to_thread(self.layout.ensure)
        removed = await sweep_orphan_clones(self.layout)
        if removed:
            logger.info("clones.swept count=%d", len(removed))
        self.fingerprints.prepare()
        proxy = self.settings.PROXY.get_secret_value() if self.settings.PROXY else None
        logger.info(
            "service.started user_data=%s tiktok_url=%s proxy=%s write_mode=%s",
            self.settings.USER_DATA_DIR,
            self.settings.TIKTOK_URL,
            redact_proxy(proxy),
            self.settings.WRITE_MODE,
        )

    async def shutdown(self) -> None:
        await asyncio.gather(*(s.close("shutdown") for s in list(self._sessions.values())))
        await self.fingerprints.aclose()

    def get(self, session_id: str) -> LiveSession:
        session = self._sessions.get(session_id)
        if session is None or session.state == "closing":
            raise SessionNotFound(f"no live session with id {session_id}")
        return session

    @property
    def starting(self) -> int:
        """Sessions being opened right now (they count against MAX_SESSIONS too)."""
        return self._starting

    def live(self) -> list[LiveSession]:
        return [s for s in self._sessions.values() if s.state == "live"]

    async def end(self, session_id: str, reason: str = "deleted") -> None:
        await self.get(session_id).close(reason)

    async def create(self) -> LiveSession:
        self._reserve_slot()
        mode = SessionMode.WRITE if self.settings.WRITE_MODE else SessionMode.READ
        session = LiveSession(str(uuid.uuid4()), mode, self.settings.MAX_SESSION_DURATION)
        try:
            await self._open(session)
        except BaseException as error:
            await session.close("start_failed")
            if isinstance(error, ServiceError | asyncio.CancelledError):
                raise
            logger.exception("session.start_failed id=%s", session.id)
            raise ServiceError("the session could not be started; see the service log") from None
        finally:
            self._starting -= 1
        self._sessions[session.id] = session
        session.go_live(self._forget)
        login = session.login
        assert login is not None
        logger.info(
            "session.created id=%s mode=%s login_method=%s detect_ms=%d",
            session.id,
            mode.value,
            login.method,
            login.elapsed_ms,
        )
        return session

    def _reserve_slot(self) -> None:
        # No await between the check and the increment: concurrent requests cannot both pass.
        if len(self._sessions) + self._starting >= self.settings.MAX_SESSIONS:
            raise TooManySessions(
                f"{self.settings.MAX_SESSIONS} sessions are live or starting (MAX_SESSIONS); "
                "end one with DELETE /tiktok/session/{id} or retry later",
                retry_after=self._retry_after(),
                limit=self.settings.MAX_SESSIONS,
            )
        self._starting += 1

    def _retry_after(self) -> int:
        now = datetime.now(UTC)
        remaining = [(s.expires_at - now).total_seconds() for s in self._sessions.values()]
        return max(1, math.ceil(min(remaining))) if remaining else 5

    def _forget(self, session: LiveSession) -> None:
        self._sessions.pop(session.id, None)

    async def _open(self, session: LiveSession) -> None:
        settings = self.settings
        # Waiting for the profile lock is not part of the start budget: that wait is LOCK_TIMEOUT's.
        if session.mode is SessionMode.WRITE:
            if not (self.layout.master / "Default").is_dir():
                raise MasterProfileMissing(PROFILE_HOWTO, state="logged_out", method="no_master")
            held = await self.lock.exclusive(settings.LOCK_TIMEOUT)
            session.profile = _MasterHold(held)
            profile_dir = self.layout.master
        else:
            try:
                clone = await clone_master(self.layout, self.lock, settings.LOCK_TIMEOUT, session.id)
            except MasterProfileMissing as missing:
                raise MasterProfileMissing(missing.details, state="logged_out", method="no_master") from None
            session.profile = clone
            profile_dir = clone.path

        stored = await self._stored_cookies(profile_dir)
        if stored is not None:
            session.login = stored
            self._check_login(stored)

        try:
            async with asyncio.timeout(settings.SESSION_START_TIMEOUT):
                options = await self._browser_options()
                identity = await self.fingerprints.take(await browser_version(options.executable))
                executor = TiktokExecutor(profile_dir, options, identity)
                session.executor = executor
                try:
                    await executor.start()
                except Exception as error:
                    logger.error("browser.launch_failed id=%s error=%s", session.id, type(error).__name__)
                    raise BrowserLaunchFailed("Chromium failed to start; see the service log") from None
                session.login = await executor.detect_login(self.detection)
        except TimeoutError:
            raise SessionStartTimeout(
                "the browser did not start, load TikTok and decide within "
                f"{settings.SESSION_START_TIMEOUT:g} s",
                timeout=settings.SESSION_START_TIMEOUT,
            ) from None
        if executor.ended_reason is not None:
            # No await between this check and go_live(): a later end is caught by the session itself.
            raise BrowserLaunchFailed(
                f"the browser ended while the session was starting ({executor.ended_reason})"
            )
        self._check_login(session.login)

    async def _stored_cookies(self, profile_dir: Path) -> DetectionResult | None:
        """No session cookie stored at all: logged out, known before any browser starts."""
        started = time.monotonic()
        rows = await asyncio.to_thread(read_cookie_rows, profile_dir)
        signal = stored_cookie_signal(
            rows, self.settings.tiktok_host, self.settings.TIKTOK_SESSION_COOKIES, time.time()
        )
        if signal.verdict is not Verdict.LOGGED_OUT:
            return None
        return DetectionResult(
            state=LoginState.LOGGED_OUT,
            method=signal.source.value,
            elapsed_ms=int((time.monotonic() - started) * 1000),
            evidence=(f"{signal.source.value}={signal.verdict.value}: {signal.evidence}",),
            page_loaded=False,
        )

    async def _browser_options(self) -> BrowserOptions:
        executable = await asyncio.to_thread(find_browser, self.settings.BROWSER_EXECUTABLE)
        return BrowserOptions(
            executable=executable,
            headless=self.settings.HEADLESS,
            proxy=self.settings.PROXY,
            flags=chromium_flags(),
        )

    def _check_login(self, login: DetectionResult) -> None:
        if login.state is LoginState.LOGGED_IN:
            return
        timeout = self.settings.LOGIN_DETECTION_TIMEOUT
        if login.state is LoginState.UNCERTAIN and not login.page_loaded:
            reason = login.navigation_error or f"TikTok did not load within {timeout:g} s"
            raise SessionStartTimeout(
                f"TikTok page did not load: {reason}", method=login.method, timeout=timeout
            )
        if login.state is LoginState.LOGGED_OUT:
            details = (
                f"the profile copy is not logged in to TikTok ({login.deciding_evidence()}); "
                "log the master in again"
            )
        else:
            details = "login could not be confirmed (wall, conflicting or missing signals)"
        raise NotLoggedIn(
            f"{details} [{login.method}]",
            state=login.state.value,
            method=login.method,
            timeout=timeout,
            retry_count=login.refreshes,
            elapsed_ms=login.elapsed_ms,
        )
