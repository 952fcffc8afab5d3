"""What a page's bot checks read from a session's browser: only what a real desktop Chrome shows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.services.common.browser import browser_version, find_browser
from tests.support.harness import running_service
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

# Each session draws its own fingerprint (screen, window, GPU): several sessions, several fingerprints.
SESSIONS = 3


def major_of(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found, f"no {pattern!r} in {text!r}"
    return found.group(1)


def language_tags(accept_language: str) -> list[str]:
    """`en-US,en;q=0.9` -> ["en-US", "en"]."""
    return [part.split(";")[0].strip() for part in accept_language.split(",")]


async def bot_check(page: Any, site: StandinServer) -> dict[str, Any]:
    await page.goto(site.url_for("__standin/bot-check"))
    # The main world: where the page's own scripts (and TikTok's) read these values.
    return await page.evaluate("window.__botCheck", isolated_context=False)


async def test_sessions_show_bot_checks_what_a_real_chrome_shows(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    major = (await browser_version(find_browser(None))).split(".")[0]
    async with running_service(tmp_path, site.url, MAX_SESSIONS=SESSIONS) as service:
        for _ in range(SESSIONS):
            response = await service.client.post("/tiktok/session")
            assert response.status_code == 200, response.text
            executor = (await service.service.locate(response.json()["session_id"])).executor
            seen = await bot_check(executor.active_page(), site)
            headers = seen["headers"]
            fingerprint = executor.identity.fingerprint
            window = (
                f"{seen['outerWidth']}x{seen['outerHeight']} vs {seen['innerWidth']}x{seen['innerHeight']}"
            )

            assert seen["webdriver"] is False
            assert "HeadlessChrome" not in seen["userAgent"]
            assert "HeadlessChrome" not in headers["user-agent"]
            # A window is never smaller than the viewport inside it.
            assert seen["outerWidth"] >= seen["innerWidth"], window
            assert seen["outerHeight"] >= seen["innerHeight"], window
            # navigator.languages, the Accept-Language header and a worker's view are one list.
            assert headers["accept-language"] == "en-US,en;q=0.9"
            assert seen["languages"] == language_tags(headers["accept-language"]) == ["en-US", "en"]
            assert seen["worker"]["languages"] == seen["languages"]
            # A fresh profile has never been asked for notifications.
            assert seen["notificationPermission"] == "default"
            assert seen["notificationQuery"] == "prompt"
            # The fingerprint's GPU, never the software renderer Chromium really uses here.
            assert not re.search("swiftshader|llvmpipe", seen["webglRenderer"], re.IGNORECASE)
            assert seen["webglRenderer"] == fingerprint.videoCard.renderer
            assert seen["webglVendor"] == fingerprint.videoCard.vendor
            # One browser version everywhere: User-Agent, userAgentData and the client hints.
            brands = {brand["brand"]: brand["version"] for brand in seen["brands"]}
            assert major_of(r"Chrome/(\d+)\.", seen["userAgent"]) == major
            assert brands["Chromium"] == major
            assert major_of(r'"Chromium";v="(\d+)"', headers["sec-ch-ua"]) == major
