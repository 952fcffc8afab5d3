"""The one Playwright CDP client of the tests and the bench.

Run as a program, it is a client in a process of its own (and with Playwright's own Node driver), so
the relay or service under test sees a real remote client and the test's event loop, which also runs
the relay or the service, is never blocked by it:

    python -m tests.support.playwright_client

It prints {"ready": true} once Playwright has started, then answers each JSON command line on stdin
with one JSON line:
    connect url=U         connect_over_cdp(U): {"connected": true}
    pages                 contexts count and the URLs of contexts[0]'s pages
    viewer                URL, title and the stand-in's logged-in uniqueId of the current page
    cookie_names          the names of contexts[0]'s cookies
    open url=U            a new page in contexts[0] at U, once its window.drawn is true (NOISE_PAGE)
    open_text url=U       a new page in contexts[0] at U: HTTP status and body text
    screenshot            full-page PNG of the current page: signature, size, IHDR dimensions, ms
    big_string repeat=N   `"CDP-é✓😀-".repeat(N)` evaluated in the page: UTF-8 size and sha256
    send_big chars=N      page.evaluate("s => s.length", "x" * N): an N-byte command to the browser
    evaluate expression=E page.evaluate(E)
    busy seconds=S interval=I  one small command every I seconds for S seconds
    browser_close         Browser.close on a browser CDP session
    quit                  disconnect (Playwright stops; the browser is not closed)
The current page is the last one opened, else the first page of contexts[0].

`PlaywrightClient` is the test's side of that process. The bench times `connect` and
`full_page_screenshot` in its own process instead: a child's start-up would land in its figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import struct
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any

from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

from tests.support import REPO_ROOT

MODULE = "tests.support.playwright_client"
ANSWER_DEADLINE = 90.0  # one command on a loaded 2-core machine, 30 MB results included
KILL_DEADLINE = 10.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A tall page of random RGB noise: PNG cannot compress it, so a full-page screenshot of 1280 x 2400
# pixels is well over 5 MB (about 3 bytes per pixel; about 12 MB as a base64 CDP message).
NOISE_PAGE = """<!doctype html><title>noise</title>
<style>body { margin: 0 } canvas { display: block }</style>
<script>
window.drawn = false;
addEventListener("load", () => {
  for (let n = 0; n < 6; n++) {
    const canvas = document.createElement("canvas");
    canvas.width = 1280; canvas.height = 400;
    document.body.appendChild(canvas);
    const context = canvas.getContext("2d");
    const image = context.createImageData(canvas.width, canvas.height);
    const pixels = new Uint32Array(image.data.buffer);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (Math.random() * 0x1000000) | 0xff000000;
    context.putImageData(image, 0, 0);
  }
  window.drawn = true;
});
</script>"""

# The stand-in's rehydration data names the logged-in user, as tiktok.com's does.
VIEWER = """() => {
  const block = document.getElementById("__UNIVERSAL_DATA_FOR_REHYDRATION__");
  const user = JSON.parse(block.textContent).__DEFAULT_SCOPE__["webapp.app-context"].user;
  return user ? user.uniqueId : null;
}"""


# --- what a client does, in whichever process runs it ---------------------------------------------


async def connect(playwright: Playwright, url: str) -> tuple[Browser, float]:
    """The browser behind a CDP endpoint, and how many ms connect_over_cdp took."""
    started = time.perf_counter()
    browser = await playwright.chromium.connect_over_cdp(url)
    return browser, (time.perf_counter() - started) * 1000


async def open_drawn(context: BrowserContext, url: str) -> Page:
    """A new page at `url`, once its `window.drawn` is true: NOISE_PAGE draws after its load event."""
    page = await context.new_page()
    await page.goto(url)
    await page.wait_for_function("window.drawn === true")
    return page


async def full_page_screenshot(page: Page) -> tuple[bytes, float]:
    """The page's full-page PNG, and how many ms it took."""
    started = time.perf_counter()
    png = await page.screenshot(full_page=True, type="png")
    return png, (time.perf_counter() - started) * 1000


def png_dimensions(png: bytes) -> tuple[int, int]:
    # Signature (8 bytes), IHDR length + type (8 bytes), then width and height as big-endian u32.
    if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        return (0, 0)
    width, height = struct.unpack(">II", png[16:24])
    return (width, height)


# --- the client as a program: one JSON line in, one JSON line out -----------------------------------


