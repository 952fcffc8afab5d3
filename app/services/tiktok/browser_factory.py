"""The one way to build a TikTok browser for a profile directory, for the service and the CLI alike."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.core.config import Settings
from app.services.common.browser import BrowserOptions, browser_version, chromium_flags, find_browser
from app.services.common.driver import SharedDriver
from app.services.common.fingerprint import FingerprintSource
from app.services.tiktok.executor import TiktokExecutor


class BrowserFactory:
    """Options from the settings, a fresh BrowserForge fingerprint each, DevTools on loopback.

    Every browser it builds is launched through one Patchright driver, started on first use and
    stopped by `aclose()`.
    """

    def __init__(self, settings: Settings):
        self._settings = settings
        self._fingerprints = FingerprintSource()
        self._driver = SharedDriver()

    def prepare(self) -> None:
        """Start sampling the first fingerprint now, so the first session does not wait for it."""
        self._fingerprints.prepare()

    async def executor_for(self, profile_dir: Path, *, headless: bool | None = None) -> TiktokExecutor:
        settings = self._settings
        executable = await asyncio.to_thread(find_browser, settings.BROWSER_EXECUTABLE)
        options = BrowserOptions(
            executable=executable,
            headless=settings.HEADLESS if headless is None else headless,
            proxy=settings.PROXY,
            flags=chromium_flags(),
            # Remote control attaches here (through the service's relay); loopback only.
            devtools_port=True,
        )
        identity = await self._fingerprints.take(await browser_version(executable))
        return TiktokExecutor(profile_dir, options, identity, self._driver)

    async def aclose(self) -> None:
        await self._fingerprints.aclose()
        await self._driver.aclose()
