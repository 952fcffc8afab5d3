"""TikTok's browser: a fingerprinted Scrapling stealth session on a profile, asked who is logged in."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapling.fetchers import AsyncStealthySession

from app.services.common.browser import BrowserOptions, browser_environment, browser_pids_using
from app.services.common.driver import DRIVER_LOST, SharedDriver
from app.services.common.egress import EgressGate, EgressPolicy, EgressTally
from app.services.common.executor import AbstractBrowsingExecutor
from app.services.common.fingerprint import BrowserIdentity
from app.services.common.sandbox import SOCKS_PORT, Sandbox, SessionBox
from app.services.tiktok.login.login_detection import DetectionResult, LoginProver

BROWSER_EXIT_TIMEOUT = 1.0  # seconds for SIGKILLed browser processes to be gone


# Debian's Chromium starts two omnibox-popup WebUI renderers and a spare renderer in every browser,
# none of which a session shows or a page can see: off, a fresh browser's tree shrinks from ~380 to
# ~160 MiB and it starts fewer processes.
LEAN_BROWSER_FEATURES = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup", "SpareRendererForSitePerProcess")


def with_features_disabled(args: list[str], features: tuple[str, ...]) -> list[str]:
    """`args` whose last `--disable-features=` also names `features` (Chromium reads only the last one;
    Scrapling's stealth flags already bring one that replaces the driver's)."""
    indexes = [i for i, arg in enumerate(args) if arg.startswith("--disable-features=")]
    if not indexes:
        return [*args, "--disable-features=" + ",".join(features)]
    last = indexes[-1]
    present = [name for name in args[last].split("=", 1)[1].split(",") if name]
    merged = present + [name for name in features if name not in present]
    return [*args[:last], "--disable-features=" + ",".join(merged), *args[last + 1 :]]


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
    """One browser launched the way Scrapling's stealth session launches it, on a shared driver.

    Without `driver` the executor starts a driver of its own and stops it with the browser. With a
    `sandbox`, the browser runs inside it (SPEC §11) and reaches the network through an egress gate
    that applies `egress` (and the proxy, whose credentials stay outside the sandbox).
    """

    def __init__(
        self,
        profile_dir: Path,
        options: BrowserOptions,
        identity: BrowserIdentity,
        driver: SharedDriver | None = None,
        *,
        box: SessionBox | None = None,
        sandbox: Sandbox | None = None,
        egress: EgressPolicy | None = None,
        egress_tally: EgressTally | None = None,
    ):
        super().__init__(profile_dir, box)
        self._options = options
        self.identity = identity
        self._driver = driver if driver is not None else SharedDriver()
        self._owns_driver = driver is None
        self._sandbox = sandbox
        self._gate: EgressGate | None = None
        if sandbox is not None:
            assert (
                box is not None and egress is not None
            ), "a sandboxed browser needs its box and egress rules"
            proxy = options.proxy.get_secret_value() if options.proxy else None
            self._gate = EgressGate(box.egress_socket, egress, upstream=proxy, tally=egress_tally)
        self._launched: Any = None
        # Chromium's process group (Playwright starts the browser as a group leader): every process
        # of this browser, including one whose main thread has already exited.
        self._browser_group: int | None = None
        self._group_search: asyncio.Task[None] | None = None

    def _stealth_session(self) -> AsyncStealthySession:
        """Scrapling's stealth session for this browser, configured but never started.

        Its constructor computes everything the stealth launch consists of (flags, ignored default
        flags, context options, with our `additional_args` on top); `start()` would also start a
        Patchright driver of its own, which is the one part we replace by the shared driver.
        """
        options = self._options
        if self._sandbox is not None:
            executable = self._sandbox.launcher
            # Every connection goes to the egress gate: SOCKS5 resolves names at the gate, and
            # Playwright adds `<-loopback>` so even loopback is not bypassed.
            proxy: dict[str, str] | None = {"server": f"socks5://127.0.0.1:{SOCKS_PORT}"}
        else:
            executable = options.executable
            proxy = proxy_settings(options.proxy.get_secret_value()) if options.proxy else None
        return AsyncStealthySession(
            headless=options.headless,
            user_data_dir=str(self.profile_dir.resolve()),
            executable_path=str(executable),
            extra_flags=list(options.launch_flags()),
            useragent=self.identity.user_agent,
            # Launch flags (--lang, --accept-lang): the language holds browser-wide, workers and
            # the Accept-Language header included, not just in the page's main thread.
            locale=self.identity.locale,
            proxy=proxy,
            google_search=False,
            additional_args=self.identity.context_options(),
            timeout=30_000,
        )

    async def _launch(self) -> Any:
        stealth = self._stealth_session()
        # What AsyncStealthySession.start() passes for a persistent context, merged the same way.
        persistent = {"user_data_dir": stealth._user_data_dir}
        launch = stealth._browser_options | stealth._context_options | persistent
        launch["args"] = with_features_disabled(list(launch.get("args", [])), LEAN_BROWSER_FEATURES)
        if self._sandbox is not None and self.box is not None and self._gate is not None:
            await self._sandbox.adopt(self.profile_dir)
            await self._gate.start(self._sandbox.uid)
            launch["env"] = self._sandbox.launch_env(self.box, self.profile_dir, self._options.executable)
            # Chromium's own sandbox on: Scrapling's stealth flags and Playwright's default both
            # switch it off, for the root-run containers they expect.
            launch["args"] = [flag for flag in launch.get("args", []) if flag != "--no-sandbox"]
            launch["chromium_sandbox"] = True
            self.devtools_socket = self.box.devtools_socket
        else:
            launch["env"] = browser_environment()
        self._launched = await self._driver.launch_persistent_context(
            launch, on_lost=lambda: self._ended(DRIVER_LOST)
        )
        # Only a lost driver needs the group (in `_release`): found off the start's critical path.
        self._group_search = asyncio.get_running_loop().create_task(self._find_browser_group())
        context = await stealth._initialize_context(stealth._config, self._launched)
        await context.add_init_script(script=self.identity.init_script())
        if self.box is not None:
            await _download_into(context, self.box.browser_path(self.box.downloads))
        return context

    async def _find_browser_group(self) -> None:
        pids = await asyncio.to_thread(browser_pids_using, self.profile_dir)
        with contextlib.suppress(ProcessLookupError, IndexError):
            self._browser_group = os.getpgid(pids[0])

    async def _release(self) -> None:
        if self._group_search is not None:
            await asyncio.gather(self._group_search, return_exceptions=True)
        context, self._launched = self._launched, None
        try:
            if context is not None:
                await self._driver.release(context)
        finally:
            if self._owns_driver:
                await self._driver.aclose()
            if self.ended_reason == DRIVER_LOST and self._browser_group is not None:
                await asyncio.to_thread(_kill_group_and_wait, self._browser_group)
            if self._gate is not None:
                await self._gate.aclose()

    @property
    def network_failure(self) -> str | None:
        """Sandboxed: why the egress gate last failed to connect (the browser sees only SOCKS failures)."""
        return self._gate.last_failure if self._gate is not None else None

    async def detect_login(self, prover: LoginProver) -> DetectionResult:
        return await prover.prove(self.context, self.page)

    async def reprove_login(self, prover: LoginProver) -> DetectionResult:
        return await prover.reprove(self.context, self.page)


async def _download_into(context: Any, path: str) -> None:
    """Downloads land in the session's own folder, under the names the pages give them.

    Playwright points the browser at an artifacts folder of the driver's (outside any sandbox, and
    named by GUID); the relay rewrites what remote clients ask for the same way (cdp_relay.py).
    """
    page = context.pages[0] if context.pages else await context.new_page()
    session = await context.new_cdp_session(page)
    try:
        await session.send(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": path, "eventsEnabled": True}
        )
    finally:
        await session.detach()


def _kill_group_and_wait(group: int) -> None:
    """SIGKILL a browser's process group and return once all of it is gone (or the timeout passed).

    A browser whose driver died sees its DevTools pipe close and shuts itself down, writing into its
    profile as it goes; the profile is deleted right after this, so every thread must be gone, not
    just signalled. A process can outlive its main thread (a thread blocked in disk I/O dies only
    when that I/O completes), and then its command line reads empty: a search by `--user-data-dir`
    no longer finds it, its process group still does.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    deadline = time.monotonic() + BROWSER_EXIT_TIMEOUT
    while _group_has_live_threads(group) and time.monotonic() < deadline:
        time.sleep(0.01)


def _stat_fields(stat_file: Path) -> list[str]:
    """Fields of /proc/…/stat after the command name (which may hold spaces): state, ppid, pgrp, …"""
    return stat_file.read_text().rsplit(")", 1)[1].split()


def _group_has_live_threads(group: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(entry / "stat")[2]) != group:
                continue
            # Z: exited (the main thread of a process shows Z while other threads still run).
            if any(_stat_fields(task / "stat")[0] not in "ZX" for task in (entry / "task").iterdir()):
                return True
        except (OSError, IndexError, ValueError):
            continue
    return False
