"""Remote control figures: Playwright attaching through the service's CDP relay vs to the browser itself."""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

from playwright.async_api import Browser, Page, Playwright
from websockets.asyncio.client import ClientConnection, connect

from tests.support import playwright_client
from tests.support.playwright_client import NOISE_PAGE

# A browser-initiated navigation may open a data: URL; its URL then tells the noise page from the others.
NOISE_URL = "data:text/html;base64," + base64.b64encode(NOISE_PAGE.encode()).decode()
MIN_SCREENSHOT_BYTES = 5_000_000


async def open_noise_page(playwright: Playwright, endpoint: str) -> None:
    """Once, before the runs: a page in the browser's default context that stays open for all of them."""
    browser, _ = await playwright_client.connect(playwright, endpoint)
    try:
        await playwright_client.open_drawn(browser.contexts[0], NOISE_URL)
    finally:
        await browser.close()  # over CDP this only disconnects; the browser and the page stay


def noise_page(browser: Browser) -> Page:
    return next(page for page in browser.contexts[0].pages if page.url.startswith("data:text/html"))


async def attach_and_screenshot(playwright: Playwright, endpoint: str) -> tuple[float, float, int]:
    """(attach ms, full-page screenshot ms, PNG bytes) for one fresh connection to `endpoint`."""
    browser, attach_ms = await playwright_client.connect(playwright, endpoint)
    try:
        png, shot_ms = await playwright_client.full_page_screenshot(noise_page(browser))
    finally:
        await browser.close()
    return attach_ms, shot_ms, len(png)


async def raw_screenshot(endpoint: str) -> tuple[float, int]:
    """(ms, base64 bytes) of the same full-page screenshot taken by a bare CDP client (Python websockets).

    Playwright's Node client and Chromium's DevTools server make a pair of their own; this one shows
    what the relay adds to the bytes of one ~12 MB message without them.
    """
    ids = itertools.count(1)

    async def call(cdp: ClientConnection, method: str, params: dict, session: str | None = None) -> dict:
        message_id = next(ids)
        message = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await cdp.send(json.dumps(message))
        while True:
            answer = json.loads(await cdp.recv())
            if answer.get("id") == message_id:
                return answer["result"]

    async with connect(endpoint, max_size=None, compression=None) as cdp:
        targets = (await call(cdp, "Target.getTargets", {}))["targetInfos"]
        target = next(t for t in targets if t["type"] == "page" and t["url"].startswith("data:text/html"))
        attached = await call(cdp, "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        session = attached["sessionId"]
        size = (await call(cdp, "Page.getLayoutMetrics", {}, session))["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        params = {"format": "png", "captureBeyondViewport": True, "clip": clip}
        started = time.perf_counter()
        data = (await call(cdp, "Page.captureScreenshot", params, session))["data"]
        return (time.perf_counter() - started) * 1000, len(data)


async def relay_vs_direct(
    playwright: Playwright, endpoints: dict[str, str], pairs: int, noise_on: list[str]
) -> dict[str, Any]:
    """Every endpoint once per round, the order rotated round by round, so load drifts hit all alike.

    `endpoints` names each way in (`relay`, `direct`, …); `noise_on` holds one endpoint of each distinct
    browser, where the noise page is opened first.
    """
    for endpoint in noise_on:
        await open_noise_page(playwright, endpoint)
    for endpoint in endpoints.values():  # untimed: first connections pay one-off costs
        await attach_and_screenshot(playwright, endpoint)
    samples: dict[str, dict[str, list[float]]] = {
        side: {"attach_ms": [], "screenshot_ms": [], "png_bytes": [], "raw_screenshot_ms": []}
        for side in endpoints
    }
    names = list(endpoints)
    for run in range(pairs):
        shift = run % len(names)
        order = names[shift:] + names[:shift]
        for side in order:
            attach_ms, shot_ms, size = await attach_and_screenshot(playwright, endpoints[side])
            samples[side]["attach_ms"].append(attach_ms)
            samples[side]["screenshot_ms"].append(shot_ms)
            samples[side]["png_bytes"].append(size)
        for side in order:
            raw_ms, _ = await raw_screenshot(endpoints[side])
            samples[side]["raw_screenshot_ms"].append(raw_ms)
    smallest = min(min(s["png_bytes"]) for s in samples.values())
    if smallest < MIN_SCREENSHOT_BYTES:
        raise RuntimeError(f"the noise screenshot is {smallest} bytes, below {MIN_SCREENSHOT_BYTES}")
    return samples
