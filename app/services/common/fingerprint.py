"""A BrowserForge fingerprint made to agree with the browser that will actually run.

BrowserForge's data stops at Chrome 147 while the installed Chromium is newer, so its User-Agent and
client hints are not used: the User-Agent is derived from the binary's real version, and
`navigator.userAgentData` and the Sec-CH-UA headers are left to the browser, which reports its own
version consistently in both. Everything else (screen, hardware, WebGL vendor, codecs) comes from
BrowserForge. Sampling takes ~0.3 s, so the next
fingerprint is always prepared ahead, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

from browserforge.fingerprints import Fingerprint, FingerprintGenerator, Screen
from browserforge.injectors.utils import InjectFunction

_BROWSER_CHROME_HEIGHT = 85  # px of tabs and toolbar between screen.availHeight and the viewport


def user_agent_for(version: str) -> str:
    """Chrome's reduced User-Agent: only the major version is real, the rest is always 0.0.0."""
    major = version.split(".")[0]
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{major}.0.0.0 Safari/537.36"
    )


@dataclass(frozen=True)
class BrowserIdentity:
    """Launch-time context options plus the fingerprint to inject once the browser is up."""

    user_agent: str
    fingerprint: Fingerprint

    def context_options(self) -> dict[str, Any]:
        screen = self.fingerprint.screen
        return {
            "screen": {"width": screen.width, "height": screen.height},
            "viewport": {"width": screen.availWidth, "height": screen.availHeight - _BROWSER_CHROME_HEIGHT},
            "device_scale_factor": screen.devicePixelRatio or 1,
            "color_scheme": "light",
        }

    def init_script(self) -> str:
        navigator = dataclasses.replace(
            self.fingerprint.navigator,
            userAgent=self.user_agent,
            appVersion=self.user_agent.removeprefix("Mozilla/"),
            # None keeps the browser's own userAgentData, which matches its Sec-CH-UA headers.
            userAgentData=None,
            platform="Linux x86_64",
            maxTouchPoints=0,
            webdriver=False,
        )
        return InjectFunction(dataclasses.replace(self.fingerprint, navigator=navigator))


class FingerprintSource:
    """Hands out fingerprints; the next one is sampled in a thread while the current one is used."""

    def __init__(self) -> None:
        self._generator: FingerprintGenerator | None = None
        self._next: asyncio.Task[Fingerprint] | None = None

    def _sample(self) -> Fingerprint:
        if self._generator is None:
            self._generator = FingerprintGenerator(
                browser="chrome",
                os="linux",
                device="desktop",
                screen=Screen(min_width=1280, max_width=1920, min_height=720, max_height=1080),
            )
        return self._generator.generate()

    def prepare(self) -> None:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_task(asyncio.to_thread(self._sample))

    async def take(self, browser_version: str) -> BrowserIdentity:
        self.prepare()
        assert self._next is not None
        ready, self._next = self._next, None
        fingerprint = await asyncio.shield(ready)
        self.prepare()
        return BrowserIdentity(user_agent=user_agent_for(browser_version), fingerprint=fingerprint)

    async def aclose(self) -> None:
        if self._next is not None:
            self._next.cancel()
            with contextlib.suppress(BaseException):
                await self._next
            self._next = None
