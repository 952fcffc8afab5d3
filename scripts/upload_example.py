"""Upload a video into a TikTok session's browser: store the file with the service, set it on a file input.

    .venv/bin/python scripts/upload_example.py video.mp4

Environment (all optional): SERVICE_URL (default http://127.0.0.1:5681), API_KEY (default: the key
`make run` generated into ./user_data/api_key), TIKTOK_URL (default https://www.tiktok.com/; the page
opened is its /upload). Needs `httpx` and `playwright` (`pip install httpx playwright`).

The browser runs on the service's machine, in its own sandbox: a path on the client's machine means
nothing to it. The file goes to the service first (`POST /tiktok/session/{id}/files`), which answers
the path the browser sees; CDP's `DOM.setFileInputFiles` sets that path on the input. Playwright's own
`set_input_files` does not fit here: over `connect_over_cdp` it sends the file's bytes from the
client, through the DevTools connection, instead of naming a file the browser already has.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urljoin

import httpx
from playwright.sync_api import sync_playwright

SERVICE_URL = os.environ.get("SERVICE_URL", "http://127.0.0.1:5681")
API_KEY = os.environ.get("API_KEY") or Path("user_data/api_key").read_text().strip()
TIKTOK_URL = os.environ.get("TIKTOK_URL", "https://www.tiktok.com/")
VIDEO = Path(sys.argv[1] if len(sys.argv) > 1 else "video.mp4")
FILE_INPUT = 'input[type="file"]'

with httpx.Client(base_url=SERVICE_URL, headers={"X-API-Key": API_KEY}, timeout=120) as api:
    session = api.post("/tiktok/session").raise_for_status().json()
    session_id = session["session_id"]
    try:
        # Streamed from the file, up to MAX_UPLOAD_BYTES; 413 beyond it.
        with VIDEO.open("rb") as video:
            stored = api.post(
                f"/tiktok/session/{session_id}/files",
                params={"name": VIDEO.name},
                content=video,
                headers={"Content-Type": "application/octet-stream"},
            )
        stored.raise_for_status()
        path = stored.json()["path"]  # e.g. /session/uploads/video.mp4: the browser's view
        print("stored", VIDEO.name, stored.json()["size"], "bytes as", path)
        with sync_playwright() as playwright:
            browser = playwright.chromium.connect_over_cdp(session["cdp_url"])
            page = browser.contexts[0].new_page()
            page.goto(urljoin(TIKTOK_URL, "upload"))
            page.locator(FILE_INPUT).first.wait_for(state="attached")
            cdp = page.context.new_cdp_session(page)
            document = cdp.send("DOM.getDocument", {"depth": 0})
            node = cdp.send(
                "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": FILE_INPUT}
            )
            cdp.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [path]})
            chosen = page.locator(FILE_INPUT).first.evaluate(
                "input => [...input.files].map(f => [f.name, f.size])"
            )
            print("file input holds", chosen)
            # From here the page goes on as if a person had picked the file (TikTok starts uploading).
            browser.close()  # disconnects only; the session lives until it is deleted
    finally:
        ended = api.delete(f"/tiktok/session/{session_id}")
        print("DELETE", ended.status_code)
