"""Login detection on a live page: collectors that drive the page, run concurrently under one deadline.

Each collector observes one thing (cookies, an account lookup, the rehydration block, the URL, the
header, walls) and reports a `Signal`; `decide()` turns whatever has arrived into a decision. The first
conclusive decision wins; an inconclusive page gets one soft refresh; the whole run is bounded by
`LOGIN_DETECTION_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from app.core.config import Settings
from app.services.tiktok.utils import signal_readers as read
from app.services.tiktok.utils.login_signals import (
    Decision,
    LoginState,
    Signal,
    Source,
    Verdict,
    decide,
)

logger = logging.getLogger(__name__)

# Runs in Patchright's isolated world: the page's own scripts can neither see nor tamper with it,
# while fetch() still carries the page origin's cookies.
_ACCOUNT_FETCH_JS = """
async (path) => {
  try {
    const response = await fetch(path, {credentials: 'include', headers: {accept: 'application/json'}});
    return {status: response.status, body: await response.text()};
  } catch (error) {
    return {status: null, body: null};
  }
}
"""

_REHYDRATION_JS = """
() => {
  const block = document.getElementById('__UNIVERSAL_DATA_FOR_REHYDRATION__');
  return block ? block.textContent : null;
}
"""

_SELECTOR_HITS_JS = """
({groups, banTexts}) => {
  const hits = (selectors) => selectors.filter((selector) => {
    try { return document.querySelector(selector) !== null; } catch (error) { return false; }
  });
  const result = {};
  for (const [name, selectors] of Object.entries(groups)) result[name] = hits(selectors);
  const body = document.body;
  const inert = new Set(['SCRIPT', 'STYLE', 'LINK', 'META', 'NOSCRIPT', 'TEMPLATE']);
  const visibleElements = body ? [...body.children].filter((child) => !inert.has(child.tagName)) : [];
  const bodyText = body ? (body.innerText || '') : '';
  result.empty = !body || (visibleElements.length === 0 && !bodyText.trim());
  // A ban notice is a dialog or a short page of its own; a long feed quoting the words is not one.
  const notices = [...document.querySelectorAll('[role="dialog"], [role="alertdialog"], [role="alert"]')]
    .map((element) => element.innerText || '');
  if (bodyText.length < 1500) notices.push(bodyText);
  const lowered = notices.map((text) => text.toLowerCase());
  result.banText = banTexts.filter((phrase) => lowered.some((text) => text.includes(phrase.toLowerCase())));
  return result;
}
"""


HEADER_WAIT_SHARE = 0.5  # of LOGIN_DETECTION_TIMEOUT, counted from DOMContentLoaded
CONFIRM_LOAD_SHARE = 0.25  # of LOGIN_DETECTION_TIMEOUT: longest wait for the load event before answering


@dataclass(frozen=True)
class DetectionConfig:
    start_url: str
    origin: str
    account_info_url: str
    account_response_patterns: tuple[str, ...]
    session_cookies: tuple[str, ...]
    guard_cookie: str
    logged_in_selectors: tuple[str, ...]
    logged_out_selectors: tuple[str, ...]
    captcha_selectors: tuple[str, ...]
    captcha_frame_hosts: tuple[str, ...]
    ban_selectors: tuple[str, ...]
    ban_texts: tuple[str, ...]
    login_path: str
    timeout: float

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectionConfig:
        return cls(
            start_url=settings.TIKTOK_URL,
            origin=settings.tiktok_origin,
            account_info_url=urljoin(settings.TIKTOK_URL, settings.TIKTOK_ACCOUNT_INFO_PATH),
            account_response_patterns=tuple(settings.TIKTOK_ACCOUNT_RESPONSE_PATTERNS),
            session_cookies=tuple(settings.TIKTOK_SESSION_COOKIES),
            guard_cookie=settings.TIKTOK_SESSION_GUARD_COOKIE,
            logged_in_selectors=tuple(settings.TIKTOK_LOGGED_IN_SELECTORS),
            logged_out_selectors=tuple(settings.TIKTOK_LOGGED_OUT_SELECTORS),
            captcha_selectors=tuple(settings.TIKTOK_CAPTCHA_SELECTORS),
            captcha_frame_hosts=tuple(settings.TIKTOK_CAPTCHA_FRAME_HOSTS),
            ban_selectors=tuple(settings.TIKTOK_BAN_SELECTORS),
            ban_texts=tuple(settings.TIKTOK_BAN_TEXTS),
            login_path=settings.TIKTOK_LOGIN_PATH,
            timeout=settings.LOGIN_DETECTION_TIMEOUT,
        )


@dataclass(frozen=True)
class DetectionResult:
    state: LoginState
    method: str
    elapsed_ms: int
    evidence: tuple[str, ...]
    page_loaded: bool
    refreshes: int = 0
    navigation_error: str | None = None

    def deciding_evidence(self) -> str:
        """What the deciding signal saw, e.g. `account info error: session_expired`."""
        prefix = f"{self.method}="
        for entry in reversed(self.evidence):
            if entry.startswith(prefix):
                return entry.split(": ", 1)[-1]
        return self.method


@dataclass
class _PageVisit:
    """What one load (first visit or the soft refresh) of the page has shown so far."""

    # Set once the navigation has either committed or failed; `navigation_error` tells which.
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    document_status: int | None = None
    navigation_error: str | None = None
    loaded: bool = False


async def collect_cookies(context: Any, config: DetectionConfig) -> Signal:
    cookies = await context.cookies([config.origin])
    return read.read_cookies(cookies, config.session_cookies, config.guard_cookie, time.time())


class LoginDetector:
    """Runs the collectors on one page of one browser context and returns a `DetectionResult`."""

    def __init__(self, context: Any, page: Any, config: DetectionConfig):
        self._context = context
        self._page = page
        self._config = config
        self._signals: list[Signal] = []
        self._inbox: asyncio.Queue[Signal] = asyncio.Queue()
        self._visit = _PageVisit()
        self._page_loaded = False
        self._intercepts: set[asyncio.Task[None]] = set()
        self._refreshes = 0

    async def run(self) -> DetectionResult:
        started = time.monotonic()
        deadline = started + self._config.timeout
        decision = await self._run_until(deadline)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        evidence = tuple(f"{s.source.value}={s.verdict.value}: {s.evidence}" for s in self._signals)
        return DetectionResult(
            state=decision.state,
            method=decision.method,
            elapsed_ms=elapsed_ms,
            evidence=evidence,
            page_loaded=self._page_loaded,
            refreshes=self._refreshes,
            navigation_error=self._visit.navigation_error,
        )

    async def _run_until(self, deadline: float) -> Decision:
        cookie_signal = await collect_cookies(self._context, self._config)
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
        share of the budget, and look for walls once more.
        """
        load_deadline = min(deadline, time.monotonic() + self._config.timeout * CONFIRM_LOAD_SHARE)
        with contextlib.suppress(Exception):
            remaining_ms = max(1.0, (load_deadline - time.monotonic()) * 1000)
            await self._page.wait_for_load_state("load", timeout=remaining_ms)
        walls = await self._probe_walls(deadline)
        if walls is not None and walls.verdict is Verdict.WALL:
            self._signals.append(walls)
            return decide(self._signals)
        return decision

    async def _navigate(self, deadline: float, refresh: bool) -> None:
        timeout_ms = max(1.0, (deadline - time.monotonic()) * 1000)
        try:
            if refresh and self._page_loaded:
                response = await self._page.reload(wait_until="commit", timeout=timeout_ms)
            else:
                response = await self._page.goto(
                    self._config.start_url, wait_until="commit", timeout=timeout_ms
                )
            if response is not None:
                self._visit.document_status = response.status
        except Exception as error:  # noqa: BLE001 - any navigation failure means "no page", reported below
            self._visit.navigation_error = str(error).splitlines()[0][:200]
            logger.debug("login.navigation_failed error=%s", self._visit.navigation_error)
        finally:
            # Wakes the collectors either way: a failed load must not keep them waiting to the deadline.
            self._visit.committed.set()

    async def _report(self, collector: Callable[[float], Awaitable[Signal | None]], deadline: float) -> None:
        signal = await collector(deadline)
        if signal is not None:
            self._inbox.put_nowait(signal)

    async def _until_dom_ready(self, deadline: float) -> bool:
        """Wait until the visit's document is parsed; False when it never got that far in time."""
        remaining = deadline - time.monotonic()
        try:
            await asyncio.wait_for(self._visit.committed.wait(), remaining)
            if self._visit.navigation_error is not None:
                return False
            remaining_ms = max(1.0, (deadline - time.monotonic()) * 1000)
            await self._page.wait_for_load_state("domcontentloaded", timeout=remaining_ms)
        except Exception:  # noqa: BLE001 - timeouts and closed pages both mean "not ready"
            return False
        self._visit.loaded = True
        self._page_loaded = True
        return True

    async def _evaluate(self, script: str, argument: Any, deadline: float) -> Any:
        return await asyncio.wait_for(self._page.evaluate(script, argument), deadline - time.monotonic())

    def _on_origin(self) -> bool:
        return self._page.url.startswith(self._config.origin)

    async def _collect_account_api(self, deadline: float) -> Signal | None:
        try:
            await asyncio.wait_for(self._visit.committed.wait(), deadline - time.monotonic())
        except TimeoutError:
            return None
        if self._visit.navigation_error is not None:
            return None
        signal = read.read_account_info(None, None)
        for _attempt in range(2):  # an empty or broken answer is retried once, never read as logged out
            if not self._on_origin():
                return Signal(Source.ACCOUNT_API, Verdict.NONE, "page is not on the TikTok origin")
            try:
                answer = await self._evaluate(_ACCOUNT_FETCH_JS, self._config.account_info_url, deadline)
            except Exception:  # noqa: BLE001 - navigation destroyed the context, or the deadline hit
                answer = None
            answer = answer or {}
            signal = read.read_account_info(answer.get("status"), answer.get("body"))
            if signal.verdict is not Verdict.NONE:
                return signal
        return signal

    async def _collect_rehydration(self, deadline: float) -> Signal | None:
        if not await self._until_dom_ready(deadline):
            return None
        try:
            text = await self._evaluate(_REHYDRATION_JS, None, deadline)
        except Exception:  # noqa: BLE001
            return None
        return read.read_rehydration(text)

    async def _collect_redirect(self, deadline: float) -> Signal | None:
        if not await self._until_dom_ready(deadline):
            return None
        return read.read_redirect(self._page.url, self._config.login_path)

    async def _collect_walls(self, deadline: float) -> Signal | None:
        if not await self._until_dom_ready(deadline):
            return None
        signal = await self._probe_walls(deadline)
        if signal is None or signal.evidence != "empty page":
            return signal
        # Single-page apps fill the body from script: only a body still empty once loaded is a wall.
        with contextlib.suppress(Exception):
            remaining_ms = max(1.0, (deadline - time.monotonic()) * 1000)
            await self._page.wait_for_load_state("load", timeout=remaining_ms)
        return await self._probe_walls(deadline)

    async def _probe_walls(self, deadline: float) -> Signal | None:
        groups = {"captcha": list(self._config.captcha_selectors), "ban": list(self._config.ban_selectors)}
        argument = {"groups": groups, "banTexts": list(self._config.ban_texts)}
        try:
            hits = await self._evaluate(_SELECTOR_HITS_JS, argument, deadline)
        except Exception:  # noqa: BLE001
            return None
        captcha = list(hits["captcha"])
        captcha += [
            frame.url
            for frame in self._page.frames
            if any(host in urlsplit(frame.url).netloc for host in self._config.captcha_frame_hosts)
        ]
        ban = list(hits["ban"]) + list(hits["banText"])
        return read.read_walls(self._visit.document_status, captcha, ban, bool(hits["empty"]))

    async def _collect_header(self, deadline: float) -> Signal | None:
        if not await self._until_dom_ready(deadline):
            return None
        # The header renders late, but waiting for it with the whole budget would leave no time for the
        # soft refresh when it never comes.
        deadline = min(deadline, time.monotonic() + self._config.timeout * HEADER_WAIT_SHARE)
        union = ", ".join(self._config.logged_in_selectors + self._config.logged_out_selectors)
        groups = {
            "in": list(self._config.logged_in_selectors),
            "out": list(self._config.logged_out_selectors),
        }
        argument = {"groups": groups, "banTexts": []}
        try:
            remaining_ms = max(1.0, (deadline - time.monotonic()) * 1000)
            await self._page.wait_for_selector(union, state="attached", timeout=remaining_ms)
            hits = await self._evaluate(_SELECTOR_HITS_JS, argument, deadline)
        except Exception:  # noqa: BLE001 - the header never rendered in time
            return read.read_header([], [])
        return read.read_header(list(hits["in"]), list(hits["out"]))

    def _on_frame_navigated(self, frame: Any) -> None:
        if frame == self._page.main_frame:
            signal = read.read_redirect(frame.url, self._config.login_path)
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
        if any(pattern in response.url for pattern in self._config.account_response_patterns):
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
