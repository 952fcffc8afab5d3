"""`profile login` for real: a person logs in on the stand-in in the visible window, then closes it.

The "person" is this test: it types into the window's own page (Playwright attached to the window's
DevTools endpoint, as a second client beside the CLI's) and closes the window with Ctrl+Shift+W sent
through xdotool on the Xvfb screen, the key press Chromium itself handles as "close window".
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from app.services.common.browser import browser_pids_using, devtools_endpoint
from app.services.common.user_data import UserDataLayout
from tests.support import REPO_ROOT
from tests.support.harness import SERVICE_VARIABLES, browsers_under, running_service
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

WINDOW_TIMEOUT = 60  # seconds for the CLI to start Chromium and ask for TikTok, on a loaded machine
EXIT_TIMEOUT = 30


def cli_environment(user_data: Path, site: StandinServer) -> dict[str, str]:
    # The developer's shell (and any .env: the CLI runs outside the repo) decides none of the settings;
    # DISPLAY comes from the fixture.
    env = {name: value for name, value in os.environ.items() if name.upper() not in SERVICE_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # The test plays the person through the window's DevTools port on loopback, which only an
    # unsandboxed browser has (a sandboxed one's is a unix socket in its box). The sandboxed window is
    # covered by test_profile_cli's login test and remote login (test_accounts, test_live_view).
    return env | {"USER_DATA_DIR": str(user_data), "TIKTOK_URL": site.url, "SESSION_ISOLATION": "none"}


async def run(
    *command: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def poll(condition: Callable[[], Awaitable[object]], timeout: float, what: str) -> None:
    """`wait_until` for a condition that has to await (a subprocess, a request off the loop)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def visible_window_of(pid: int) -> str:
    """The X window id of the browser process `pid`, once it is mapped on the screen."""
    windows: list[str] = []

    async def mapped() -> bool:
        _code, out, _err = await run("xdotool", "search", "--onlyvisible", "--pid", str(pid))
        windows[:] = out.split()
        return bool(windows)

    await poll(mapped, WINDOW_TIMEOUT, f"a visible window of browser {pid}")
    return windows[0]


async def close_window_as_a_person(window: str) -> None:
    # XTEST key events go to the focused window; with no window manager on Xvfb, focus is given
    # explicitly. Ctrl+Shift+W is Chromium's "close window", what the title bar's X button does.
    for command in (("windowfocus", "--sync", window), ("key", "--clearmodifiers", "ctrl+shift+w")):
        code, _out, err = await run("xdotool", *command)
        assert code == 0, err


async def log_in_through_the_window(master: Path, site: StandinServer, username: str) -> None:
    endpoint = devtools_endpoint(master)
    assert endpoint is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.connect_over_cdp(endpoint)
        (context,) = browser.contexts
        page = context.pages[0]
        await page.goto(site.url_for("login"))
        await page.fill('input[name="username"]', username)
        await page.click('[data-e2e="login-button"]')
        # The form redirects home; the header shows the profile icon only for a logged-in viewer.
        await page.wait_for_selector('[data-e2e="profile-icon"]', timeout=15_000)
        # Disconnects this client only: the window stays the person's until they close it.
        await browser.close()


@pytest.fixture
def xdotool() -> str:
    found = shutil.which("xdotool")
    if found is None:
        pytest.fail("xdotool is missing: `make install` installs Debian's xdotool", pytrace=False)
    return found


async def test_a_person_logs_in_in_the_window_and_the_saved_master_is_logged_in(
    tmp_path: Path, site: StandinServer, display: str, xdotool: str
) -> None:
    user_data = tmp_path / "ud"
    master = UserDataLayout(user_data).master
    env = cli_environment(user_data, site)
    site.reset_request_counts()
    login = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "profile",
        "login",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Up once the CLI has asked for TikTok's start page: from then on its own navigation cannot
        # replace the page the person is typing into.
        async def window_asked_for_tiktok() -> bool:
            if login.returncode is not None:
                return True
            if devtools_endpoint(master) is None:
                return False
            return bool((await asyncio.to_thread(site.request_counts)).get("/"))

        await poll(window_asked_for_tiktok, WINDOW_TIMEOUT, "the login window to open on TikTok")
        assert login.returncode is None, await login.communicate()
        (browser_pid,) = browser_pids_using(master)
        cmdline = await asyncio.to_thread(Path(f"/proc/{browser_pid}/cmdline").read_bytes)
        arguments = cmdline.decode().split("\0")
        assert not any(argument.startswith("--headless") for argument in arguments)

        await log_in_through_the_window(master, site, "dana")
        assert login.returncode is None, "the command ended before the window was closed"

        await close_window_as_a_person(await visible_window_of(browser_pid))
        out, err = await asyncio.wait_for(login.communicate(), EXIT_TIMEOUT)
    finally:
        if login.returncode is None:
            login.kill()
            await login.wait()
    assert login.returncode == 0, err.decode()
    assert "master profile is saved" in out.decode()
    assert browsers_under(master) == []

    code, status_out, status_err = await run(
        sys.executable, "-m", "app.cli", "profile", "status", "--json", env=env, cwd=tmp_path
    )
    assert code == 0, status_out + status_err
    status = json.loads(status_out)
    assert status["state"] == "logged_in"
    assert status["generation"] is not None and status["generation"] in out.decode()

    async with running_service(user_data, site.url) as service:
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text
