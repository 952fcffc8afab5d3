"""Warm pool (SPEC §3.7): sessions cloned, launched and proven logged in before anyone asks for them.

A POST takes one in milliseconds when its browser is alive, its master generation is current and its
last proof is younger than WARM_RECHECK_INTERVAL; otherwise it is re-proven first, or discarded — never
handed out unproven. The pool refills in the background, re-proves what it holds before the proof goes
stale (the account lookup is a network round trip to TikTok, kept off the hand-out path), and backs off
exponentially while the master is not logged in instead of relaunching in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from app.core.errors import ServiceError
from app.services.tiktok.login.login_detection import DetectionResult
from app.services.tiktok.session import EndReason, LiveSession

logger = logging.getLogger(__name__)

# Re-prove a warm session once its proof has used up this share of WARM_RECHECK_INTERVAL, so the one a
# POST takes is still fresh.
RECHECK_SHARE = 0.75
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
# A refill waits until no session has been taken for this long: a clone and a Chromium launch started in
# the middle of a burst of POSTs take the CPU that the burst's other answers need (2 cores).
REFILL_QUIET = 0.25  # seconds

OpenSession = Callable[[], Awaitable[LiveSession]]
Reprove = Callable[[LiveSession], Awaitable[DetectionResult]]
Generation = Callable[[], Awaitable[str | None]]


class WarmPool:
    def __init__(
        self,
        size: int,
        recheck_interval: float,
        open_session: OpenSession,
        reprove: Reprove,
        current_generation: Generation,
    ):
        self.size = size
        self._recheck_interval = recheck_interval
        self._open_session = open_session
        self._reprove = reprove
        self._current_generation = current_generation
        self._ready: list[LiveSession] = []
        self._generation_of: dict[str, str | None] = {}
        self._checking = 0  # taken out of the list while being re-proven: still the pool's
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.launches = 0  # sessions the pool has started, for operators and tests
        self._last_taken = 0.0  # time.monotonic() of the last take()

    @property
    def ready_count(self) -> int:
        return sum(1 for session in self._ready if _alive(session))

    def start(self) -> None:
        if self.size and not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._keep_filled()), loop.create_task(self._keep_proven())]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        ready, self._ready = self._ready, []
        await asyncio.gather(*(session.close(EndReason.SHUTDOWN) for session in ready))

    async def take(self, generation: str | None) -> LiveSession | None:
        """A proven session of the master at `generation` for a POST, or None (the caller then opens one
        cold)."""
        self._last_taken = time.monotonic()
        while self._ready:
            session = self._ready.pop(0)
            self._wake.set()  # refill behind the one taken
            if not _alive(session) or self._generation_of.pop(session.id, None) != generation:
                await self._discard(session, "stale" if _alive(session) else "browser_dead")
                continue
            if not self._fresh(session) and not await self._still_logged_in(session):
                continue
            return session
        return None

    def _fresh(self, session: LiveSession) -> bool:
        login = session.login
        return login is not None and time.time() - login.verified_at.timestamp() < self._recheck_interval

    async def _still_logged_in(self, session: LiveSession) -> bool:
        try:
            login = await self._reprove(session)
        except Exception:  # noqa: BLE001 - a page that cannot be asked is no proof
            login = None
        if login is None or not login.proven:
            await self._discard(session, "recheck_failed")
            return False
        session.login = login
        return True

    async def _discard(self, session: LiveSession, reason: str) -> None:
        if session in self._ready:
            self._ready.remove(session)
        self._generation_of.pop(session.id, None)
        logger.info("warm.discarded", extra={"session_id": session.id, "reason": reason})
        await session.close(f"warm_{reason}")
        self._wake.set()

    async def _keep_filled(self) -> None:
        backoff = 0.0
        failed_generation: str | None = None
        while True:
            while self.ready_count + self._checking >= self.size:
                self._wake.clear()
                await self._wake.wait()
            await self._until_takes_pause()
            generation = await self._current_generation()
            if backoff and generation == failed_generation:
                # The master stays as it was: wait, then try again (a changed master is tried at once).
                await self._sleep_unless_master_changes(backoff, generation)
            try:
                self.launches += 1
                session = await self._open_session()
            except ServiceError as error:
                if not backoff:
                    logger.warning(
                        "warm.fill_failed",
                        extra={"code": error.code, "details": error.error_details.get("details")},
                    )
                backoff = min(BACKOFF_MAX, backoff * 2 or BACKOFF_FIRST)
                failed_generation = generation
                continue
            except Exception:
                logger.exception("warm.fill_crashed")
                backoff = min(BACKOFF_MAX, backoff * 2 or BACKOFF_FIRST)
                failed_generation = generation
                continue
            if backoff:
                logger.info("warm.fill_recovered")
            backoff = 0.0
            self._generation_of[session.id] = generation
            self._ready.append(session)
            if session.executor is not None:
                session.executor.on_end(lambda _reason, s=session: self._wake.set())

    async def _until_takes_pause(self) -> None:
        """Returns once no session has been taken for REFILL_QUIET (each take pushes the moment back)."""
        quiet_at = self._last_taken + REFILL_QUIET
        while quiet_at > time.monotonic():
            await asyncio.sleep(quiet_at - time.monotonic())
            quiet_at = self._last_taken + REFILL_QUIET

    async def _sleep_unless_master_changes(self, seconds: float, generation: str | None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(min(1.0, deadline - time.monotonic()))
            if await self._current_generation() != generation:
                return

    async def _keep_proven(self) -> None:
        """Re-prove or drop what the pool holds: dead browsers, older masters, proofs about to go stale."""
        period = max(0.5, self._recheck_interval * RECHECK_SHARE / 4)
        while True:
            await asyncio.sleep(period)
            generation = await self._current_generation()
            for session in list(self._ready):
                if session not in self._ready:
                    continue  # taken meanwhile
                if not _alive(session):
                    await self._discard(session, "browser_dead")
                elif self._generation_of.get(session.id) != generation:
                    await self._discard(session, "stale")
                elif self._proof_age(session) >= self._recheck_interval * RECHECK_SHARE:
                    await self._recheck(session)

    async def _recheck(self, session: LiveSession) -> None:
        # Out of the ready list while its page is asked, so a POST never takes it half-way.
        self._ready.remove(session)
        self._checking += 1
        try:
            proven = await self._still_logged_in(session)
        finally:
            self._checking -= 1
        if proven:
            self._ready.append(session)

    def _proof_age(self, session: LiveSession) -> float:
        login = session.login
        return float("inf") if login is None else time.time() - login.verified_at.timestamp()


def _alive(session: LiveSession) -> bool:
    return session.executor is not None and session.executor.is_alive
