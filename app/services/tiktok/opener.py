"""The one way a session opens: hold the account's profile, launch its browser, prove the login.

Used by the service for every POST, by each account's warm pool, and by `profile status`, so all of
them clone, lock, launch and decide exactly alike. On any failure nothing of the session is left (its
browser closed, its clone deleted, its lock released), and a failure the service did not foresee is
said in words a client can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
import uuid
from pathlib import Path
from urllib.parse import urljoin

from app.core.config import Settings
from app.core.errors import (
    BrowserLaunchFailed,
    LoginNotProven,
    MasterProfileMissing,
    ServiceError,
    SessionStartTimeout,
)
from app.core.metrics import Metrics
from app.schemas.tiktok import SessionMode
from app.services.cluster.registry import ClusterRegistry, MasterLease
from app.services.common.generation import bump_generation
from app.services.common.profile_lock import HeldLock
from app.services.common.user_data import UserDataLayout, clone_master
from app.services.tiktok.accounts import Account, AccountBook
from app.services.tiktok.browser_factory import BrowserFactory
from app.services.tiktok.login.login_detection import DetectionResult, LoginProver, check_stored_cookies
from app.services.tiktok.session import EndReason, LiveSession, SessionPurpose

logger = logging.getLogger(__name__)


class MasterHold:
    """Write mode keeps the account master's exclusive lock, instead of a clone, for the session's life."""

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


def start_failure(error: BaseException) -> str:
    """A failure the service did not foresee, said in words a client can act on, without paths or traces."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on device for the profile copy (USER_DATA_DIR); free space or move it"
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied: the service cannot read the master profile or write USER_DATA_DIR"
    if isinstance(error, OSError) and error.errno == errno.EROFS:
        return "USER_DATA_DIR is on a read-only file system"
    return "the session could not be started; see the service log"


def _browser_errors(message: str) -> str:
    lines = [line.split("[err]", 1)[1].strip() for line in message.splitlines() if "[err]" in line]
    return " | ".join(dict.fromkeys(lines))[-600:]


def _ms_since(mark: float) -> float:
    return round((time.perf_counter() - mark) * 1000, 1)


