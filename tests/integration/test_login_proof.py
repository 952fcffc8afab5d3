"""End to end: what counts as proof of a login (SPEC §4), through the real service over HTTP, a real
Chromium and the stand-in site.

A page that shows a user proves nothing the account lookup contradicts. The lookup that gives no answer
at all (the rehydration fallback) is covered by `test_broken_account_api_falls_back_to_page_signals`.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.harness import assert_error, browsers_under, running_service
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

ACCOUNT_INFO = "/passport/web/account/info/?aid=1988"


def seen_by_a_logged_in_visitor(site: StandinServer, mode: str) -> tuple[str, dict]:
    """The home page and the account lookup as the stand-in serves them to alice in `mode`."""
    with httpx.Client(base_url=site.url, timeout=5) as client:
        client.get("/__standin/login", params={"user": "alice"})
        site.set_mode(mode)
        return client.get("/").text, client.get(ACCOUNT_INFO).json()


@pytest.mark.parametrize(
    ("mode", "error_name"), [("stale_render", "session_expired"), ("lookup_error", "system_busy")]
)
def test_the_standin_renders_the_user_while_the_lookup_answers_an_error(
    site: StandinServer, mode: str, error_name: str
) -> None:
    page, lookup = seen_by_a_logged_in_visitor(site, mode)
    rehydration = page.split('id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">')[1]
    app_context = json.loads(rehydration.split("</script>")[0])["__DEFAULT_SCOPE__"]["webapp.app-context"]
    assert app_context["user"]["uniqueId"] == "alice"
    assert '"username": "alice"' in page  # the header script mounts the logged-in header for alice
    assert lookup["message"] == "error" and lookup["data"]["name"] == error_name


async def test_page_showing_a_user_whose_session_the_server_ended_is_409_logged_out_by_the_lookup(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode("stale_render")
    async with running_service(tmp_path, site.url) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "logged_out"
        assert body["error_details"]["method"] == "account_api"
        assert "session_expired" in body["error_details"]["details"]
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []


async def test_page_showing_a_user_the_lookup_answers_with_another_error_is_409_uncertain(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode("lookup_error")
    async with running_service(tmp_path, site.url) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "uncertain"
        assert body["error_details"]["method"] == "conflict:rehydration/account_api"
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []
