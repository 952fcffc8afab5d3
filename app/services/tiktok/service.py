"""TikTok sessions: open (copy, launch, prove the login), keep a registry, end them on every path."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from app.core.config import Settings
from app.core.errors import (
    BrowserLaunchFailed,
    LoginNotProven,
    ServiceError,
    SessionNotFound,
    SessionStartTimeout,
    TooManySessions,
)
from app.core.metrics import Metrics
from app.core.redaction import redact_proxy
from app.schemas.tiktok import SessionMode
from app.services.cluster.registry import ClusterRegistry, MasterLease, SessionRecord
from app.services.common.browser import find_browser
from app.services.common.generation import bump_generation, read_generation
from app.services.common.profile_lock import HeldLock, ProfileLock
from app.services.common.sandbox import Isolation
from app.services.common.user_data import UserDataLayout, clone_master, sweep_orphan_clones
from app.services.tiktok.browser_factory import BrowserFactory
from app.services.tiktok.session import LiveSession
from app.services.tiktok.utils.login_detection import DetectionResult, check_stored_cookies, reprove
from app.services.tiktok.warm_pool import WarmPool

logger = logging.getLogger(__name__)


class _MasterHold:
    """Write mode keeps the master's exclusive lock, instead of a clone, for the session's life."""

    def __init__(self, held: HeldLock, layout: UserDataLayout, lease: MasterLease | None = None):
        self._held = held
        self._layout = layout
        self._lease = lease  # cluster mode: the account's lock across instances

    async def remove(self) -> None:
        if not self._held.held:
            return
        try:
            # The session may have changed the master: warm sessions cloned before are now stale. Bumped
            # while the lock is still held, so no reader copies the new master under the old marker.
            await asyncio.to_thread(bump_generation, self._layout)
        finally:
            self._held.release()
            if self._lease is not None:
                await self._lease.release()


def _start_failure(error: BaseException) -> str:
    """A failure the service did not foresee, said in words a client can act on, without paths or traces."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on device for the profile copy (USER_DATA_DIR); free space or move it"
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: the service cannot read the master profile or write USER_DATA_DIR"
    if isinstance(error, OSError) and error.errno == errno.EROFS:
        return "USER_DATA_DIR is on a read-only file system"
    return "the session could not be started; see the service log"


def _ms_since(mark: float) -> float:
    return round((time.perf_counter() - mark) * 1000, 1)


