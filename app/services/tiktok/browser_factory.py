"""The one way to build a TikTok browser for a profile directory, for the service and the CLI alike."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import uuid
from pathlib import Path

from browserforge.fingerprints import Fingerprint

from app.core.config import Settings
from app.core.redaction import redact_proxy
from app.services.common.browser import BrowserOptions, browser_version, chromium_flags, find_browser
from app.services.common.driver import SharedDriver
from app.services.common.egress import EgressPolicy, EgressTally, build_policy
from app.services.common.fingerprint import BrowserIdentity, FingerprintSource, user_agent_for
from app.services.common.identity import AccountIdentity
from app.services.common.sandbox import Isolation, Sandbox, SandboxUnavailable, SessionBox
from app.services.common.user_data import sweep_orphans
from app.services.tiktok.executor import TiktokExecutor

logger = logging.getLogger(__name__)


def boxes_root() -> Path:
    """Where browsers' boxes live: a short path, since unix socket paths are limited to 107 bytes."""
    return Path(tempfile.gettempdir()) / f"tiktok-sessions-{os.geteuid()}"


def sandbox_problem(settings: Settings) -> str | None:
    """Why the sandbox SESSION_ISOLATION asks for cannot be made here (None: it can, or is not asked
    for). Checked before the server starts, so the refusal is one line, not a failed start-up."""
    if Isolation(settings.SESSION_ISOLATION) is Isolation.NONE:
        return None
    try:
        Sandbox.install(settings.USER_DATA_DIR / "sandbox", boxes_root(), settings.SANDBOX_UID)
    except (SandboxUnavailable, OSError) as error:
        return str(error)
    return None


class BrowserFactory:
    """Options from the settings, a fresh BrowserForge fingerprint each, DevTools on loopback, and
    (SESSION_ISOLATION=sandbox) each browser in its own sandbox with its own box.

    Every browser it builds is launched through one Patchright driver, started on first use and
    stopped by `aclose()`.
    """

    def __init__(self, settings: Settings):
        self._settings = settings
        self._fingerprints = FingerprintSource()
        self.driver = SharedDriver()
        self.isolation = Isolation(settings.SESSION_ISOLATION)
        self.boxes = boxes_root()
        self._sandbox: Sandbox | None = None
        self._egress: EgressPolicy | None = None
        self._setup = asyncio.Lock()
        # Connections refused by every browser's egress gate, for the metrics.
        self.egress_tally = EgressTally()

    def prepare(self) -> None:
        """Start sampling the first fingerprint now, so the first session does not wait for it."""
        self._fingerprints.prepare()

    async def start(self) -> None:
        """Make the sandbox (or say why it cannot be made: `SandboxUnavailable`) and sweep dead boxes."""
        removed = await sweep_orphans(self.boxes)
        if removed:
            logger.info("boxes.swept", extra={"count": len(removed)})
        await self._ensure_sandbox()

    async def _ensure_sandbox(self) -> Sandbox | None:
        if self.isolation is Isolation.NONE:
            return None
        async with self._setup:
            if self._sandbox is None:
                settings = self._settings
                self._sandbox = await asyncio.to_thread(
                    Sandbox.install, settings.USER_DATA_DIR / "sandbox", self.boxes, settings.SANDBOX_UID
                )
                self._egress = await asyncio.to_thread(
                    build_policy, settings.TIKTOK_URL, settings.BROWSER_BLOCKED_HOSTS
                )
            return self._sandbox

    @property
    def default_proxy_redacted(self) -> str | None:
        proxy = self._settings.PROXY
        return redact_proxy(proxy.get_secret_value()) if proxy else None

    async def sample_fingerprint(self) -> Fingerprint:
        return await self._fingerprints.sample()

    async def executor_for(
        self, profile_dir: Path, *, headless: bool | None = None, account: AccountIdentity | None = None
    ) -> TiktokExecutor:
        """A browser on `profile_dir`; with an account's identity it shows that account's device and
        uses its proxy (PROXY when it has none), else a fresh fingerprint and PROXY."""
        settings = self._settings
        executable = await asyncio.to_thread(find_browser, settings.BROWSER_EXECUTABLE)
        sandbox = await self._ensure_sandbox()
        options = BrowserOptions(
            executable=executable,
            headless=settings.HEADLESS if headless is None else headless,
            proxy=(account.proxy if account is not None else None) or settings.PROXY,
            flags=chromium_flags(sandboxed=sandbox is not None),
            # Remote control attaches here (through the service's relay); loopback only.
            devtools_port=True,
            sandboxed=sandbox is not None,
        )
        version = await browser_version(executable)
        if account is not None:
            identity = BrowserIdentity(
                user_agent=user_agent_for(version),
                fingerprint=account.fingerprint,
                locale_override=account.locale,
                timezone=account.timezone,
            )
        else:
            identity = await self._fingerprints.take(version)
        box = await asyncio.to_thread(
            SessionBox.create_sync,
            self.boxes,
            uuid.uuid4().hex,
            sandbox.uid if sandbox is not None else None,
            sandbox is not None,
        )
        return TiktokExecutor(
            profile_dir,
            options,
            identity,
            self.driver,
            box=box,
            sandbox=sandbox,
            egress=self._egress,
            egress_tally=self.egress_tally,
        )

    @property
    def egress_refused(self) -> int:
        return self.egress_tally.refused

    async def aclose(self) -> None:
        await self._fingerprints.aclose()
        await self.driver.aclose()
