"""Master profile commands (SPEC §6).

Locks: `login`, `import_cookies`, `export_cookies` and `reset_master` hold the master's exclusive lock
for as long as they work on it (export too: it runs Chromium on the master, and one profile takes one
browser). `profile_status` is the service's own session start, so it holds the shared lock while the
master is copied and no lock while the copy is checked — exactly what a `POST /tiktok/session` does.

Login, import and reset change the master, so each bumps its generation before letting the lock go.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.config import Settings
from app.core.errors import LoginNotProven, MasterProfileMissing, SessionStartTimeout, UserDataLocked
from app.core.metrics import Metrics
from app.services.common.generation import bump_generation, read_generation
from app.services.common.profile_lock import ProfileLock
from app.services.common.user_data import DEFAULT_ACCOUNT, UserDataLayout, migrate_single_master
from app.services.tiktok.accounts import AccountBook
from app.services.tiktok.browser_factory import BrowserFactory
from app.services.tiktok.cookie_import import (
    CookieFileError,
    DomainMap,
    cookies_for_host,
    map_cookie_domains,
    parse_cookie_file,
    require_cookies_for_host,
    require_session_cookie,
    same_site_family,
)
from app.services.tiktok.executor import TiktokExecutor
from app.services.tiktok.login.login_signals import LoginState
from app.services.tiktok.opener import SessionOpener
from app.services.tiktok.session import EndReason


@dataclass(frozen=True)
class ProfileStatus:
    """What `profile status` reports: the detection's answer, or why there was none."""

    state: LoginState
    method: str
    elapsed_ms: int
    details: str
    generation: str | None
    # The master was held exclusively past LOCK_TIMEOUT: nothing was checked, the state is unknown.
    locked: bool = False
    username: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "method": self.method,
            "elapsed_ms": self.elapsed_ms,
            "details": self.details,
            "generation": self.generation,
            "username": self.username,
        }


def locked_details(error: UserDataLocked, lock_timeout: float) -> str:
    """For people: who may hold the lock, and the setting that says how long to wait for it."""
    return (
        f"{error.details} (LOCK_TIMEOUT={lock_timeout:g} s: wait for the write-mode session or profile "
        "command to end, or raise LOCK_TIMEOUT)"
    )


def _layout_and_lock(settings: Settings, account: str) -> tuple[UserDataLayout, ProfileLock]:
    layout = UserDataLayout(settings.USER_DATA_DIR, account)
    return layout, ProfileLock(layout.lock_file)


@contextlib.asynccontextmanager
async def _browser_on_master(
    settings: Settings, layout: UserDataLayout, *, headless: bool
) -> AsyncIterator[TiktokExecutor]:
    """An executor on the account's master, showing the account's own device (not started yet), closed
    on the way out, and then its factory."""
    await asyncio.to_thread(layout.master.mkdir, mode=0o700, parents=True, exist_ok=True)
    browsers = BrowserFactory(settings)
    try:
        accounts = AccountBook(layout, browsers.sample_fingerprint)
        identity = await accounts.identity(accounts.account(layout.account))
        executor = await browsers.executor_for(layout.master, headless=headless, account=identity)
        try:
            yield executor
        finally:
            # A clean close is what writes the cookie database to disk.
            await executor.close()
    finally:
        # Only after the browser: the factory's driver is the one that runs it.
        await browsers.aclose()


async def login_interactively(settings: Settings, account: str = DEFAULT_ACCOUNT) -> str:
    """A visible window on the master at TikTok; returns the new generation once the person closes it."""
    layout, lock = _layout_and_lock(settings, account)
    await asyncio.to_thread(layout.ensure)
    async with lock.exclusive(settings.LOCK_TIMEOUT):
        try:
            async with _browser_on_master(settings, layout, headless=False) as executor:
                ended = asyncio.Event()
                executor.on_end(lambda _reason: ended.set())
                await executor.start()
                # The window is the person's from here: a slow or failed first load, or the window
                # closed while loading, is theirs to handle, not a crash of this command.
                with contextlib.suppress(Exception):
                    await executor.page.goto(settings.TIKTOK_URL)
                await ended.wait()
        finally:
            # Whatever the person did (logged in, out, or nothing), the master may have changed.
            generation = await asyncio.to_thread(bump_generation, layout)
    return generation


