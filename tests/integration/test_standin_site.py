"""The TikTok stand-in site itself, seen through a real Chromium with real master profiles."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote_plus, urlsplit

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from tests.support.profiles import CHROMIUM_FLAGS, CHROMIUM_PATH, install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

ACCOUNT_INFO_JS = """async () => {
  const r = await fetch('/passport/web/account/info/?aid=1988', {credentials: 'include'});
  return {status: r.status, text: await r.text()};
}"""


@asynccontextmanager
async def open_profile(master: Path, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    # Work on a copy: the masters are shared by the whole session.
    profile = install_master(master, tmp_path / "user_data")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield context
        finally:
            await context.close()


async def rehydration_app_context(page: Page) -> dict:
    raw = await page.locator("#__UNIVERSAL_DATA_FOR_REHYDRATION__").text_content()
    return json.loads(raw)["__DEFAULT_SCOPE__"]["webapp.app-context"]


async def account_info(page: Page) -> dict:
    answer = await page.evaluate(ACCOUNT_INFO_JS)
    assert answer["status"] == 200
    return json.loads(answer["text"])


async def test_logged_in_profile_sees_its_user(site: StandinServer, master_profiles, tmp_path):
    async with open_profile(master_profiles["logged_in"], tmp_path) as context:
        page = context.pages[0]
        await page.goto(site.url)
        assert (await rehydration_app_context(page))["user"]["uniqueId"] == "alice"
        await page.locator('[data-e2e="profile-icon"]').wait_for(timeout=5000)
        assert await page.get_attribute('a[data-e2e="nav-profile"]', "href") == "/@alice"
        assert await page.locator('[data-e2e="top-login-button"]').count() == 0
        info = await account_info(page)
        assert info["message"] == "success" and info["data"]["username"] == "alice"
        session = {c["name"]: c for c in await context.cookies(site.url)}
        assert session["sessionid"]["httpOnly"] and not session["sessionid"]["secure"]


async def test_revoked_session_keeps_cookies_but_reads_logged_out(site, master_profiles, tmp_path):
    async with open_profile(master_profiles["revoked"], tmp_path) as context:
        page = context.pages[0]
        await page.goto(site.url)
        names = {c["name"] for c in await context.cookies(site.url)}
        assert {"sessionid", "sessionid_ss", "sid_tt", "sid_guard"} <= names
        info = await account_info(page)
        assert info["message"] == "error" and info["data"]["name"] == "session_expired"
        assert "user" not in await rehydration_app_context(page)
        await page.locator('[data-e2e="top-login-button"]').wait_for(timeout=5000)
        assert (await page.get_attribute('a[data-e2e="nav-profile"]', "href")).startswith("/login?")


async def test_expired_guard_profile(site, master_profiles, tmp_path):
    async with open_profile(master_profiles["expired_guard"], tmp_path) as context:
        cookies = {c["name"]: c["value"] for c in await context.cookies(site.url)}
        sid, issued, max_age, _ = unquote_plus(cookies["sid_guard"]).split("|")
        assert sid == cookies["sessionid"]
        assert int(issued) + int(max_age) < time.time()
        page = context.pages[0]
        await page.goto(site.url)
        assert (await account_info(page))["data"]["name"] == "session_expired"


async def test_logged_out_upload_redirects_to_login_and_form_logs_in(site, master_profiles, tmp_path):
    async with open_profile(master_profiles["logged_out"], tmp_path) as context:
        names = {c["name"] for c in await context.cookies(site.url)}
        assert {"ttwid", "msToken", "tt_chain_token", "tt_csrf_token"} <= names
        assert not names & {"sessionid", "sessionid_ss", "sid_tt", "sid_guard"}
        page = context.pages[0]
        await page.goto(site.url_for("/upload"))
        landed = urlsplit(page.url)
        assert landed.path == "/login"
        assert parse_qs(landed.query)["redirect_url"] == [site.url_for("/upload")]
        await page.fill('input[name="username"]', "dave")
        await page.click('[data-e2e="login-button"]')
        await page.wait_for_url(site.url_for("/upload"))
        assert (await rehydration_app_context(page))["user"]["uniqueId"] == "dave"


async def test_modes_in_browser(site, master_profiles, tmp_path):
    async with open_profile(master_profiles["logged_in"], tmp_path) as context:
        page = context.pages[0]
        site.set_mode("captcha")
        await page.goto(site.url)
        await page.locator(".secsdk-captcha-wrapper #captcha-verify.captcha_verify_container").wait_for()
        # Only the src is checked: without network the frame itself ends on Chromium's error page.
        assert (await page.get_attribute("iframe", "src")).startswith("https://verify.tiktok.com/")
        # The wall must win over this in a detector: the API still says the user is fine.
        assert (await account_info(page))["message"] == "success"

        site.set_mode("late_header", delay=1)
        await page.goto(site.url)
        assert await page.locator('[data-e2e="profile-icon"]').count() == 0
        await page.locator('[data-e2e="profile-icon"]').wait_for(timeout=5000)

        site.set_mode("ban")
        await page.goto(site.url)
        assert await page.locator('[data-e2e="ban-notice"]').is_visible()
        assert "user" not in await rehydration_app_context(page)

        site.set_mode("forbidden")
        assert (await page.goto(site.url)).status == 403
        site.set_mode("empty")
        response = await page.goto(site.url)
        assert response.status == 200 and (await page.inner_html("body")).strip() == ""
        assert (await page.evaluate(ACCOUNT_INFO_JS))["text"] == ""


def test_modes_over_http(site: StandinServer):
    site.reset_request_counts()
    with httpx.Client(base_url=site.url, timeout=2.0) as client:
        site.set_mode("rate_limited")
        response = client.get("/foryou")
        assert response.status_code == 429 and response.headers["retry-after"]
        site.set_mode("api_broken")
        response = client.get("/passport/web/account/info/", params={"aid": 1988})
        assert response.status_code == 500 and response.text == "<html>oops</html>"
        site.set_mode("header_only")
        assert "__UNIVERSAL_DATA_FOR_REHYDRATION__" not in client.get("/").text
        assert client.get("/passport/web/account/info/").status_code == 404
        site.set_mode("login_redirect")
        assert client.get("/").headers["location"].startswith("/login?redirect_url=")
        site.set_mode("hanging")
        with pytest.raises(httpx.ReadTimeout):
            client.get("/", timeout=0.5)
    assert site.request_counts() == {"/foryou": 1, "/passport/web/account/info/": 2, "/": 3}