class TiktokService:
    def __init__(
        self, settings: Settings, metrics: Metrics | None = None, cluster: ClusterRegistry | None = None
    ):
        self.settings = settings
        # Cluster mode (REDIS_URL): the registry shared with the other instances; None for a single one.
        self.cluster = cluster
        self.metrics = metrics or Metrics()
        self.layout = UserDataLayout(settings.USER_DATA_DIR)
        self.lock = ProfileLock(self.layout.lock_file)
        self.browsers = BrowserFactory(settings)
        self._sessions: dict[str, LiveSession] = {}
        self._starting = 0
        # Write mode runs on the master itself: there is nothing to hold ready.
        self.metrics.watch(self)
        self.warm = WarmPool(
            size=0 if settings.WRITE_MODE else settings.WARM_SESSIONS,
            recheck_interval=settings.WARM_RECHECK_INTERVAL,
            open_session=self._open_new,
            reprove=self._reprove,
            current_generation=self.generation,
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.layout.ensure)
        removed = await sweep_orphan_clones(self.layout)
        if removed:
            logger.info("clones.swept", extra={"count": len(removed)})
        self.browsers.prepare()
        await self.browsers.start()
        if self.browsers.isolation is Isolation.NONE:
            logger.warning(
                "isolation.off SESSION_ISOLATION=none: browsers run without a sandbox; a session's client "
                "can read and write the service's files"
            )
        self.warm.start()
        proxy = self.settings.PROXY.get_secret_value() if self.settings.PROXY else None
        logger.info(
            "service.started",
            extra={
                "user_data": str(self.settings.USER_DATA_DIR),
                "tiktok_url": self.settings.TIKTOK_URL,
                "proxy": redact_proxy(proxy),
                "write_mode": self.settings.WRITE_MODE,
                "isolation": self.browsers.isolation.value,
            },
        )

    async def end_all_sessions(self) -> None:
        """Close every session (waiting clients answered, relays closed with 1000). Idempotent."""
        await self.warm.aclose()
        await asyncio.gather(*(s.close("shutdown") for s in list(self._sessions.values())))

    async def shutdown(self) -> None:
        await self.end_all_sessions()
        await self.browsers.aclose()

    async def readiness(self) -> dict[str, str]:
        """What GET /ready reports: each part the service needs, "ok" or why not."""
        checks = await asyncio.to_thread(self._readiness_sync)
        if self.cluster is not None:
            checks["registry"] = await self.cluster.check()
        return checks

    def _readiness_sync(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        for name, check in (
            ("browser", lambda: find_browser(self.settings.BROWSER_EXECUTABLE)),
            ("master", self.layout.require_master),
            ("clones", self._clones_writable),
        ):
            try:
                check()
                checks[name] = "ok"
            except ServiceError as error:
                checks[name] = str(error.details)
            except OSError as error:
                checks[name] = f"{type(error).__name__}: {error.strerror}"
        return checks

    def _clones_writable(self) -> None:
        if not os.access(self.layout.clones, os.W_OK | os.X_OK):
            raise OSError(errno.EACCES, f"{self.layout.clones} is not writable")

    async def generation(self) -> str | None:
        """The master's generation marker (changes whenever the master changes)."""
        return await asyncio.to_thread(read_generation, self.layout)

    def find(self, session_id: str) -> LiveSession | None:
        session = self._sessions.get(session_id)
        return session if session is not None and session.state == "live" else None

    def get(self, session_id: str) -> LiveSession:
        session = self.find(session_id)
        if session is None:
            raise SessionNotFound(f"no live session with id {session_id}")
        return session

    async def find_anywhere(
        self, session_id: str, here_only: bool = False
    ) -> LiveSession | SessionRecord | None:
        """This instance's live session, else (cluster mode) the record of the instance that owns it.

        `here_only`: a request another instance forwarded here is answered here, never forwarded on.
        """
        session = self.find(session_id)
        if session is not None or self.cluster is None or here_only:
            return session
        record = await self.cluster.lookup(session_id)
        # A record of this very instance names a session that is ending: there is no one to forward to.
        return None if record is None or record.owner_id == self.cluster.instance_id else record

    async def locate(self, session_id: str, here_only: bool = False) -> LiveSession | SessionRecord:
        found = await self.find_anywhere(session_id, here_only)
        if found is None:
            raise SessionNotFound(f"no live session with id {session_id}")
        return found

    async def everywhere(self) -> list[LiveSession | SessionRecord]:
        """The live sessions of this instance and, in cluster mode, of every other one, oldest first."""
        if self.cluster is None:
            return list(self.live())
        others = [r for r in await self.cluster.records() if r.owner_id != self.cluster.instance_id]
        return sorted([*self.live(), *others], key=lambda session: session.info().created_at)

    @property
    def starting(self) -> int:
        """Sessions being opened right now (they count against MAX_SESSIONS too)."""
        return self._starting

    def live(self) -> list[LiveSession]:
        return [s for s in self._sessions.values() if s.state == "live"]

    def live_by_mode(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for session in self.live():
            counts[session.mode.value] = counts.get(session.mode.value, 0) + 1
        return counts

    def warm_ready(self) -> int:
        return self.warm.ready_count

    def relays_open(self) -> int:
        return sum(session.relays.open_count for session in self.live())

    def isolation(self) -> str:
        return self.browsers.isolation.value

    def egress_refused(self) -> int:
        return self.browsers.egress_refused

    async def end(self, session_id: str, reason: str = "deleted") -> None:
        await self.get(session_id).close(reason)

    async def create(self) -> LiveSession:
        started = time.perf_counter()
        try:
            self._reserve_slot()
            try:
                async with self._cluster_slot() as reservation:
                    warm = await self.warm.take()
                    session = warm or await self._open_new()
            finally:
                self._starting -= 1
        except ServiceError as error:
            self.metrics.sessions_created.labels(error.code).inc()
            raise
        self.metrics.sessions_created.labels("ok").inc()
        self.metrics.creation_seconds.labels("warm" if warm else "cold").observe(
            time.perf_counter() - started
        )
        self._sessions[session.id] = session
        session.go_live(self._forget)
        if self.cluster is not None and reservation is not None:
            await self.cluster.publish(session, reservation)
        login = session.login
        assert login is not None
        logger.info(
            "session.created",
            extra={
                "session_id": session.id,
                "mode": session.mode.value,
                "login_method": login.method,
                "detect_ms": login.elapsed_ms,
                "phases_ms": session.phase_ms,
            },
        )
        return session

    async def _open_new(self) -> LiveSession:
        """Clone, launch and prove a session; on any failure nothing of it is left."""
        mode = SessionMode.WRITE if self.settings.WRITE_MODE else SessionMode.READ
        session = LiveSession(str(uuid.uuid4()), mode, self.settings)
        try:
            await self._open(session)
        except BaseException as error:
            await session.close("start_failed")
            if isinstance(error, asyncio.CancelledError):
                raise
            if not isinstance(error, ServiceError):
                logger.exception("session.start_failed", extra={"session_id": session.id})
                error = ServiceError(_start_failure(error))
            logger.info("session.start_failed", extra={"session_id": session.id, "code": error.code})
            raise error from None
        return session

    async def _reprove(self, session: LiveSession) -> DetectionResult:
        executor = session.executor
        assert executor is not None
        settings = self.settings
        return await reprove(
            executor.context,
            executor.page,
            settings.detection,
            settings.TIKTOK_URL,
            settings.LOGIN_DETECTION_TIMEOUT,
        )

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

    @contextlib.asynccontextmanager
    async def _cluster_slot(self) -> AsyncIterator[str | None]:
        """CLUSTER_MAX_SESSIONS: a slot counted in Redis, given back when the session does not start."""
        if self.cluster is None:
            yield None
            return
        reservation = await self.cluster.reserve()
        try:
            yield reservation
        except BaseException:
            await self.cluster.release(reservation)
            raise

    def _retry_after(self) -> int:
        now = datetime.now(UTC)
        remaining = [(s.expires_at - now).total_seconds() for s in self._sessions.values()]
        return max(1, math.ceil(min(remaining))) if remaining else 5

    async def _forget(self, session: LiveSession) -> None:
        self._sessions.pop(session.id, None)
        self.metrics.session_ends.labels(session.end_reason or "unknown").inc()
        if self.cluster is not None:
            await self.cluster.withdraw(session.id)

    async def _hold_profile(self, session: LiveSession) -> Path:
        """The profile the session's browser runs on: a fresh clone, or (write mode) the master itself."""
        # Waiting for the profile lock is not part of the start budget: that wait is LOCK_TIMEOUT's.
        if session.mode is SessionMode.WRITE:
            master = await asyncio.to_thread(self.layout.require_master)
            waited_from = time.monotonic()
            lease = await self._lease_master(session)
            try:
                left = max(0.0, self.settings.LOCK_TIMEOUT - (time.monotonic() - waited_from))
                held = await self.lock.exclusive(left)
            except BaseException:
                if lease is not None:
                    await lease.release()
                raise
            session.profile = _MasterHold(held, self.layout, lease)
            return master
        clone = await clone_master(self.layout, self.lock, self.settings.LOCK_TIMEOUT, session.id)
        self.metrics.clone_bytes.inc(clone.bytes_copied)
        self.metrics.clone_seconds.observe(clone.copy_seconds)
        session.profile = clone
        return clone.path

    async def _lease_master(self, session: LiveSession) -> MasterLease | None:
        """Cluster mode: no two instances write the account at once (their masters are copies of it)."""
        if self.cluster is None:
            return None
        return await self.cluster.lease_master(
            self.settings.LOCK_TIMEOUT, on_lost=lambda: session.close_soon("lock_lost")
        )

    async def _open(self, session: LiveSession) -> None:
        settings = self.settings
        phases = session.phase_ms
        mark = time.perf_counter()
        profile_dir = await self._hold_profile(session)
        phases["clone"], mark = _ms_since(mark), time.perf_counter()
        stored = await check_stored_cookies(profile_dir, settings.tiktok_host, settings.detection)
        if stored is not None:
            session.login = stored
            self._check_login(stored)
        try:
            async with asyncio.timeout(settings.SESSION_START_TIMEOUT):
                executor = await self.browsers.executor_for(profile_dir)
                session.executor = executor
                try:
                    await executor.start()
                except Exception as error:
                    logger.error(
                        "browser.launch_failed",
                        extra={"session_id": session.id, "error": type(error).__name__},
                    )
                    raise BrowserLaunchFailed("Chromium failed to start; see the service log") from None
                phases["launch"], mark = _ms_since(mark), time.perf_counter()
                session.login = await executor.detect_login(
                    settings.detection, settings.TIKTOK_URL, settings.LOGIN_DETECTION_TIMEOUT
                )
                phases["detect"] = _ms_since(mark)
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
        self._check_login(session.login, executor.network_failure)

    def _check_login(self, login: DetectionResult, network_failure: str | None = None) -> None:
        self.metrics.login_decisions.labels(login.method, login.state.value).inc()
        self.metrics.detection_seconds.observe(login.elapsed_ms / 1000)
        if login.proven:
            return
        timeout = self.settings.LOGIN_DETECTION_TIMEOUT
        if login.state == "uncertain" and not login.page_loaded:
            reason = login.navigation_error or f"TikTok did not load within {timeout:g} s"
            if network_failure:
                reason += f" ({network_failure})"
            raise SessionStartTimeout(
                f"TikTok page did not load: {reason}", method=login.method, timeout=timeout
            )
        raise LoginNotProven(login, timeout)
