"""Master profile commands (SPEC §6). Each one holds the master's exclusive lock while it works."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from app.core.config import Settings
from app.core.errors import NotLoggedIn
from app.services.common.browser import BrowserOptions, browser_version, chromium_flags, find_browser
from app.services.common.fingerprint import FingerprintSource
from app.services.common.user_data import UserDataLayout
from app.services.tiktok.cookie_import import cookies_for_host, parse_cookie_file, require_session_cookie
from app.services.tiktok.executor import TiktokExecutor
from app.services.tiktok.service import TiktokService


@dataclass(frozen=True)
class ProfileStatus:
    state: str
    method: str
    elapsed_ms: int
    details: str


async def _executor_on_master(settings: Settings, *, headless: bool) -> TiktokExecutor:
    executable = find_browser(settings.BROWSER_EXECUTABLE)
    options = BrowserOptions(
        executable=executable, headless=headless, proxy=settings.PROXY, flags=chromium_flags()
    )
    fingerprints = FingerprintSource()
    try:
        identity = await fingerprints.take(await browser_version(executable))
    finally:
        await fingerprints.aclose()
    return TiktokExecutor(UserDataLayout(settings.USER_DATA_DIR).master, options, identity)


async def login_interactively(settings: Settings) -> None:
    """A visible window on the master at TikTok; returns when the person closes it."""
    service = TiktokService(settings)
    layout = service.layout
    await asyncio.to_thread(layout.ensure)
    async with service.lock.exclusive(settings.LOCK_TIMEOUT):
        layout.master.mkdir(mode=0o700, exist_ok=True)
        executor = await _executor_on_master(settings, headless=False)
        ended = asyncio.Event()
        executor.on_end(lambda _reason: ended.set())
        await executor.start()
        try:
            # The window is the person's from here: a slow or failed first load, or the window closed
            # while loading, is theirs to handle, not a crash of this command.
            with contextlib.suppress(Exception):
                await executor.page.goto(settings.TIKTOK_URL)
            await ended.wait()
        finally:
            # A clean close is what writes the cookie database to disk.
            await executor.close()


async def import_cookies(settings: Settings, cookie_file: Path) -> int:
    """Load exported cookies into the master; refuses a file without a TikTok session cookie."""
    text = await asyncio.to_thread(cookie_file.read_text, encoding="utf-8-sig")
    cookies = parse_cookie_file(text)
    tiktok_cookies = cookies_for_host(cookies, settings.tiktok_host)
    require_session_cookie(tiktok_cookies, settings.TIKTOK_SESSION_COOKIES, settings.tiktok_host)
    service = TiktokService(settings)
    await asyncio.to_thread(service.layout.ensure)
    async with service.lock.exclusive(settings.LOCK_TIMEOUT):
        service.layout.master.mkdir(mode=0o700, exist_ok=True)
        executor = await _executor_on_master(settings, headless=True)
        await executor.start()
        try:
            await executor.context.add_cookies(tiktok_cookies)
        finally:
            await executor.close()
    return len(tiktok_cookies)


async def profile_status(settings: Settings) -> ProfileStatus:
    """The service's own detection, on a throw-away clone."""
    service = TiktokService(settings)
    await service.start()
    started = time.monotonic()
    try:
        session = await service.create()
        login = session.login
        assert login is not None
        return ProfileStatus(login.state.value, login.method, login.elapsed_ms, "logged in")
    except NotLoggedIn as error:
        extra = error.extra
        elapsed = int((time.monotonic() - started) * 1000)
        return ProfileStatus(
            str(extra.get("state", "logged_out")), str(extra.get("method", "")), elapsed, error.details or ""
        )
    finally:
        await service.shutdown()
