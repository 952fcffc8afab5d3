"""A Playwright CDP client in its own process, driven line by line: one JSON command in, one JSON answer out.

    python tests/clients/playwright_client.py ws://127.0.0.1:<port>/cdp

Its own process (and Playwright's own Node driver) so the relay under test sees a real remote client,
and so the test's event loop, which also runs the relay, is never blocked by the client.
Commands (one JSON object per stdin line), each answered by one JSON line:
    pages                 contexts count and the URLs of contexts[0]'s pages
    open url=U            a new page in contexts[0] at U, once its window.drawn is true
    screenshot            full-page PNG of the opened page: size and IHDR dimensions
    big_string repeat=N   `"CDP-é✓😀-".repeat(N)` evaluated in the page: UTF-8 size and sha256
    send_big chars=N      page.evaluate("s => s.length", "x" * N): an N-byte command to the browser
    evaluate expression=E page.evaluate(E) on the opened page (or the first page)
    browser_close         Browser.close on a browser CDP session
    quit                  disconnect (Playwright stops; the browser is not closed)
e.g. {"op": "open", "url": "http://127.0.0.1:8000/noise"}.
The first line printed is {"attached": ..., "attach_ms": ...} once connect_over_cdp returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import sys
import time
from typing import Any

from playwright.async_api import Browser, Page, async_playwright


def emit(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def png_dimensions(png: bytes) -> tuple[int, int]:
    # Signature (8 bytes), IHDR length + type (8 bytes), then width and height as big-endian u32.
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return (0, 0)
    width, height = struct.unpack(">II", png[16:24])
    return (width, height)


async def handle(browser: Browser, state: dict[str, Page], command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    context = browser.contexts[0]
    if op == "pages":
        return {"contexts": len(browser.contexts), "urls": [page.url for page in context.pages]}
    if op == "open":
        page = await context.new_page()
        await page.goto(command["url"])
        await page.wait_for_function("window.drawn === true")
        state["page"] = page
        return {"url": page.url}
    if op == "screenshot":
        started = time.perf_counter()
        png = await state["page"].screenshot(full_page=True)
        width, height = png_dimensions(png)
        return {
            "bytes": len(png),
            "width": width,
            "height": height,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
    if op == "big_string":
        started = time.perf_counter()
        text = await state["page"].evaluate("n => 'CDP-é✓😀-'.repeat(n)", command["repeat"])
        data = text.encode()
        return {
            "utf8_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "ms": round((time.perf_counter() - started) * 1000, 1),
        }
    if op == "send_big":
        started = time.perf_counter()
        length = await state["page"].evaluate("s => s.length", "x" * command["chars"])
        return {"length": length, "ms": round((time.perf_counter() - started) * 1000, 1)}
    if op == "evaluate":
        page = state.get("page") or context.pages[0]
        return {"value": await page.evaluate(command["expression"])}
    if op == "browser_close":
        cdp = await browser.new_browser_cdp_session()
        try:
            await cdp.send("Browser.close")
        except Exception as exc:  # the browser may exit before it answers
            return {"sent": True, "error": type(exc).__name__}
        return {"sent": True, "error": None}
    raise ValueError(f"unknown op {op!r}")


async def main(url: str) -> None:
    async with async_playwright() as playwright:
        started = time.perf_counter()
        browser = await playwright.chromium.connect_over_cdp(url)
        emit({"attached": True, "attach_ms": round((time.perf_counter() - started) * 1000, 1)})
        state: dict[str, Page] = {}
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command["op"] == "quit":
                break
            try:
                emit(await handle(browser, state, command))
            except Exception as exc:
                emit({"error": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
