"""TikTok's browser: a fingerprinted Scrapling stealth session on a profile, asked who is logged in."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapling.fetchers import AsyncStealthySession

from app.services.common.browser import BrowserOptions
from app.services.common.executor import AbstractBrowsingExecutor
from app.services.common.fingerprint import BrowserIdentity
from app.services.tiktok.utils.login_detection import DetectionConfig, DetectionResult, LoginDetector

logger = logging.getLogger(__name__)


def proxy_settings(proxy_url: str) -> dict[str, str]:
    """Playwright wants the credentials apart from the server address."""
    parts = urlsplit(proxy_url)
    server = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    settings = {"server": server}
    if parts.username:
        settings["username"] = parts.username
    if parts.password:
        settings["password"] = parts.password
    return settings


class TiktokExecutor(AbstractBrowsingExecutor):
    def __init__(self, profile_dir: Path, options: BrowserOptions, identity: BrowserIdentity):
        super().__init__(profile_dir)
        self._options = options
        self.identity = identity
        self._stealth: AsyncStealthySession | None = None

    async def _launch(self) -> Any:
        options = self._options
        self._stealth = AsyncStealthySession(
            headless=options.headless,
            user_data_dir=str(self.profile_dir.resolve()),
            executable_path=str(options.executable),
            extra_flags=list(options.launch_flags()),
            useragent=self.identity.user_agent,
            proxy=proxy_settings(options.proxy.get_secret_value()) if options.proxy else None,
            google_search=False,
            additional_args=self.identity.context_options(),
            timeout=30_000,
        )
        await self._stealth.start()
        context = self._stealth.context
        await context.add_init_script(script=self.identity.init_script())
        return context

    async def _release(self) -> None:
        stealth, self._stealth = self._stealth, None
        if stealth is None:
            return
        with contextlib.suppress(Exception):
            await stealth.close()
        # Scrapling skips stopping its driver when the launch itself failed or was interrupted.
        if stealth.playwright is not None:
            with contextlib.suppress(Exception):
                await stealth.playwright.stop()

    async def detect_login(self, config: DetectionConfig) -> DetectionResult:
        return await LoginDetector(self.context, self.page, config).run()
