"""Probes that look at a live TikTok page and report one `Signal` each. No decisions here.

Every probe is bounded by the caller's deadline (a `time.monotonic()` value) and treats a page that
navigated away or closed mid-probe as "no answer", never as an answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.core.config import DetectionSettings
from app.services.tiktok.login import signal_readers as read
from app.services.tiktok.login.login_signals import Signal, Source, Verdict

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
  // 'complete' is set in the same task that runs the load handlers: whatever they draw is in the DOM now.
  result.complete = document.readyState === 'complete';
  return result;
}
"""

# Waits inside the isolated world. Playwright's own `wait_for_selector` would first compile its injected
# selector engine into a fresh world: ~35 ms of a 2-core machine, on the critical path of every cold start.
_WAIT_FOR_ANY_JS = """
({selectors, timeoutMs}) => new Promise((resolve) => {
  const present = () => selectors.some((selector) => {
    try { return document.querySelector(selector) !== null; } catch (error) { return false; }
  });
  if (present()) { resolve(true); return; }
  const observer = new MutationObserver(() => {
    if (present()) { observer.disconnect(); clearTimeout(timer); resolve(true); }
  });
  observer.observe(document, {childList: true, subtree: true, attributes: true});
  const timer = setTimeout(() => { observer.disconnect(); resolve(false); }, timeoutMs);
})
"""


HEADER_ANSWER_MARGIN_MS = 50.0
HEADER_DOCUMENTS = 3  # client-side redirects followed while waiting for the header


def remaining_ms(deadline: float) -> float:
    return max(1.0, (deadline - time.monotonic()) * 1000)


async def evaluate(page: Any, script: str, argument: Any, deadline: float) -> Any:
    return await asyncio.wait_for(page.evaluate(script, argument), deadline - time.monotonic())


async def collect_cookies(context: Any, origin: str, knobs: DetectionSettings) -> Signal:
    # Through the browser context: TikTok's session cookies are HttpOnly, invisible to page scripts.
    cookies = await context.cookies([origin])
    return read.read_cookies(cookies, knobs.SESSION_COOKIES, knobs.SESSION_GUARD_COOKIE, time.time())


async def fetch_account_info(page: Any, url: str, origin: str, deadline: float) -> Signal:
    """The in-page account lookup; an empty or broken answer is retried once, never read as logged out."""
    signal = read.read_account_info(None, None)
    for _attempt in range(2):
        if not page.url.startswith(origin):
            return Signal(Source.ACCOUNT_API, Verdict.NONE, "page is not on the TikTok origin")
        try:
            answer = await evaluate(page, _ACCOUNT_FETCH_JS, url, deadline)
        except Exception:  # noqa: BLE001 - navigation destroyed the context, or the deadline hit
            answer = None
        answer = answer or {}
        signal = read.read_account_info(answer.get("status"), answer.get("body"))
        if signal.verdict is not Verdict.NONE:
            return signal
    return signal


async def read_rehydration_block(page: Any, deadline: float) -> Signal | None:
    try:
        text = await evaluate(page, _REHYDRATION_JS, None, deadline)
    except Exception:  # noqa: BLE001 - the document went away
        return None
    return read.read_rehydration(text)


@dataclass(frozen=True)
class WallCheck:
    signal: Signal
    # The document had finished loading (its load handlers had run) when it was looked at.
    after_load: bool


async def probe_walls(
    page: Any, knobs: DetectionSettings, document_status: int | None, deadline: float
) -> Signal | None:
    check = await check_walls(page, knobs, document_status, deadline)
    return check.signal if check is not None else None


async def check_walls(
    page: Any, knobs: DetectionSettings, document_status: int | None, deadline: float
) -> WallCheck | None:
    groups = {"captcha": list(knobs.CAPTCHA_SELECTORS), "ban": list(knobs.BAN_SELECTORS)}
    argument = {"groups": groups, "banTexts": list(knobs.BAN_TEXTS)}
    try:
        hits = await evaluate(page, _SELECTOR_HITS_JS, argument, deadline)
    except Exception:  # noqa: BLE001
        return None
    captcha = list(hits["captcha"])
    captcha += [
        frame.url
        for frame in page.frames
        if any(host in urlsplit(frame.url).netloc for host in knobs.CAPTCHA_FRAME_HOSTS)
    ]
    ban = list(hits["ban"]) + list(hits["banText"])
    signal = read.read_walls(document_status, captcha, ban, bool(hits["empty"]))
    return WallCheck(signal, after_load=bool(hits["complete"]))


async def wait_for_header(page: Any, knobs: DetectionSettings, deadline: float) -> Signal:
    """The header renders late: wait for any of its elements until `deadline`, then read both states."""
    selectors = list(knobs.LOGGED_IN_SELECTORS + knobs.LOGGED_OUT_SELECTORS)
    groups = {"in": list(knobs.LOGGED_IN_SELECTORS), "out": list(knobs.LOGGED_OUT_SELECTORS)}
    for _document in range(HEADER_DOCUMENTS):
        # The page-side timer ends the wait a little before the deadline, so the answer still gets back.
        page_wait_ms = max(0.0, remaining_ms(deadline) - HEADER_ANSWER_MARGIN_MS)
        waiting = {"selectors": selectors, "timeoutMs": page_wait_ms}
        try:
            if not await evaluate(page, _WAIT_FOR_ANY_JS, waiting, deadline):
                break
            hits = await evaluate(page, _SELECTOR_HITS_JS, {"groups": groups, "banTexts": []}, deadline)
            return read.read_header(list(hits["in"]), list(hits["out"]))
        except (
            Exception
        ):  # noqa: BLE001 - the document went away (a client-side redirect) or the deadline hit
            if page.is_closed() or time.monotonic() >= deadline:
                break
        # Wait on the document that replaced it, as Playwright's own selector wait would.
        try:
            await page.wait_for_load_state("domcontentloaded", timeout=remaining_ms(deadline))
        except Exception:  # noqa: BLE001
            break
    return read.read_header([], [])