class SessionOpener:
    def __init__(
        self,
        settings: Settings,
        browsers: BrowserFactory,
        accounts: AccountBook,
        metrics: Metrics,
        cluster: ClusterRegistry | None = None,
        *,
        write_mode: bool | None = None,
    ):
        self.settings = settings
        self.browsers = browsers
        self.accounts = accounts
        self.metrics = metrics
        self.cluster = cluster
        self.write_mode = settings.WRITE_MODE if write_mode is None else write_mode
        self.prover = LoginProver(settings.detection, settings.TIKTOK_URL, settings.LOGIN_DETECTION_TIMEOUT)

    async def open(self, account: Account) -> LiveSession:
        """Clone (or lock), launch and prove a session of `account`; on any failure nothing is left."""
        mode = SessionMode.WRITE if self.write_mode else SessionMode.READ
        session = LiveSession(str(uuid.uuid4()), mode, self.settings, account=account.name)
        try:
            await self._open(session, account)
        except BaseException as error:
            await session.close(EndReason.START_FAILED)
            if isinstance(error, asyncio.CancelledError):
                raise
            if not isinstance(error, ServiceError):
                logger.exception("session.start_failed", extra={"session_id": session.id})
                error = ServiceError(start_failure(error))
            logger.info(
                "session.start_failed",
                extra={"session_id": session.id, "account": account.name, "code": error.code},
            )
            raise error from None
        return session

    async def open_for_login(self, account: Account) -> LiveSession:
        """A write-mode session on the account's master at TikTok's login page, for a person to log in
        through the live view (SPEC §13). Nothing is proven: that happens once the session has ended
        and the browser has written the cookies. On any failure nothing is left."""
        session = LiveSession(str(uuid.uuid4()), SessionMode.WRITE, self.settings, account=account.name)
        session.purpose = SessionPurpose.LOGIN
        try:
            await asyncio.to_thread(account.layout.master.mkdir, mode=0o700, parents=True, exist_ok=True)
            lease = await self._lease_master(session, account)
            try:
                held = await account.lock.exclusive(self.settings.LOCK_TIMEOUT)
            except BaseException:
                if lease is not None:
                    await lease.release()
                raise
            session.profile = MasterHold(held, account.layout, lease)
            identity = await self.accounts.identity(account)
            async with asyncio.timeout(self.settings.SESSION_START_TIMEOUT):
                executor = await self.browsers.executor_for(account.layout.master, account=identity)
                session.executor = executor
                await executor.start()
                login_page = urljoin(self.settings.TIKTOK_URL, self.settings.detection.LOGIN_PATH.lstrip("/"))
                # The page is the person's from here: a slow first load is theirs to see, not a failure.
                with contextlib.suppress(Exception):
                    await executor.page.goto(login_page, wait_until="commit")
        except BaseException as error:
            await session.close(EndReason.START_FAILED)
            if isinstance(error, TimeoutError):
                raise SessionStartTimeout(
                    f"the browser did not start within {self.settings.SESSION_START_TIMEOUT:g} s",
                    timeout=self.settings.SESSION_START_TIMEOUT,
                ) from None
            if isinstance(error, ServiceError | asyncio.CancelledError):
                raise
            logger.exception("session.start_failed", extra={"session_id": session.id})
            raise ServiceError(start_failure(error)) from None
        return session

    async def reprove(self, session: LiveSession) -> DetectionResult:
        """The in-page account lookup again, on a live session's page (the warm pool's re-check)."""
        executor = session.executor
        assert executor is not None
        return await executor.reprove_login(self.prover)

    async def _hold_profile(self, session: LiveSession, account: Account) -> Path:
        """The profile the session's browser runs on: a fresh clone, or (write mode) the master itself."""
        layout = account.layout
        # Waiting for the profile lock is not part of the start budget: that wait is LOCK_TIMEOUT's.
        if session.mode is SessionMode.WRITE:
            master = await asyncio.to_thread(layout.require_master)
            waited_from = time.monotonic()
            lease = await self._lease_master(session, account)
            try:
                left = max(0.0, self.settings.LOCK_TIMEOUT - (time.monotonic() - waited_from))
                held = await account.lock.exclusive(left)
            except BaseException:
                if lease is not None:
                    await lease.release()
                raise
            session.profile = MasterHold(held, layout, lease)
            return master
        clone = await clone_master(layout, account.lock, self.settings.LOCK_TIMEOUT, session.id)
        self.metrics.clone_bytes.inc(clone.bytes_copied)
        self.metrics.clone_seconds.observe(clone.copy_seconds)
        session.profile = clone
        return clone.path

    async def _lease_master(self, session: LiveSession, account: Account) -> MasterLease | None:
        """Cluster mode: no two instances write the account at once (their masters are copies of it)."""
        if self.cluster is None:
            return None
        return await self.cluster.lease_master(
            self.settings.LOCK_TIMEOUT,
            on_lost=lambda: session.close_soon(EndReason.LOCK_LOST),
            account=account.name,
        )

    async def _open(self, session: LiveSession, account: Account) -> None:
        settings = self.settings
        phases = session.phase_ms
        mark = time.perf_counter()
        generation = await account.generation()
        try:
            profile_dir = await self._hold_profile(session, account)
        except MasterProfileMissing:
            account.record_missing_master(generation)
            raise
        phases["clone"], mark = _ms_since(mark), time.perf_counter()
        stored = await check_stored_cookies(profile_dir, settings.tiktok_host, settings.detection)
        if stored is not None:
            session.login = stored
            self._check_login(stored, account, generation)
        identity = await self.accounts.identity(account)
        try:
            async with asyncio.timeout(settings.SESSION_START_TIMEOUT):
                executor = await self.browsers.executor_for(profile_dir, account=identity)
                session.executor = executor
                try:
                    await executor.start()
                except Exception as error:
                    logger.error(
                        "browser.launch_failed",
                        extra={
                            "session_id": session.id,
                            "error": type(error).__name__,
                            # What the browser itself said (Playwright keeps its stderr): for the operator.
                            "browser_said": _browser_errors(str(error)),
                        },
                    )
                    raise BrowserLaunchFailed("Chromium failed to start; see the service log") from None
                phases["launch"], mark = _ms_since(mark), time.perf_counter()
                session.login = await executor.detect_login(self.prover)
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
        self._check_login(session.login, account, generation, executor.network_failure)

    def _check_login(
        self,
        login: DetectionResult,
        account: Account,
        generation: str | None,
        network_failure: str | None = None,
    ) -> None:
        self.metrics.login_decisions.labels(login.method, login.state.value).inc()
        self.metrics.detection_seconds.observe(login.elapsed_ms / 1000)
        timeout = self.settings.LOGIN_DETECTION_TIMEOUT
        if login.state == "uncertain" and not login.page_loaded:
            # Nothing was learnt about the account: its last proof stands.
            reason = login.navigation_error or f"TikTok did not load within {timeout:g} s"
            if network_failure:
                reason += f" ({network_failure})"
            raise SessionStartTimeout(
                f"TikTok page did not load: {reason}", method=login.method, timeout=timeout
            )
        account.record(login, generation)
        if not login.proven:
            raise LoginNotProven(login, timeout, account=account.name)
