"""End to end: the real app over HTTP, a real Chromium, the stand-in site, real profile copies."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.support import free_port
from tests.support.harness import (
    RunningService,
    assert_error,
    browsers_under,
    running_service,
    tree_digest,
    wait_until,
)
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser


async def create(service: RunningService) -> str:
    response = await service.client.post("/tiktok/session")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["message"] and "error_details" not in body
    assert response.headers["X-Session-Id"] == body["session_id"]
    return body["session_id"]


async def assert_session_ends(service: RunningService, session_id: str, within: float) -> None:
    """Within the deadline: clone gone, no browser on it, unknown to the API, not listed."""
    clone = service.clones_dir / session_id
    await wait_until(lambda: not clone.exists(), timeout=within, what="the session to end")
    assert browsers_under(clone) == []
    assert_error(await service.client.get(f"/tiktok/session/{session_id}"), 404, "SESSION_NOT_FOUND")
    assert (await service.client.get("/tiktok/sessions")).json()["sessions"] == []


async def test_logged_in_master_gives_a_live_session_on_its_own_clone(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        session_id = await create(service)
        clone = service.clones_dir / session_id
        assert clone.is_dir()
        assert browsers_under(clone), "the session's browser runs on its clone"

        info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
        assert info["session_id"] == session_id
        assert info["state"] == "live" and info["mode"] == "read"
        assert info["login"]["state"] == "logged_in"
        assert info["login"]["method"] in ("account_api", "rehydration")
        listed = (await service.client.get("/tiktok/sessions")).json()["sessions"]
        assert [s["session_id"] for s in listed] == [session_id]

        deleted = await service.client.delete(f"/tiktok/session/{session_id}")
        assert deleted.status_code == 200 and deleted.json()["status"] == "success"
        # DELETE returns only once the browser is closed and the clone is gone.
        assert not clone.exists()
        assert browsers_under(clone) == []
        assert_error(await service.client.get(f"/tiktok/session/{session_id}"), 404, "SESSION_NOT_FOUND")


async def test_never_logged_in_is_409_from_cookies_without_loading_the_page(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_out"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        site.reset_request_counts()
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "logged_out"
        assert body["error_details"]["method"] == "cookies"
        # Known from the copied cookie database: no browser was started, no page was asked for.
        assert "cookie store" in body["error_details"]["details"]
        assert site.request_counts().get("/", 0) == 0
        assert service.clone_dirs() == []


@pytest.mark.parametrize(
    "profile, methods",
    [
        # Cookies still in the browser, session ended on the server: only the page can tell.
        ("revoked", ("account_api", "rehydration")),
        # sid_guard past its own max-age: known from the cookie alone.
        ("expired_guard", ("cookies",)),
    ],
)
async def test_ended_logins_are_409_logged_out(
    profile: str,
    methods: tuple[str, ...],
    tmp_path: Path,
    site: StandinServer,
    master_profiles: dict[str, Path],
) -> None:
    install_master(master_profiles[profile], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "logged_out"
        assert body["error_details"]["method"] in methods
        assert service.clone_dirs() == []


@pytest.mark.parametrize(
    "mode", ["captcha", "late_captcha", "forbidden", "rate_limited", "ban", "ban_dialog", "empty"]
)
async def test_walls_are_409_uncertain_never_logged_in(
    mode: str, tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode(mode)
    async with running_service(tmp_path, site.url, LOGIN_DETECTION_TIMEOUT=4) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "uncertain"
        assert body["error_details"]["method"] == "walls"
        assert service.clone_dirs() == []


async def test_header_rendered_two_seconds_late_does_not_stop_the_account_lookup_proving_the_login(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    # late_header: account lookup and rehydration block as usual; the header comes 2 s after load.
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode("late_header", delay=2)
    async with running_service(tmp_path, site.url) as service:
        session_id = await create(service)
        info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
        assert info["login"]["state"] == "logged_in"
        assert info["login"]["method"] == "account_api"


async def test_logged_in_header_as_the_only_witness_is_409_uncertain(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    # header_only: no account lookup, no rehydration block; the header alone never proves a login.
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode("header_only", delay=2)
    async with running_service(tmp_path, site.url) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "uncertain"
        assert body["error_details"]["method"] == "inconclusive"
        assert service.clone_dirs() == []


async def test_broken_account_api_falls_back_to_page_signals(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode("api_broken")
    async with running_service(tmp_path, site.url) as service:
        session_id = await create(service)
        info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
        assert info["login"]["method"] == "rehydration"


async def test_hanging_site_is_504_and_leaves_nothing(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode("hanging")
    # Room for a slow launch on a loaded machine: the detection's 2 s, not the start budget, must end it.
    async with running_service(
        tmp_path, site.url, LOGIN_DETECTION_TIMEOUT=2, SESSION_START_TIMEOUT=30
    ) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 504, "SESSION_TIMEOUT")
        assert "did not load" in body["error_details"]["details"]
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []


async def test_a_page_that_says_nothing_gets_one_soft_refresh_then_409_uncertain(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode("silent")
    async with running_service(tmp_path, site.url, LOGIN_DETECTION_TIMEOUT=6) as service:
        site.reset_request_counts()
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "uncertain"
        assert body["error_details"]["retry_count"] == 1
        assert site.request_counts().get("/", 0) == 2
        assert service.clone_dirs() == []


async def test_unreachable_site_is_504_naming_the_network_error(
    tmp_path: Path, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    closed_port_url = f"http://127.0.0.1:{free_port()}/"  # cookies are per host, so still "logged in"
    async with running_service(tmp_path, closed_port_url) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 504, "SESSION_TIMEOUT")
        # Sandboxed, Chromium only learns that its SOCKS gate failed; the gate says why.
        details = body["error_details"]["details"]
        assert "ERR_CONNECTION_REFUSED" in details or "connection refused" in details
        assert service.clone_dirs() == []


async def test_max_session_duration_ends_the_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, MAX_SESSION_DURATION=3) as service:
        session_id = await create(service)
        handed_out = time.monotonic()
        live = await service.service.locate(session_id)
        await assert_session_ends(service, session_id, within=10)
        # Not a session that died at once: it lived its three seconds and ended for that reason.
        assert live.end_reason == "max_duration"
        assert time.monotonic() - handed_out >= 2.5


async def test_closing_the_last_page_ends_the_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        session_id = await create(service)
        executor = (await service.service.locate(session_id)).executor
        assert executor is not None
        for page in list(executor.context.pages):
            await page.close()
        await assert_session_ends(service, session_id, within=5)


async def test_killed_browser_ends_the_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        session_id = await create(service)
        clone = service.clones_dir / session_id
        for pid in browsers_under(clone):
            os.kill(pid, signal.SIGKILL)
        await assert_session_ends(service, session_id, within=5)


async def test_master_is_byte_identical_after_a_session_that_browsed_and_set_cookies(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    master = install_master(master_profiles["logged_in"], tmp_path)
    before = tree_digest(master)
    async with running_service(tmp_path, site.url) as service:
        session_id = await create(service)
        page = (await service.service.locate(session_id)).executor.page
        await page.goto(site.url_for("__standin/login?user=mallory"))
        await page.goto(site.url_for("explore"))
        cookies = await page.context.cookies([site.url])
        assert any(c["name"] == "sessionid" for c in cookies)
        assert (await service.client.delete(f"/tiktok/session/{session_id}")).status_code == 200
    assert tree_digest(master) == before


async def test_burst_over_max_sessions_is_429_and_leaks_nothing(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, MAX_SESSIONS=2) as service:
        responses = await asyncio.gather(*(service.client.post("/tiktok/session") for _ in range(4)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 200, 429, 429]
        for response in responses:
            if response.status_code == 429:
                assert_error(response, 429, "TOO_MANY_SESSIONS")
                assert int(response.headers["Retry-After"]) >= 1
        assert len(service.clone_dirs()) == 2
        for response in responses:
            if response.status_code == 200:
                await service.client.delete(f"/tiktok/session/{response.json()['session_id']}")
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []


async def test_shutdown_ends_every_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        session_id = await create(service)
        clone = service.clones_dir / session_id
        assert clone.is_dir()
    assert not clone.exists()
    assert browsers_under(tmp_path) == []


async def test_missing_master_is_409_with_how_to_create_one(tmp_path: Path, site: StandinServer) -> None:
    async with running_service(tmp_path, site.url) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert "profile login" in body["error_details"]["details"]


async def test_missing_browser_binary_is_a_sanitized_500(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    missing = tmp_path / "no-such-chromium"
    async with running_service(tmp_path, site.url, BROWSER_EXECUTABLE=missing) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 500, "INTERNAL_ERROR")
        assert "BROWSER_EXECUTABLE" in body["error_details"]["details"]
        assert service.clone_dirs() == []


async def test_proxy_password_never_reaches_the_client_or_the_log(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    proxy = f"http://agent:hunter2secret@127.0.0.1:{free_port()}"  # nothing listens: the load fails
    async with running_service(
        tmp_path, site.url, PROXY=proxy, LOGIN_DETECTION_TIMEOUT=3, LOG_LEVEL="DEBUG"
    ) as service:
        response = await service.client.post("/tiktok/session")
        # The dead proxy means the page never loads: that is a 504, and its details name the error.
        assert_error(response, 504, "SESSION_TIMEOUT")
        assert "hunter2secret" not in response.text
        assert service.clone_dirs() == []
    captured = capfd.readouterr()
    assert "hunter2secret" not in captured.out + captured.err
    assert "***:***@127.0.0.1" in captured.err


async def test_client_that_gave_up_does_not_keep_a_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    site.set_mode("slow", delay=2)
    async with running_service(tmp_path, site.url) as service:
        impatient = httpx.AsyncClient(
            base_url=service.client.base_url, headers=service.client.headers, timeout=1
        )
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post("/tiktok/session")
        await impatient.aclose()
        # The service finishes the start, finds nobody listening, and ends what it made.
        await wait_until(
            lambda: not service.service.live_by_mode() and not service.service.starting, 15, "the end"
        )
        await wait_until(lambda: service.clone_dirs() == [], timeout=5, what="the clone to go")
        assert browsers_under(tmp_path) == []


def metric_lines(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def test_metrics_follow_a_session_from_creation_to_its_end(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        session_id = await create(service)
        live = metric_lines((await service.client.get("/metrics")).text)
        assert live['tiktok_sessions_live{mode="read"}'] == 1
        assert live['tiktok_sessions_created_total{outcome="ok"}'] == 1
        assert live['tiktok_login_decisions_total{method="account_api",state="logged_in"}'] == 1
        assert live["tiktok_clone_bytes_total"] > 0
        assert live['tiktok_session_creation_seconds_count{source="cold"}'] == 1
        assert (await service.client.delete(f"/tiktok/session/{session_id}")).status_code == 200
        ended = metric_lines((await service.client.get("/metrics")).text)
        assert ended['tiktok_sessions_live{mode="read"}'] == 0
        assert ended['tiktok_session_ends_total{reason="deleted"}'] == 1
