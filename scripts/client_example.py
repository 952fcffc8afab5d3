"""Remote control of a TikTok session with Playwright: create, attach over CDP, use, end.

    .venv/bin/python scripts/client_example.py

Environment (all optional): SERVICE_URL (default http://127.0.0.1:5681), API_KEY (default: the key
`make run` generated into ./user_data/api_key), TIKTOK_URL (default https://www.tiktok.com/; the page
opened is its /foryou), SCREENSHOT (default tiktok.png).
Needs `httpx` and `playwright` (`pip install httpx playwright`); no browser download: Playwright only
connects to the session's browser.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urljoin

import httpx
from playwright.sync_api import sync_playwright

SERVICE_URL = os.environ.get("SERVICE_URL", "http://127.0.0.1:5681")
API_KEY = os.environ.get("API_KEY") or Path("user_data/api_key").read_text().strip()
TIKTOK_URL = os.environ.get("TIKTOK_URL", "https://www.tiktok.com/")
SCREENSHOT = os.environ.get("SCREENSHOT", "tiktok.png")

with httpx.Client(base_url=SERVICE_URL, headers={"X-API-Key": API_KEY}, timeout=60) as api:
    # Clone, launch, prove the login: 200 only for a session that is logged in.
    created = api.post("/tiktok/session")
    created.raise_for_status()
    session = created.json()
    session_id, cdp_url = session["session_id"], session["cdp_url"]
    print("session", session_id)
    try:
        with sync_playwright() as playwright:
            # cdp_url carries the session's own token: no header needed on the WebSocket.
            browser = playwright.chromium.connect_over_cdp(cdp_url)
            context = browser.contexts[0]  # the session's logged-in persistent context
            names = sorted({cookie["name"] for cookie in context.cookies(TIKTOK_URL)})
            print("cookies:", ", ".join(names))
            page = context.new_page()
            page.goto(urljoin(TIKTOK_URL, "foryou"))
            print("opened", page.url, "-", page.title())
            page.screenshot(path=SCREENSHOT)
            print("screenshot", SCREENSHOT, Path(SCREENSHOT).stat().st_size, "bytes")
            page.close()
            # Disconnects only: the session's browser keeps running until it is deleted.
            browser.close()
    finally:
        ended = api.delete(f"/tiktok/session/{session_id}")
        print("DELETE", ended.status_code, ended.json()["message"])