async def handle(browser: Browser, state: dict[str, Page], command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    context = browser.contexts[0]
    if op == "pages":
        return {"contexts": len(browser.contexts), "urls": [p.url for p in context.pages]}
    if op == "cookie_names":
        return {"names": sorted({cookie["name"] for cookie in await context.cookies()})}
    if op == "open":
        state["page"] = await open_drawn(context, command["url"])
        return {"url": state["page"].url}
    if op == "open_text":
        state["page"] = await context.new_page()
        response = await state["page"].goto(command["url"])
        assert response is not None
        return {"status": response.status, "text": await state["page"].inner_text("body")}
    if op == "browser_close":
        cdp = await browser.new_browser_cdp_session()
        try:
            await cdp.send("Browser.close")
        except Exception as exc:  # the browser may exit before it answers
            return {"sent": True, "error": type(exc).__name__}
        return {"sent": True, "error": None}
    page = state.get("page") or context.pages[0]
    if op == "viewer":
        return {"url": page.url, "title": await page.title(), "unique_id": await page.evaluate(VIEWER)}
    if op == "screenshot":
        png, ms = await full_page_screenshot(page)
        width, height = png_dimensions(png)
        return {"signature": png[:8].hex(), "bytes": len(png), "width": width, "height": height, "ms": ms}
    if op == "big_string":
        text = await page.evaluate("n => 'CDP-é✓😀-'.repeat(n)", command["repeat"])
        data = text.encode()
        return {"utf8_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if op == "send_big":
        return {"length": await page.evaluate("s => s.length", "x" * command["chars"])}
    if op == "evaluate":
        return {"value": await page.evaluate(command["expression"])}
    if op == "busy":
        started = time.monotonic()
        count = 0
        while time.monotonic() - started < command["seconds"]:
            assert await page.evaluate("6 * 7") == 42
            count += 1
            await asyncio.sleep(command["interval"])
        return {"count": count, "seconds": time.monotonic() - started}
    raise ValueError(f"unknown op {op!r}")


def emit(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


async def main() -> None:
    async with async_playwright() as playwright:
        emit({"ready": True})
        loop = asyncio.get_running_loop()
        browser: Browser | None = None
        state: dict[str, Page] = {}
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            command = json.loads(line)
            if command["op"] == "quit":
                break
            try:
                if command["op"] == "connect":
                    browser, _ = await connect(playwright, command["url"])
                    emit({"connected": True})
                else:
                    assert browser is not None, "connect first"
                    emit(await handle(browser, state, command))
            except Exception as exc:
                emit({"error": f"{type(exc).__name__}: {exc}"})


# --- the test's side of the program -----------------------------------------------------------------


class PlaywrightClient:
    """The program above in its own process group: one JSON command line in, one JSON answer line out."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: IO[bytes]) -> None:
        self.process = process
        self._stderr = stderr

    @classmethod
    async def start(cls) -> PlaywrightClient:
        """Up once Playwright has started; nothing attached yet (`connect` does)."""
        # A file: nobody drains a pipe while the test runs. Closed by kill(), which every caller ends with.
        stderr = tempfile.TemporaryFile()  # noqa: SIM115
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            MODULE,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,  # with Playwright's Node driver, killed as one group
        )
        client = cls(process, stderr)
        try:
            assert (await client._answer()) == {"ready": True}
        except BaseException:
            await client.kill()
            raise
        return client

    @classmethod
    async def attach(cls, url: str) -> PlaywrightClient:
        """Started and connected to `url`; the caller kills it."""
        client = await cls.start()
        try:
            await client.connect(url)
        except BaseException:
            await client.kill()
            raise
        return client

    async def connect(self, url: str) -> None:
        assert await self.run("connect", url=url) == {"connected": True}

    async def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), ANSWER_DEADLINE)
        except TimeoutError:
            raise AssertionError(f"the Playwright client did not answer:\n{self.stderr_text()}") from None
        if not line:
            raise AssertionError(f"the Playwright client exited:\n{self.stderr_text()}")
        answer: dict[str, Any] = json.loads(line)
        assert "error" not in answer or answer.get("sent"), answer
        return answer

    async def run(self, op: str, **arguments: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **arguments}) + "\n").encode())
        await self.process.stdin.drain()
        return await self._answer()

    async def quit(self) -> int:
        """Disconnect the way a finished script does: Playwright stops, the browser is not closed."""
        assert self.process.stdin is not None
        self.process.stdin.write(b'{"op": "quit"}\n')
        await self.process.stdin.drain()
        return await asyncio.wait_for(self.process.wait(), ANSWER_DEADLINE)

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await asyncio.wait_for(self.process.wait(), KILL_DEADLINE)
        self._stderr.close()


@asynccontextmanager
async def playwright_clients() -> AsyncIterator[list[PlaywrightClient]]:
    """Every Playwright client a test starts (it appends them), killed at the end whatever happened."""
    clients: list[PlaywrightClient] = []
    try:
        yield clients
    finally:
        for client in clients:
            await client.kill()


async def attach(clients: list[PlaywrightClient], url: str) -> PlaywrightClient:
    """A client connected to `url`, in `clients` so that the test's `playwright_clients` kills it."""
    client = await PlaywrightClient.attach(url)
    clients.append(client)
    return client


if __name__ == "__main__":
    asyncio.run(main())
