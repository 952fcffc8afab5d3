"""The launched browser itself: required flags, a self-consistent fingerprint, a visible window mode."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.services.common.browser import (
    BrowserOptions,
    browser_version,
    chromium_flags,
    devtools_endpoint,
    find_browser,
)
from app.services.common.fingerprint import FingerprintSource
from app.services.tiktok.executor import TiktokExecutor
from tests.support.harness import browsers_under, main_browser_pids, running_service, wait_until
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

REQUIRED = ("--disable-background-networking", "--disable-component-update=1", "--disable-sync")
# A few of Scrapling's stealth launch flags, and the language flags its `locale` adds: the browser is
# launched through a shared driver, not by Scrapling's own start(), and must still get them.
STEALTH = (
    "--disable-blink-features=AutomationControlled",
    "--start-maximized",
    "--lang=en-US",
    "--accept-lang=en-US,en",
)

_IDENTITY_JS = """
async () => {
  const echoed = await (await fetch('/__standin/headers')).json();
  return {
    echoed,
    userAgent: navigator.userAgent,
    brands: navigator.userAgentData.brands.map((b) => `${b.brand}/${b.version}`),
    webdriver: navigator.webdriver,
    screenWidth: screen.width,
    hardwareConcurrency: navigator.hardwareConcurrency,
  };
}
"""


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


async def test_browser_runs_with_network_quieting_flags(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        session_id = (await service.client.post("/tiktok/session")).json()["session_id"]
        pids = browsers_under(service.clones_dir / session_id)
        assert pids
        for pid in pids:
            arguments = command_line(pid)
            for flag in REQUIRED:
                assert flag in arguments, f"{flag} missing from {arguments[0]}"


async def test_browser_runs_with_scrapling_stealth_flags_and_without_the_automation_flag(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        session_id = (await service.client.post("/tiktok/session")).json()["session_id"]
        (browser,) = main_browser_pids(service.clones_dir / session_id)
        arguments = command_line(browser)
    for flag in STEALTH:
        assert flag in arguments, f"{flag} missing from the browser's command line"
    # Playwright's default flag that announces automation (navigator.webdriver), dropped by Scrapling.
    assert "--enable-automation" not in arguments


async def test_user_agent_client_hints_and_js_agree_with_the_real_browser(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    major = (await browser_version(find_browser(None))).split(".")[0]
    async with running_service(tmp_path, site.url) as service:
        session_id = (await service.client.post("/tiktok/session")).json()["session_id"]
        executor = (await service.service.locate(session_id)).executor
        seen = await executor.page.evaluate(_IDENTITY_JS, isolated_context=False)

    assert seen["echoed"]["user-agent"] == seen["userAgent"]
    assert f"Chrome/{major}.0.0.0" in seen["userAgent"] and "Headless" not in seen["userAgent"]
    assert f'v="{major}"' in seen["echoed"]["sec-ch-ua"]
    assert f"Chromium/{major}" in seen["brands"]
    assert seen["echoed"]["sec-ch-ua-platform"] == '"Linux"'
    assert seen["webdriver"] is False
    fingerprint = executor.identity.fingerprint
    assert seen["screenWidth"] == fingerprint.screen.width
    assert seen["hardwareConcurrency"] == fingerprint.navigator.hardwareConcurrency


async def test_visible_window_session_ends_when_the_window_is_closed(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], display: str
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, HEADLESS=False) as service:
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text
        session_id = response.json()["session_id"]
        clone = service.clones_dir / session_id
        pids = browsers_under(clone)
        assert pids and not any("--headless" in arg for arg in command_line(pids[0]))

        executor = (await service.service.locate(session_id)).executor
        devtools = await executor.context.new_cdp_session(executor.page)
        # What the window's close button does: the browser shuts down by itself.
        await devtools.send("Browser.close")
        await wait_until(lambda: not clone.exists(), timeout=5, what="the session to end")
        assert (await service.client.get("/tiktok/sessions")).json()["sessions"] == []


async def test_browser_can_listen_for_devtools_on_loopback_only(
    tmp_path: Path, master_profiles: dict[str, Path]
) -> None:
    # Groundwork for remote control: the same launch path, with a DevTools port on 127.0.0.1.
    profile = install_master(master_profiles["logged_in"], tmp_path)
    fingerprints = FingerprintSource()
    executable = find_browser(None)
    identity = await fingerprints.take(await browser_version(executable))
    await fingerprints.aclose()
    options = BrowserOptions(
        executable=executable, headless=True, proxy=None, flags=chromium_flags(), devtools_port=True
    )
    executor = TiktokExecutor(profile, options, identity)
    await executor.start()
    try:
        endpoint = devtools_endpoint(profile)
        assert endpoint is not None and endpoint.startswith("ws://127.0.0.1:")
        port = endpoint.split(":")[2].split("/")[0]
        async with httpx.AsyncClient() as client:
            version = (await client.get(f"http://127.0.0.1:{port}/json/version")).json()
        assert version["webSocketDebuggerUrl"] == endpoint
        assert "--remote-debugging-address=127.0.0.1" in command_line(browsers_under(profile)[0])
    finally:
        await executor.close()
    assert browsers_under(profile) == []
