"""Login detection: the whole decision from a profile (and its live page) to a `DetectionResult`.

`check_stored_cookies` looks at the profile's cookie database before any browser starts. On the live
page, `LoginDetector` runs one collector per signal concurrently (each built on a probe from
`page_probes`) and feeds what arrives to the pure `decide()`. The first conclusive decision wins; an
inconclusive page gets one soft refresh; the whole run is bounded by `LOGIN_DETECTION_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from app.core.config import DetectionSettings
from app.services.tiktok.login import page_probes as probe
from app.services.tiktok.login import signal_readers as read
from app.services.tiktok.login.cookie_store import read_cookie_rows, stored_cookie_signal
from app.services.tiktok.login.login_signals import Decision, LoginState, Signal, Source, Verdict, decide

logger = logging.getLogger(__name__)

HEADER_WAIT_SHARE = 0.5  # of LOGIN_DETECTION_TIMEOUT, counted from DOMContentLoaded
CONFIRM_LOAD_SHARE = 0.25  # of LOGIN_DETECTION_TIMEOUT: longest wait for the load event before answering


@dataclass(frozen=True)
class DetectionResult:
    state: LoginState
    method: str
    elapsed_ms: int
    signals: tuple[Signal, ...]
    page_loaded: bool
    refreshes: int = 0
    navigation_error: str | None = None
    verified_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def proven(self) -> bool:
        return self.state is LoginState.LOGGED_IN

    @property
    def username(self) -> str | None:
        """Who is logged in, as the account lookup (else the page) names them; None unless proven."""
        if not self.proven:
            return None
        named = [s for s in self.signals if s.verdict is Verdict.LOGGED_IN and s.username]
        named.sort(key=lambda s: s.source is not Source.ACCOUNT_API)
        return named[0].username if named else None

    def deciding_signal(self) -> Signal | None:
        # A later "no answer" from the same source never replaces the answer that decided.
        return next(
            (
                s
                for s in reversed(self.signals)
                if s.source.value == self.method and s.verdict is not Verdict.NONE
            ),
            None,
        )

    def describe(self) -> str:
        """For people: what was decided and what the deciding signal saw."""
        deciding = self.deciding_signal()
        seen = f" ({deciding.evidence})" if deciding is not None and deciding.evidence else ""
        if self.state is LoginState.LOGGED_OUT:
            return (
                f"the profile copy is not logged in to TikTok{seen}; log the master in again [{self.method}]"
            )
        if self.state is LoginState.LOGGED_IN:
            return f"logged in{seen} [{self.method}]"
        walls = [s.evidence for s in self.signals if s.verdict is Verdict.WALL]
        why = f": {walls[0]}" if walls else " (conflicting or missing signals)"
        return f"login could not be confirmed{why} [{self.method}]"


async def check_stored_cookies(
    profile_dir: Path, host: str, knobs: DetectionSettings
) -> DetectionResult | None:
    """LOGGED_OUT when the profile stores no session cookie at all, known before any browser starts."""
    started = time.monotonic()
    rows = await asyncio.to_thread(read_cookie_rows, profile_dir)
    signal = stored_cookie_signal(rows, host, knobs.SESSION_COOKIES, time.time())
    if signal.verdict is not Verdict.LOGGED_OUT:
        return None
    return DetectionResult(
        state=LoginState.LOGGED_OUT,
        method=signal.source.value,
        elapsed_ms=int((time.monotonic() - started) * 1000),
        signals=(signal,),
        page_loaded=False,
    )


@dataclass
class _PageVisit:
    """What one load (first visit or the soft refresh) of the page has shown so far."""

    # Set once the navigation has either committed or failed; `navigation_error` tells which.
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    document_status: int | None = None
    navigation_error: str | None = None
    # A wall check found the page clear after its load handlers had run: looking again finds the same.
    clear_after_load: bool = False


@dataclass(frozen=True)
class LoginProver:
    """What proving a login needs to know about the site, worked out once: used by a cold start's
    detection and by the warm pool's re-proof alike."""

    knobs: DetectionSettings
    start_url: str
    timeout: float  # LOGIN_DETECTION_TIMEOUT, seconds

    @property
    def origin(self) -> str:
        parts = urlsplit(self.start_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def account_info_url(self) -> str:
        return urljoin(self.start_url, self.knobs.ACCOUNT_INFO_PATH)

    async def prove(self, context: Any, page: Any) -> DetectionResult:
        """Load TikTok on `page` and decide who, if anyone, is logged in."""
        return await LoginDetector(self, context, page).run()

    async def reprove(self, context: Any, page: Any) -> DetectionResult:
        """Prove again, on the page as it stands (a warm session's), that it is still logged in.

        No navigation: the same signals are read from the loaded page, and the account lookup makes the
        network round trip that tells a server-side logout. Whatever `decide()` cannot call logged in
        fails.
        """
        started = time.monotonic()
        deadline = started + self.timeout
        knobs = self.knobs
        signals: list[Signal] = [await probe.collect_cookies(context, self.origin, knobs)]
        if decide(signals).state is not LoginState.LOGGED_OUT:
            observed = await asyncio.gather(
                probe.fetch_account_info(page, self.account_info_url, self.origin, deadline),
                probe.read_rehydration_block(page, deadline),
                probe.probe_walls(page, knobs, None, deadline),
            )
            signals += [signal for signal in observed if signal is not None]
            signals.append(read.read_redirect(page.url, knobs.LOGIN_PATH))
        decision = decide(signals)
        state = decision.state if decision.conclusive else LoginState.UNCERTAIN
        return DetectionResult(
            state=state,
            method=decision.method,
            elapsed_ms=int((time.monotonic() - started) * 1000),
            signals=tuple(signals),
            page_loaded=True,
        )


class LoginDetector:
    """Runs the collectors on one page of one browser context and returns a `DetectionResult`."""

    def __init__(self, prover: LoginProver, context: Any, page: Any):
        self._context = context
        self._page = page
        self._knobs = prover.knobs
        self._start_url = prover.start_url
        self._origin = prover.origin
        self._account_info_url = prover.account_info_url
        self._timeout = prover.timeout
        self._signals: list[Signal] = []
        self._inbox: asyncio.Queue[Signal] = asyncio.Queue()
        self._visit = _PageVisit()
        self._page_loaded = False
        self._intercepts: set[asyncio.Task[None]] = set()
        self._refreshes = 0

    async def run(self) -> DetectionResult:
        started = time.monotonic()
        decision = await self._run_until(started + self._timeout)
        return DetectionResult(
            state=decision.state,
            method=decision.method,
            elapsed_ms=int((time.monotonic() - started) * 1000),
            signals=tuple(self._signals),
            page_loaded=self._page_loaded,
            refreshes=self._refreshes,
            navigation_error=self._visit.navigation_error,
        )

    async def _run_until(self, deadline: float) -> Decision:
        cookie_signal = await probe.collect_cookies(self._context, self._origin, self._knobs)
        self._signals.append(cookie_signal)
        decision = decide(self._signals)
        if decision.conclusive:
            # No session cookie: answered without waiting for the page.
            return decision

        self._page.on("response", self._on_response)
        self._page.on("framenavigated", self._on_frame_navigated)
        try:
            for refresh in (False, True):
                if refresh:
                    logger.debug("login.soft_refresh")
                    self._refreshes += 1
                    self._signals = [cookie_signal]
                decision = await self._observe_visit(deadline, refresh)
                if decision.conclusive or time.monotonic() >= deadline:
                    break
        finally:
            self._page.remove_listener("response", self._on_response)
            self._page.remove_listener("framenavigated", self._on_frame_navigated)
            for task in self._intercepts:
                task.cancel()
        if decision.conclusive:
            return decision
        method = decision.method if decision.method != "pending" else "inconclusive"
        return Decision(LoginState.UNCERTAIN, method, conclusive=True)

    async def _observe_visit(self, deadline: float, refresh: bool) -> Decision:
        self._visit = _PageVisit()
        self._inbox = asyncio.Queue()
        collectors: list[Callable[[float], Awaitable[Signal | None]]] = [
            self._collect_account_api,
            self._collect_rehydration,
            self._collect_redirect,
            self._collect_walls,
            self._collect_header,
        ]
        navigation = asyncio.create_task(self._navigate(deadline, refresh))
        tasks = [asyncio.create_task(self._report(collector, deadline)) for collector in collectors]
        decision = decide(self._signals)
        try:
            while time.monotonic() < deadline:
                pending = [task for task in tasks if not task.done()]
                if not pending and self._inbox.empty():
                    break
                try:
                    signal = await asyncio.wait_for(self._inbox.get(), deadline - time.monotonic())
                except TimeoutError:
                    break
                self._signals.append(signal)
                decision = decide(self._signals)
                if decision.conclusive and decision.state is not LoginState.UNCERTAIN:
                    decision = await self._confirm_clear(decision, deadline)
                if decision.conclusive:
                    return decision
            return decision
        finally:
            for task in [navigation, *tasks]:
                task.cancel()
            await asyncio.gather(navigation, *tasks, return_exceptions=True)

    async def _confirm_clear(self, decision: Decision, deadline: float) -> Decision:
        """TikTok's captcha is drawn by script while the page loads, after the first wall check.

        So before answering, let the page finish loading (as a plain `goto` would), within a bounded
        share of the budget, and look for walls once more, unless the last look was already after load.
        """
        if self._visit.clear_after_load:
            return decision
        load_deadline = min(deadline, time.monotonic() + self._timeout * CONFIRM_LOAD_SHARE)
        with contextlib.suppress(Exception):
            await self._page.wait_for_load_state("load", timeout=probe.remaining_ms(load_deadline))
        walls = await probe.probe_walls(self._page, self._knobs, self._visit.document_status, deadline)
        if walls is not None and walls.verdict is Verdict.WALL:
            self._signals.append(walls)
            return decide(self._signals)
        return decision

    async def _navigate(self, deadline: float, refresh: bool) -> None:
        timeout_ms = probe.remaining_ms(deadline)
        try:
            if refresh and self._page_loaded:
                response = await self._page.reload(wait_until="commit", timeout=timeout_ms)
            else:
                response = await self._page.goto(self._start_url, wait_until="commit", timeout=timeout_ms)
            if response is not None:
                self._visit.document_status = response.status
        except Exception as error:  # noqa: BLE001 - any navigation failure means "no page", reported below
            self._visit.navigation_error = str(error).splitlines()[0][:200]
            logger.debug("login.navigation_failed", extra={"error": self._visit.navigation_error})
        finally:
            # Wakes the collectors either way: a failed load must not keep them waiting to the deadline.
            self._visit.committed.set()

    async def _report(self, collector: Callable[[float], Awaitable[Signal | None]], deadline: float) -> None:
        signal = await collector(deadline)
        if signal is not None:
            self._inbox.put_nowait(signal)

    async def _until_committed(self, deadline: float) -> bool:
        try:
            await asyncio.wait_for(self._visit.committed.wait(), deadline - time.monotonic())
        except TimeoutError:
            return False
        return self._visit.navigation_error is None

    async def _until_dom_ready(self, deadline: float) -> bool:
        """Wait until the visit's document is parsed; False when it never got that far in time."""
        if not await self._until_committed(deadline):
            return False
        try:
            await self._page.wait_for_load_state("domcontentloaded", timeout=probe.remaining_ms(deadline))
        except Exception:  # noqa: BLE001 - timeouts and closed pages both mean "not ready"
            return False
        self._page_loaded = True
        return True

    async def _collect_account_api(self, deadline: float) -> Signal | None:
        # Started as soon as the TikTok origin has committed, so its round trip overlaps the page load.
        if not await self._until_committed(deadline):
            return None
        return await probe.fetch_account_info(self._page, self._account_info_url, self._origin, deadline)

    async def _collect_rehydration(self, deadline: float) -> Signal | None:
        if not await self._until_dom_ready(deadline):
            return None
        return await probe.read_rehydration_block(self._page, deadline)

    async def _collect_redirect(self, deadline: float) -> Signal | None:
        if not await self._until_dom_ready(deadline):
            return None
        return read.read_redirect(self._page.url, self._knobs.LOGIN_PATH)

    async def _collect_walls(self, deadline: float) -> Signal | None:
        if not await self._until_dom_ready(deadline):
            return None
        visit = self._visit
        check = await probe.check_walls(self._page, self._knobs, visit.document_status, deadline)
        if check is None:
            return None
        signal = check.signal
        if signal.evidence != "empty page":
            visit.clear_after_load = check.after_load and signal.verdict is not Verdict.WALL
            return signal
        # Single-page apps fill the body from script: only a body still empty once loaded is a wall.
        with contextlib.suppress(Exception):
            await self._page.wait_for_load_state("load", timeout=probe.remaining_ms(deadline))
        return await probe.probe_walls(self._page, self._knobs, self._visit.document_status, deadline)

    async def _collect_header(self, deadline: float) -> Signal | None:
        if not await self._until_dom_ready(deadline):
            return None
        # The header renders late, but waiting for it with the whole budget would leave no time for the
        # soft refresh when it never comes.
        header_deadline = min(deadline, time.monotonic() + self._timeout * HEADER_WAIT_SHARE)
        return await probe.wait_for_header(self._page, self._knobs, header_deadline)

    def _on_frame_navigated(self, frame: Any) -> None:
        if frame == self._page.main_frame:
            signal = read.read_redirect(frame.url, self._knobs.LOGIN_PATH)
            if signal.verdict is Verdict.LOGGED_OUT:
                self._inbox.put_nowait(signal)

    def _on_response(self, response: Any) -> None:
        request = response.request
        if request.resource_type == "document":
            try:
                in_main_frame = request.frame == self._page.main_frame
            except Exception:  # noqa: BLE001 - service-worker requests have no frame
                in_main_frame = False
            if in_main_frame and not 300 <= response.status < 400:
                self._visit.document_status = response.status
            return
        if any(pattern in response.url for pattern in self._knobs.ACCOUNT_RESPONSE_PATTERNS):
            task = asyncio.get_running_loop().create_task(self._read_intercepted(response))
            self._intercepts.add(task)
            task.add_done_callback(self._intercepts.discard)

    async def _read_intercepted(self, response: Any) -> None:
        try:
            body = await response.text()
        except Exception:  # noqa: BLE001 - the body is gone once the page navigates
            return
        signal = read.read_account_info(response.status, body)
        if signal.verdict is not Verdict.NONE:
            self._inbox.put_nowait(signal)