async def import_cookies(
    settings: Settings,
    cookie_file: Path,
    domain_map: Sequence[DomainMap] = (),
    account: str = DEFAULT_ACCOUNT,
) -> int:
    """Load exported cookies into the master; refuses a file without a TikTok session cookie."""
    try:
        text = await asyncio.to_thread(cookie_file.read_text, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CookieFileError(f"{cookie_file} is not a text file (expected JSON or cookies.txt)") from None
    except OSError as error:
        raise CookieFileError(f"cannot read {cookie_file}: {error.strerror}") from None
    # Mapped before filtering: a tiktok.com export only matches a stand-in host once it is rewritten.
    cookies = map_cookie_domains(parse_cookie_file(text), domain_map)
    tiktok_cookies = cookies_for_host(cookies, settings.tiktok_host)
    require_cookies_for_host(cookies, tiktok_cookies, settings.tiktok_host)
    require_session_cookie(tiktok_cookies, settings.detection.SESSION_COOKIES, settings.tiktok_host)
    tiktok_cookies = [_kept_across_restarts(cookie) for cookie in tiktok_cookies]
    layout, lock = _layout_and_lock(settings, account)
    await asyncio.to_thread(layout.ensure)
    async with lock.exclusive(settings.LOCK_TIMEOUT):
        async with _browser_on_master(settings, layout, headless=True) as executor:
            await executor.start()
            try:
                await executor.context.add_cookies(tiktok_cookies)
            except Exception as error:  # noqa: BLE001 - Playwright's Error, raised for a cookie it refuses
                raise CookieFileError(
                    f"Chromium refused the cookies: {_refusal(error, tiktok_cookies)}"
                ) from None
        await asyncio.to_thread(bump_generation, layout)
    return len(tiktok_cookies)


# A cookie without an expiry lives until the browser closes, and the import closes it: Chromium would
# drop tt_csrf_token and the other session cookies before any session saw them. The person's own browser
# keeps them across restarts ("continue where you left off"); so does the master, for this long.
SESSION_COOKIE_LIFETIME = 400 * 24 * 3600  # Chromium's own cap on a cookie's lifetime


def _kept_across_restarts(cookie: dict[str, Any]) -> dict[str, Any]:
    if "expires" in cookie:
        return cookie
    return dict(cookie, expires=time.time() + SESSION_COOKIE_LIFETIME)


def _refusal(error: Exception, cookies: Sequence[dict[str, Any]]) -> str:
    # Playwright names the field it refuses ("Invalid cookie fields", "should have a valid expires");
    # should a message ever quote a cookie, it is withheld rather than printed with the account's secret.
    reason = str(error).splitlines()[0].removeprefix("BrowserContext.add_cookies: ") if str(error) else ""
    if not reason or any(cookie["value"] and cookie["value"] in reason for cookie in cookies):
        return f"{type(error).__name__} (a domain, path or expiry it does not accept)"
    return reason


async def export_cookies(settings: Settings, account: str = DEFAULT_ACCOUNT) -> list[dict[str, Any]]:
    """The master's cookies for the TikTok host (domain cookies included), as Playwright reports them."""
    layout, lock = _layout_and_lock(settings, account)
    await asyncio.to_thread(migrate_single_master, layout.root)
    async with lock.exclusive(settings.LOCK_TIMEOUT):
        await asyncio.to_thread(layout.require_master)
        async with _browser_on_master(settings, layout, headless=True) as executor:
            await executor.start()
            # Through the browser: the values in Default/Cookies may be encrypted with the OS keyring's
            # key, which only Chromium itself can use.
            cookies = await executor.context.cookies()
    # Every cookie of TikTok's site, not only those sent to TIKTOK_URL's host (m.tiktok.com's too).
    return [cookie for cookie in cookies if same_site_family(cookie["domain"], settings.tiktok_host)]


async def reset_master(settings: Settings, account: str = DEFAULT_ACCOUNT) -> bool:
    """Delete the master profile; False when there was none. Asking the person first is the caller's job."""
    layout, lock = _layout_and_lock(settings, account)
    await asyncio.to_thread(migrate_single_master, layout.root)
    async with lock.exclusive(settings.LOCK_TIMEOUT):
        deleted = await asyncio.to_thread(_delete_master, layout)
        if deleted:
            await asyncio.to_thread(bump_generation, layout)
    return deleted


def _delete_master(layout: UserDataLayout) -> bool:
    if not layout.master.exists():
        return False
    shutil.rmtree(layout.master)
    return True


async def profile_status(settings: Settings, account: str = DEFAULT_ACCOUNT) -> ProfileStatus:
    """The service's own detection, on a throw-away clone (the shared lock is held while copying):
    the same opener a POST uses, never in write mode."""
    started = time.monotonic()
    layout = UserDataLayout(settings.USER_DATA_DIR, account)
    await asyncio.to_thread(layout.ensure)
    browsers = BrowserFactory(settings)
    accounts = AccountBook(layout, browsers.sample_fingerprint)
    opener = SessionOpener(settings, browsers, accounts, Metrics(), write_mode=False)
    try:
        try:
            session = await opener.open(accounts.account(account))
            await session.close(EndReason.CHECKED)
            assert session.login is not None
            login = session.login
        except LoginNotProven as not_proven:
            login = not_proven.login  # type: ignore[assignment]
        except (MasterProfileMissing, SessionStartTimeout, UserDataLocked) as error:
            return await _status_without_detection(settings, layout, error, started)
    finally:
        await browsers.aclose()
    return ProfileStatus(
        state=login.state,
        method=login.method,
        elapsed_ms=login.elapsed_ms,
        details=login.describe(),
        generation=await asyncio.to_thread(read_generation, layout),
        username=login.username,
    )


async def _status_without_detection(
    settings: Settings,
    layout: UserDataLayout,
    error: MasterProfileMissing | SessionStartTimeout | UserDataLocked,
    started: float,
) -> ProfileStatus:
    elapsed_ms = int((time.monotonic() - started) * 1000)
    generation = await asyncio.to_thread(read_generation, layout)
    locked = isinstance(error, UserDataLocked)
    if isinstance(error, MasterProfileMissing):
        state, method, details = LoginState.LOGGED_OUT, "no_master", error.details or ""
    elif locked:
        state, method = LoginState.UNCERTAIN, "locked"
        details = locked_details(error, settings.LOCK_TIMEOUT)
    else:
        # The page did not load, or the browser did not decide in time: nothing says logged out.
        state, method, details = LoginState.UNCERTAIN, error.extra.get("method", "timeout"), str(error)
    return ProfileStatus(state, method, elapsed_ms, details, generation, locked=locked)
