"""Wait mode (SPEC §3.6): `POST /tiktok/session?wait=true` is held while the session lives and answers
how it ended. The real service over HTTP, its real Chromium, and real clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.harness import (
    API_KEY,
    RunningService,
    assert_error,
    browsers_under,
    running_service,
    wait_until,
)
from tests.support.playwright_client import PlaywrightClient
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

START_DEADLINE = 90.0  # the waiting session goes live (clone, launch, detection) on a loaded machine
ANSWER_DEADLINE = 60.0  # the held response arrives once the session has ended
CLIENT_DEADLINE = 90.0
TIMEOUT = 3  # MAX_SESSION_DURATION or SESSION_IDLE_TIMEOUT, seconds
SHUTDOWN_DEADLINE = 30.0  # SIGTERM to stopped; far below the MAX_SESSION_DURATION used with it


@asynccontextmanager
async def logged_in_service(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], **overrides: Any
) -> AsyncIterator[RunningService]:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, **overrides) as service:
        yield service


@asynccontextmanager
async def waiting_post(service: RunningService) -> AsyncIterator[tuple[httpx.AsyncClient, asyncio.Task]]:
    """`POST /tiktok/session?wait=true` running in a task, on a client of its own."""
    timeout = START_DEADLINE + ANSWER_DEADLINE
    async with httpx.AsyncClient(
        base_url=service.base_url, headers={"X-API-Key": API_KEY}, timeout=timeout
    ) as client:
        post = asyncio.create_task(client.post("/tiktok/session", params={"wait": "true"}))
        try:
            yield client, post
        finally:
            if not post.done():
                post.cancel()
            with contextlib.suppress(BaseException):
                await post


async def listed_while_waiting(service: RunningService, post: asyncio.Task) -> dict[str, Any]:
    """The waiting session, as `GET /tiktok/sessions` lists it while the POST is still held."""
    await wait_until(
        lambda: service.service.live_by_mode() or post.done(), START_DEADLINE, "the session to go live"
    )
    if post.done():
        raise AssertionError(f"the waiting POST answered before the session ended: {post.result().text}")
    listed = (await service.client.get("/tiktok/sessions")).json()["sessions"]
    assert len(listed) == 1, listed
    assert not post.done(), "the POST is still held"
    return listed[0]


async def answer(post: asyncio.Task) -> httpx.Response:
    return await asyncio.wait_for(post, ANSWER_DEADLINE)


def assert_ended_with(response: httpx.Response, session_id: str, reason: str) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["message"] and "error_details" not in body
    assert body["session_id"] == session_id
    assert body["end_reason"] == reason
    assert response.headers["X-Session-Id"] == session_id


def main_browser_pid(profile_dir: Path) -> int:
    """The browser process itself: of the Chromium processes on the profile, the one that is not a
    helper (the sandbox's bubblewrap names the profile too)."""
    for pid in browsers_under(profile_dir):
        with contextlib.suppress(OSError):
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            chromium = Path(f"/proc/{pid}/comm").read_text().strip() in ("chromium", "chrome")
            if chromium and not any(argument.startswith(b"--type=") for argument in arguments):
                return pid
    raise AssertionError(f"no browser process runs on {profile_dir}")


async def page_targets(ws: ClientConnection) -> list[str]:
    await ws.send(json.dumps({"id": 1, "method": "Target.getTargets"}))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), CLIENT_DEADLINE))
        if message.get("id") == 1:
            return [t["targetId"] for t in message["result"]["targetInfos"] if t["type"] == "page"]


