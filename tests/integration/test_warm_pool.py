"""Warm pool (SPEC §3.7): proven sessions held ready, never handed out stale, dead or unproven."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from app.services.common.generation import bump_generation
from app.services.tiktok.session import LiveSession
from tests.support.harness import RunningService, assert_error, browsers_under, running_service, wait_until
from tests.support.profiles import build_master_profile, install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

WARM_READY_TIMEOUT = 60


async def warm_ready(service: RunningService, count: int = 1) -> list[LiveSession]:
    pool = service.service.warm
    await wait_until(lambda: pool.ready_count >= count, WARM_READY_TIMEOUT, f"{count} warm session(s)")
    return list(pool._ready)


async def test_a_post_takes_the_warm_session_and_the_pool_refills(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, WARM_SESSIONS=1) as service:
        (warm,) = await warm_ready(service)
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text
        assert response.json()["session_id"] == warm.id
        info = (await service.client.get(f"/tiktok/session/{warm.id}")).json()
        assert info["login"]["state"] == "logged_in" and info["login"]["verified_at"]
        # Expiry counts from hand-out, not from the warm launch.
        assert info["expires_at"] > info["created_at"]
        await wait_until(
            lambda: service.service.warm.ready_count == 1 and service.service.warm._ready[0].id != warm.id,
            WARM_READY_TIMEOUT,
            "the pool to refill",
        )
        assert (await service.client.delete(f"/tiktok/session/{warm.id}")).status_code == 200


async def test_warm_sessions_are_not_listed_and_not_counted_by_max_sessions(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, WARM_SESSIONS=1, MAX_SESSIONS=1) as service:
        await warm_ready(service)
        assert (await service.client.get("/tiktok/sessions")).json()["sessions"] == []
        assert (await service.client.post("/tiktok/session")).status_code == 200
        await warm_ready(service)
        # One live session is the cap: the warm one waiting does not count, but a second POST does.
        assert_error(await service.client.post("/tiktok/session"), 429, "TOO_MANY_SESSIONS")


async def test_a_warm_session_of_an_older_master_generation_is_never_handed_out(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, WARM_SESSIONS=1) as service:
        (warm,) = await warm_ready(service)
        await asyncio.to_thread(bump_generation, service.layout)  # the master changed
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text
        assert response.json()["session_id"] != warm.id
        assert warm.end_reason is not None and warm.end_reason.startswith("warm_")
        assert not (service.clones_dir / warm.id).exists()


async def test_a_warm_session_whose_browser_was_killed_is_never_handed_out(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, WARM_SESSIONS=1) as service:
        (warm,) = await warm_ready(service)
        for pid in browsers_under(service.clones_dir / warm.id):
            os.kill(pid, signal.SIGKILL)
        await wait_until(
            lambda: warm.executor is None or not warm.executor.is_alive, 10, "the browser to die"
        )
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text
        assert response.json()["session_id"] != warm.id
        await wait_until(lambda: not (service.clones_dir / warm.id).exists(), 10, "the dead clone to go")


async def test_a_warm_session_that_fails_its_recheck_is_discarded_and_never_handed_out(
    tmp_path: Path, site: StandinServer
) -> None:
    # Its own user: revoking it must not touch the session-wide profiles other tests use.
    await build_master_profile(tmp_path / "built", site.url, "warm-revoked")
    install_master(tmp_path / "built", tmp_path / "user_data")
    async with running_service(
        tmp_path / "user_data", site.url, WARM_SESSIONS=1, WARM_RECHECK_INTERVAL=2
    ) as service:
        (warm,) = await warm_ready(service)
        assert site.revoke("warm-revoked") >= 1  # TikTok ends the session server-side
        await wait_until(lambda: warm.end_reason is not None, 20, "the re-check to discard it")
        assert warm.end_reason == "warm_recheck_failed"
        # The master itself is revoked now: a POST proves it cold and refuses, it never gets the warm one.
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "logged_out"


async def test_a_logged_out_master_is_409_and_the_pool_backs_off_instead_of_looping(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["revoked"], tmp_path)  # cookies present, session ended on the server
    async with running_service(tmp_path, site.url, WARM_SESSIONS=2) as service:
        pool = service.service.warm
        await wait_until(lambda: pool.launches >= 2, 60, "the pool to try twice")
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert body["error_details"]["state"] == "logged_out"
        tried = pool.launches
        # Backing off 1 s, 2 s, 4 s…: over the next 6 s at most two more tries (a loop would make several).
        await asyncio.sleep(6)  # the window launches are counted over, not a wait for something to happen
        assert pool.launches - tried <= 2
        assert pool.ready_count == 0
        assert service.clone_dirs() == []
