"""Live view figures (SPEC §7, §13): frames a second on an animated page, input-to-page latency.

Measured as a person's browser would see them, through the service's stream (`…/view/stream`), on
a live session. The page is set up through the session's `cdp_url`: an element that moves every
display frame, and a keydown recorder. Latency is the time from sending a keydown over the stream to
the page's keydown handler running, both read from the machine's wall clock (the page's
`performance.timeOrigin + performance.now()`, the sender's `time.time()`): the benchmark runs on the
service's machine, so the two clocks are the same clock.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

import httpx
from playwright.async_api import async_playwright
from websockets.asyncio.client import ClientConnection, connect

from bench.stats import percentile

FPS_SECONDS = 3.0
KEYS = 40
KEY_SPACING = 0.05  # seconds between two keys: twice as fast as a fast typist
WINDOW = {"type": "size", "width": 1280, "height": 720}
DEADLINE = 30.0

BENCH_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>live view bench</title>
<style>body{margin:0;background:#1b1f2a} #box{position:absolute;top:160px;width:160px;height:160px;
background:#ff5a36}</style></head><body><div id="box"></div><script>
// set_content reuses the page's window (document.open): nothing is declared at the top level, so a
// second run declares nothing twice, and the recorder starts empty.
(() => {
  const keydowns = window.keydowns = [];
  addEventListener("keydown", () => keydowns.push(performance.timeOrigin + performance.now()), true);
  const box = document.getElementById("box");
  (function step(t) { box.style.left = (t / 3 % 1000) + "px"; requestAnimationFrame(step); })(0);
})();
</script></body></html>"""


async def _frames_for(socket: ClientConnection, seconds: float) -> tuple[int, float, list[int]]:
    """Pictures received over `seconds` after the first one: (count, elapsed, sizes in bytes)."""
    while not isinstance(await socket.recv(), bytes):
        pass
    sizes: list[int] = []
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        try:
            message = await asyncio.wait_for(socket.recv(), seconds - elapsed)
        except TimeoutError:
            break
        if isinstance(message, bytes):
            sizes.append(len(message))
    return len(sizes), time.monotonic() - started, sizes


async def _drain(socket: ClientConnection) -> None:
    """Keep reading (and so acknowledging) frames while keys are sent."""
    async for _message in socket:
        pass


async def measure(base_url: str, api_key: str, session_id: str) -> dict[str, Any]:
    headers = {"X-API-Key": api_key}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=DEADLINE) as client:
        info = (await client.get(f"/tiktok/session/{session_id}")).raise_for_status().json()
    stream = f"{base_url.replace('http', 'ws', 1)}/tiktok/session/{session_id}/view/stream"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(info["cdp_url"], timeout=DEADLINE * 1000)
        try:
            page = browser.contexts[0].pages[-1]
            await page.set_content(BENCH_PAGE)
            async with connect(stream, additional_headers=headers, proxy=None, max_size=None) as socket:
                await socket.send(json.dumps(WINDOW))
                frames, elapsed, sizes = await _frames_for(socket, FPS_SECONDS)
                draining = asyncio.create_task(_drain(socket))
                sent = []
                for _ in range(KEYS):
                    sent.append(time.time() * 1000)
                    await socket.send(json.dumps({"type": "keydown", "key": "a", "code": "KeyA"}))
                    await socket.send(json.dumps({"type": "keyup", "key": "a", "code": "KeyA"}))
                    await asyncio.sleep(KEY_SPACING)
                deadline = time.monotonic() + DEADLINE
                arrived: list[float] = await page.evaluate("keydowns")
                while len(arrived) < KEYS and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    arrived = await page.evaluate("keydowns")
                draining.cancel()
        finally:
            await browser.close()  # over CDP this only disconnects
    latencies = [page_ms - sent_ms for sent_ms, page_ms in zip(sent, arrived, strict=False)]
    return {
        "fps": round(frames / elapsed, 1) if elapsed else 0.0,
        "frames": frames,
        "seconds": round(elapsed, 2),
        "frame_kib_median": round(statistics.median(sizes) / 1024, 1) if sizes else 0.0,
        "keys_sent": KEYS,
        "keys_arrived": len(arrived),
        "latency_ms": {
            "p50": round(percentile(latencies, 0.5), 1) if latencies else None,
            "p95": round(percentile(latencies, 0.95), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
            "samples": [round(value, 2) for value in latencies],
        },
    }