async def xdotool(*arguments: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "xdotool", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        output, errors = await asyncio.wait_for(process.communicate(), CLIENT_DEADLINE)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    assert process.returncode == 0, errors.decode(errors="replace")
    return output.decode()


async def test_delete_answers_the_waiting_post_with_200_deleted(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with (
        logged_in_service(tmp_path, site, master_profiles) as service,
        waiting_post(service) as (_, post),
    ):
        listed = await listed_while_waiting(service, post)
        session_id = listed["session_id"]
        assert listed["state"] == "live"

        deleted = await service.client.delete(f"/tiktok/session/{session_id}")
        assert deleted.status_code == 200, deleted.text
        assert_ended_with(await answer(post), session_id, "deleted")
        assert service.clone_dirs() == []


async def test_browser_close_from_a_client_answers_the_waiting_post_with_200_client_closed(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with (
        logged_in_service(tmp_path, site, master_profiles) as service,
        waiting_post(service) as (_, post),
    ):
        listed = await listed_while_waiting(service, post)
        client = await PlaywrightClient.attach(listed["cdp_url"])
        try:
            assert (await client.run("browser_close"))["sent"] is True

            assert_ended_with(await answer(post), listed["session_id"], "client_closed")
        finally:
            await client.kill()
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []


async def test_max_session_duration_answers_the_waiting_post_with_504_session_timeout(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with (
        logged_in_service(tmp_path, site, master_profiles, MAX_SESSION_DURATION=TIMEOUT) as service,
        waiting_post(service) as (_, post),
    ):
        body = assert_error(
            await asyncio.wait_for(post, START_DEADLINE + ANSWER_DEADLINE), 504, "SESSION_TIMEOUT"
        )
        assert body["error_details"]["timeout"] == TIMEOUT
        assert body["error_details"]["end_reason"] == "max_duration"
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []


async def test_idle_timeout_answers_the_waiting_post_with_504_session_timeout(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with (
        logged_in_service(tmp_path, site, master_profiles, SESSION_IDLE_TIMEOUT=TIMEOUT) as service,
        waiting_post(service) as (_, post),
    ):
        # Nothing else is sent for the session: an API call would count as activity.
        body = assert_error(
            await asyncio.wait_for(post, START_DEADLINE + ANSWER_DEADLINE), 504, "SESSION_TIMEOUT"
        )
        assert body["error_details"]["timeout"] == TIMEOUT
        assert body["error_details"]["end_reason"] == "idle"
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []


async def test_the_waiting_client_hanging_up_ends_the_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        async with waiting_post(service) as (client, post):
            listed = await listed_while_waiting(service, post)
            session = await service.service.locate(listed["session_id"])
            clone = service.clones_dir / session.id
            assert clone.is_dir()
            post.cancel()
            await client.aclose()  # the connection is gone, as when the caller's process dies

        await wait_until(session.ended.is_set, ANSWER_DEADLINE, "the abandoned session to end")
        assert session.end_reason == "client_gone"
        assert not clone.exists()
        assert browsers_under(clone) == []
        assert (await service.client.get("/tiktok/sessions")).json()["sessions"] == []


async def test_closing_the_window_as_a_person_answers_the_waiting_post_with_200(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], display: str
) -> None:
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (apt-get install xdotool): it plays the person at the window")
    async with (
        logged_in_service(tmp_path, site, master_profiles, HEADLESS=False) as service,
        waiting_post(service) as (_, post),
    ):
        listed = await listed_while_waiting(service, post)
        main_browser_pid(service.clones_dir / listed["session_id"])  # the session's browser runs
        # By class, not pid: a sandboxed browser's window names the pid it has in its own namespace.
        windows = await xdotool("search", "--sync", "--onlyvisible", "--class", "chromium")
        window = windows.split()[0]
        # Ctrl+Shift+W is Chromium's "close window"; there is no window manager to draw a close button.
        await xdotool("windowfocus", "--sync", window, "key", "--clearmodifiers", "ctrl+shift+w")

        response = await answer(post)
        assert response.status_code == 200, response.text
        reason = response.json()["end_reason"]
        assert reason in ("last_page_closed", "browser_closed")
        assert_ended_with(response, listed["session_id"], reason)
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []


async def test_closing_the_last_tab_over_cdp_answers_the_waiting_post_with_200(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], display: str
) -> None:
    async with (
        logged_in_service(tmp_path, site, master_profiles, HEADLESS=False) as service,
        waiting_post(service) as (_, post),
    ):
        listed = await listed_while_waiting(service, post)
        async with connect(listed["cdp_url"], max_size=None, proxy=None, open_timeout=30) as ws:
            pages = await page_targets(ws)
            assert len(pages) == 1, pages
            # What closing the last tab does; the browser may go before it answers.
            await ws.send(
                json.dumps({"id": 2, "method": "Target.closeTarget", "params": {"targetId": pages[0]}})
            )
            response = await answer(post)

        assert response.status_code == 200, response.text
        reason = response.json()["end_reason"]
        assert reason in ("last_page_closed", "browser_closed")
        assert_ended_with(response, listed["session_id"], reason)
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []


async def test_service_shutdown_ends_a_waiting_session_and_stops_promptly(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    stack = AsyncExitStack()
    service = await stack.enter_async_context(running_service(tmp_path, site.url, MAX_SESSION_DURATION=300))
    stopping: asyncio.Task | None = None
    try:
        async with waiting_post(service) as (_, post):
            listed = await listed_while_waiting(service, post)
            session = await service.service.locate(listed["session_id"])
            clone = service.clones_dir / session.id
            # What SIGTERM does: uvicorn's should_exit, then its shutdown, then the app's lifespan shutdown.
            stopping = asyncio.create_task(stack.aclose())
            stopped, _ = await asyncio.wait({stopping}, timeout=SHUTDOWN_DEADLINE)
            if not stopped:
                # Unblock the stuck shutdown, so that the test ends and cleans up.
                await session.close("deleted")
            response = await answer(post)
    finally:
        await (stopping if stopping is not None else stack.aclose())

    assert stopped, f"the service was still stopping {SHUTDOWN_DEADLINE:g} s after it was told to"
    assert session.end_reason == "shutdown"
    assert response.headers["X-Session-Id"] == session.id
    assert not clone.exists()
    assert browsers_under(tmp_path) == []
