"""A BrowserForge fingerprint made to agree with the browser that will actually run.

BrowserForge's data stops at Chrome 147 while the installed Chromium is newer, so its User-Agent and
client hints are not used: the User-Agent is derived from the binary's real version, and
`navigator.userAgentData` and the Sec-CH-UA headers are left to the browser, which reports its own
version consistently in both. The same goes for the languages: the browser is started with the
fingerprint's language (Scrapling's `locale`) and reports its own `navigator.languages`, which then
match its Accept-Language header and its workers. Everything else (screen, hardware, WebGL vendor,
codecs) comes from BrowserForge. Sampling takes ~0.3 s, so the next fingerprint is always prepared
ahead, off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

from browserforge.fingerprints import Fingerprint, FingerprintGenerator, Screen
from browserforge.injectors.utils import InjectFunction

_BROWSER_CHROME_HEIGHT = 85  # px of tabs and toolbar between the window's outer height and its viewport
# BrowserForge's data holds browsers that rendered WebGL in software (~5% of Linux samples):
# a renderer that says "server, VM or headless". Such samples are drawn again.
_SOFTWARE_RENDERERS = ("swiftshader", "llvmpipe", "softpipe")
_MAX_DRAWS = 50


def user_agent_for(version: str) -> str:
    """Chrome's reduced User-Agent: only the major version is real, the rest is always 0.0.0."""
    major = version.split(".")[0]
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{major}.0.0.0 Safari/537.36"
    )


def has_hardware_webgl(fingerprint: Fingerprint) -> bool:
    """True when the fingerprint names a GPU; without a video card the real one (SwiftShader) shows."""
    card = fingerprint.videoCard
    return card is not None and not any(word in card.renderer.lower() for word in _SOFTWARE_RENDERERS)


@dataclass(frozen=True)
class BrowserIdentity:
    """Launch-time context options plus the fingerprint to inject once the browser is up."""

    user_agent: str
    fingerprint: Fingerprint
    # An account's own (SPEC §12); unset, the fingerprint's language and the machine's time zone.
    locale_override: str | None = None
    timezone: str | None = None

    @property
    def locale(self) -> str:
        return self.locale_override or self.fingerprint.navigator.language

    def window(self) -> tuple[dict[str, int], dict[str, int]]:
        """(outer, inner) size of the browser window, in CSS pixels.

        BrowserForge's script sets `outerWidth`/`outerHeight` from the fingerprint's window, often
        not maximised (1849x933 on a 1920x1080 screen), while the viewport (`innerWidth`/
        `innerHeight`) is the context's: both must come from the one window, or the page sees a
        window smaller than its own viewport. A window missing from the fingerprint, or larger than
        the screen's available area, is taken as maximised.
        """
        screen = self.fingerprint.screen
        width = screen.outerWidth if 0 < screen.outerWidth <= screen.availWidth else screen.availWidth
        height = screen.outerHeight if 0 < screen.outerHeight <= screen.availHeight else screen.availHeight
        inner = {"width": width, "height": height - _BROWSER_CHROME_HEIGHT}
        return {"width": width, "height": height}, inner

    def context_options(self) -> dict[str, Any]:
        screen = self.fingerprint.screen
        return {
            "screen": {"width": screen.width, "height": screen.height},
            "viewport": self.window()[1],
            "device_scale_factor": screen.devicePixelRatio or 1,
            "color_scheme": "light",
            # Scrapling's stealth session grants geolocation and notifications, so a fresh profile
            # would answer "granted" where a real one answers "default"/"prompt". None, not []:
            # Playwright turns a list, even an empty one, into "grant these, deny all others".
            "permissions": None,
        } | ({"timezone_id": self.timezone} if self.timezone else {})

    def init_script(self) -> str:
        navigator = dataclasses.replace(
            self.fingerprint.navigator,
            userAgent=self.user_agent,
            appVersion=self.user_agent.removeprefix("Mozilla/"),
            # None keeps the browser's own userAgentData, which matches its Sec-CH-UA headers.
            userAgentData=None,
            # None keeps the browser's own list (["en-US", "en"] for --accept-lang=en-US,en), which
            # matches its Accept-Language header and its workers; BrowserForge's ["en-US"] does not.
            languages=None,
            platform="Linux x86_64",
            maxTouchPoints=0,
            webdriver=False,
        )
        outer, _inner = self.window()
        screen = dataclasses.replace(
            self.fingerprint.screen, outerWidth=outer["width"], outerHeight=outer["height"]
        )
        return InjectFunction(dataclasses.replace(self.fingerprint, navigator=navigator, screen=screen))


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
        for _ in range(_MAX_DRAWS):
            fingerprint = self._generator.generate()
            if has_hardware_webgl(fingerprint):
                return fingerprint
        raise RuntimeError(
            f"no BrowserForge fingerprint with a hardware WebGL renderer in {_MAX_DRAWS} draws"
        )

    def prepare(self) -> None:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_task(asyncio.to_thread(self._sample))

    async def take(self, browser_version: str) -> BrowserIdentity:
        return BrowserIdentity(user_agent=user_agent_for(browser_version), fingerprint=await self.sample())

    async def sample(self) -> Fingerprint:
        """A new fingerprint (the one sampled ahead), and the next one sampled behind it."""
        self.prepare()
        assert self._next is not None
        ready, self._next = self._next, None
        fingerprint = await asyncio.shield(ready)
        self.prepare()
        return fingerprint

    async def aclose(self) -> None:
        if self._next is not None:
            self._next.cancel()
            with contextlib.suppress(BaseException):
                await self._next
            self._next = None
