"""TikTok sessions: pick the account, open through the opener, keep the live ones, end them on every path.

The parts have one job each: `SessionOpener` opens a session (profile, browser, proof), `Capacity`
counts what may live at once, `AccountBook` knows the accounts, each account's `WarmPool` holds
sessions ready ahead. This class joins them behind the API: create, look up, list, end.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import datetime

from app.core.config import Settings
from app.core.errors import (
    NoAccountAvailable,
    NotLoggedIn,
    ServiceError,
    SessionNotFound,
    UserDataLocked,
)
from app.core.metrics import Metrics
from app.core.redaction import redact_proxy
from app.services.cluster.registry import ClusterRegistry, SessionRecord
from app.services.common.browser import find_browser
from app.services.common.generation import read_generation
from app.services.common.sandbox import Isolation
from app.services.common.user_data import DEFAULT_ACCOUNT, UserDataLayout, sweep_orphan_clones
from app.services.tiktok.accounts import Account, AccountBook
from app.services.tiktok.browser_factory import BrowserFactory
from app.services.tiktok.capacity import Capacity
from app.services.tiktok.login.login_signals import LoginState
from app.services.tiktok.opener import SessionOpener
from app.services.tiktok.session import EndReason, LiveSession, SessionPurpose, SessionState
from app.services.tiktok.warm_pool import WarmPool
from app.services.tiktok.warm_pools import WarmPools

logger = logging.getLogger(__name__)


class TiktokService:
    def __init__(
        self, settings: Settings, metrics: Metrics | None = None, cluster: ClusterRegistry | None = None
    ):
        self.settings = settings
        # Cluster mode (REDIS_URL): the registry shared with the other instances; None for a single one.
        self.cluster = cluster
        self.metrics = metrics or Metrics()
        # The default account's files (the single-master layout of earlier versions becomes it).
        self.layout = UserDataLayout(settings.USER_DATA_DIR)
        self.browsers = BrowserFactory(settings)
        self.accounts = AccountBook(self.layout, self.browsers.sample_fingerprint)
        self.opener = SessionOpener(settings, self.browsers, self.accounts, self.metrics, cluster)
        self.capacity = Capacity(settings.MAX_SESSIONS, settings.MAX_SESSIONS_PER_ACCOUNT)
        self._sessions: dict[str, LiveSession] = {}
        pool_size = 0 if settings.WRITE_MODE else settings.WARM_SESSIONS
        self.pools = WarmPools(pool_size, settings.WARM_RECHECK_INTERVAL, self.opener)
        self._background: set[asyncio.Task[None]] = set()
        self.metrics.watch(self)
        if cluster is not None:
            cluster.watch(lambda: [session_record(session, cluster) for session in self._live()])

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
        self.pools.open()
        for name in await self.accounts.names():
            self.pools.of(self.accounts.account(name))
        proxy = self.settings.PROXY.get_secret_value() if self.settings.PROXY else None
        logger.info(
            "service.started",
            extra={
                "user_data": str(self.settings.USER_DATA_DIR),
                "tiktok_url": self.settings.TIKTOK_URL,
                "proxy": redact_proxy(proxy),
                "write_mode": self.settings.WRITE_MODE,
                "isolation": self.browsers.isolation.value,
                "accounts": ",".join(self.pools.names()) or "none",
            },
        )

    @property
    def warm(self) -> WarmPool | None:
        """The default account's warm pool (what a single-account service has)."""
        return self.pools.get(DEFAULT_ACCOUNT)

    async def end_all_sessions(self) -> None:
        """Close every session (waiting clients answered, relays closed with 1000). Idempotent."""
        await self.pools.aclose()
        await asyncio.gather(*(s.close(EndReason.SHUTDOWN) for s in list(self._sessions.values())))

    async def shutdown(self) -> None:
        await self.end_all_sessions()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
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
            ("master", self._some_master),
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

    def _some_master(self) -> None:
        names = self.layout.account_names()
        for name in names:
            with contextlib.suppress(ServiceError):
                self.layout.for_account(name).require_master()
                return
        # Says how to make one, for the default account.
        self.layout.require_master()

    def _clones_writable(self) -> None:
        if not os.access(self.layout.clones, os.W_OK | os.X_OK):
            raise OSError(errno.EACCES, f"{self.layout.clones} is not writable")

    async def generation(self) -> str | None:
        """The default account's master generation marker (changes whenever that master changes)."""
        return await asyncio.to_thread(read_generation, self.layout)

    # --- looking sessions up ---------------------------------------------------------------------------

    async def locate(self, session_id: str, here_only: bool = False) -> LiveSession | SessionRecord:
        """The live session `session_id`: this instance's, else (cluster mode) the record of the instance
        that owns it; SessionNotFound when there is none.

        `here_only`: a request another instance forwarded here is answered here, never forwarded on.
        """
        session = self._sessions.get(session_id)
        if session is not None and session.state is SessionState.LIVE:
            return session
        if self.cluster is not None and not here_only:
            record = await self.cluster.lookup(session_id)
            # A record of this very instance names a session that is ending: there is no one to forward to.
            if record is not None and record.owner_id != self.cluster.instance_id:
                return record
        raise SessionNotFound(f"no live session with id {session_id}")

    async def list_sessions(self) -> list[LiveSession | SessionRecord]:
        """The live sessions of this instance and, in cluster mode, of every other one, oldest first."""
        here: list[LiveSession | SessionRecord] = [*self._live()]
        if self.cluster is None:
            return here
        others = [r for r in await self.cluster.records() if r.owner_id != self.cluster.instance_id]
        return sorted([*here, *others], key=lambda session: session.info().created_at)

    @property
    def starting(self) -> int:
        """Sessions being opened right now (they count against MAX_SESSIONS too)."""
        return self.capacity.starting

    def _live(self) -> list[LiveSession]:
        return [s for s in self._sessions.values() if s.state is SessionState.LIVE]

    def live_by_mode(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for session in self._live():
            counts[session.mode.value] = counts.get(session.mode.value, 0) + 1
        return counts

    def warm_ready(self) -> int:
        return self.pools.ready()

    def warm_ready_of(self, account: str) -> int:
        return self.pools.ready(account)

    def relays_open(self) -> int:
        return sum(session.relays.open_count for session in self._live())

    def isolation(self) -> str:
        return self.browsers.isolation.value

    def egress_refused(self) -> int:
        return self.browsers.egress_refused

    def account_states(self) -> dict[str, tuple[int, str | None]]:
        """Live sessions and last proven login state of each account this service has used."""
        return {
            account.name: (account.live, account.proof.state.value if account.proof else None)
            for account in self.accounts.known()
        }

    # --- creating sessions -----------------------------------------------------------------------------

    async def create(self, account: str | None = None) -> LiveSession:
        """A live session proven logged in: of `account`, or of any account that can serve."""
        started = time.perf_counter()
        try:
            if account is not None:
                named = await self.accounts.get(account)
                session, warm = await self._create_for(named, await named.generation())
            else:
                session, warm = await self._create_any()
        except ServiceError as error:
            self.metrics.sessions_created.labels(error.code).inc()
            raise
        self.metrics.sessions_created.labels("ok").inc()
        self.metrics.creation_seconds.labels("warm" if warm else "cold").observe(
            time.perf_counter() - started
        )
        return session

    async def _create_for(self, account: Account, generation: str | None) -> tuple[LiveSession, bool]:
        """`generation`: the account master's, as just read by the caller."""
        with self.capacity.slot(account, len(self._sessions), self._expiries()):
            async with self._cluster_slot() as reservation:
                pool = self.pools.of(account)
                warm = await pool.take(generation) if pool is not None else None
                session = warm or await self.opener.open(account)
        self._sessions[session.id] = session
        account.live += 1
        account.handed_out()
        session.go_live(self._forget)
        if self.cluster is not None and reservation is not None:
            await self.cluster.publish(session_record(session, self.cluster), reservation)
        login = session.login
        assert login is not None
        logger.info(
            "session.created",
            extra={
                "session_id": session.id,
                "account": account.name,
                "mode": session.mode.value,
                "login_method": login.method,
                "detect_ms": login.elapsed_ms,
                "phases_ms": session.phase_ms,
            },
        )
        return session, warm is not None

    async def _create_any(self) -> tuple[LiveSession, bool]:
        """No account named: the least recently handed out of those proven logged in or not proven
        yet (a new account is tried, and so learnt); one whose last proof says it is not logged in is
        skipped until its master changes."""
        known = await self.accounts.with_generations()
        accounts = [account for account, _ in known]
        generation_of = {account.name: generation for account, generation in known}
        proven, unknown, tried = [], [], {}
        for account, generation in known:
            state = account.proven_for(generation)
            if state is LoginState.LOGGED_IN:
                proven.append(account)
            elif state is None:
                unknown.append(account)
            else:
                tried[account.name] = f"last proof: {state.value}"
        if len(accounts) == 1:
            # One account: its own answer (409 with its signals, 423, 429) is the answer.
            return await self._create_for(accounts[0], generation_of[accounts[0].name])
        candidates = sorted(proven + unknown, key=_lru)
        for account in candidates:
            if not self.capacity.has_room(account, len(self._sessions)):
                tried[account.name] = "no room"
                continue
            try:
                return await self._create_for(account, generation_of[account.name])
            except NotLoggedIn as refused:
                tried[account.name] = str(refused.extra.get("state", "logged_out"))
            except UserDataLocked:
                tried[account.name] = "locked"
        if candidates and all(tried[account.name] == "no room" for account in candidates):
            # Every account that could serve is full: that is a 429, in the limit's own words.
            self.capacity.check(candidates[0], len(self._sessions), self._expiries())
        summary = ", ".join(f"{name} ({reason})" for name, reason in tried.items()) or "none"
        raise NoAccountAvailable(
            f"no account is proven logged in with room; tried: {summary}",
            state="logged_out",
            accounts=tried,
        )

    async def start_login(self, name: str) -> LiveSession:
        """SPEC §13: a write-mode session on the account's master (made when unknown) at TikTok's login
        page, for a person to log in through an interactive view. When it ends (Done, DELETE, timeout)
        the browser closes cleanly, the generation is bumped, the lock released, and the login proven
        again in the background (`GET /tiktok/accounts/{name}` shows the result)."""
        account = self.accounts.account(name)
        await asyncio.to_thread(account.layout.ensure)
        with self.capacity.slot(account, len(self._sessions), self._expiries()):
            async with self._cluster_slot() as reservation:
                session = await self.opener.open_for_login(account)
        self._sessions[session.id] = session
        account.live += 1
        session.go_live(self._forget)
        if self.cluster is not None and reservation is not None:
            await self.cluster.publish(session_record(session, self.cluster), reservation)
        logger.info("login.started", extra={"session_id": session.id, "account": name})
        return session

    async def _prove_after_login(self, account: Account) -> None:
        """The master a person just logged in: proven on a throw-away clone, like `profile status`."""
        try:
            session = await self.opener.open(account)
        except ServiceError as error:
            logger.info("login.not_proven", extra={"account": account.name, "code": error.code})
            return
        await session.close(EndReason.CHECKED)
        logger.info(
            "login.proven",
            extra={"account": account.name, "username": account.proof and account.proof.username},
        )

    def _expiries(self) -> list[datetime]:
        return [session.expires_at for session in self._sessions.values()]

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

    async def _forget(self, session: LiveSession) -> None:
        if self._sessions.pop(session.id, None) is not None:
            self.accounts.account(session.account).live -= 1
        if session.purpose is SessionPurpose.LOGIN and session.end_reason != EndReason.SHUTDOWN:
            # Called once the master is written and its lock released (the session's profile is gone).
            task = asyncio.get_running_loop().create_task(
                self._prove_after_login(self.accounts.account(session.account))
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self.metrics.session_ends.labels(session.end_reason or "unknown").inc()
        if self.cluster is not None:
            await self.cluster.withdraw(session.id)


def _lru(account: Account) -> float:
    return account.last_handed_out


def session_record(session: LiveSession, cluster: ClusterRegistry) -> SessionRecord:
    """What the cluster registry holds of a session this instance owns: owner, tokens and what GET shows.

    Without `cdp_url` and `view_url`: the instance a client reaches builds them with its own address.
    """
    details = session.info().model_dump(mode="json", exclude={"cdp_url", "view_url"})
    return SessionRecord(
        session.id,
        session.token,
        cluster.instance_id,
        cluster.instance_url,
        details,
        view_token=session.view_token,
    )
