"""One Patchright driver carries every session's browser; its crash ends exactly the sessions it carried."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import patchright
import pytest

from tests.support.harness import RunningService, assert_error, browsers_under, running_service, wait_until
from tests.support.processes import command_lines, parent_of
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

# Patchright's Node driver: `…/patchright/driver/node …/patchright/driver/package/cli.js run-driver`.
# (The test fixtures build profiles with plain Playwright, whose driver lives elsewhere.)
PATCHRIGHT_DRIVER = str(Path(patchright.__file__).parent / "driver")


def driver_processes() -> set[int]:
    """Patchright drivers started by this test process (the service runs in it)."""
    return {
        pid
        for pid, arguments in command_lines()
        if "run-driver" in arguments
        and arguments[0].startswith(PATCHRIGHT_DRIVER)
        and parent_of(pid) == os.getpid()
    }


def browser_main_process(clone: Path) -> int:
    """The browser process itself (its helpers are its children)."""
    pids = browsers_under(clone)
    mains = [pid for pid in pids if parent_of(pid) not in pids]
    assert len(mains) == 1, f"expected one browser on {clone}, found {pids}"
    return mains[0]


async def create(service: RunningService) -> str:
    response = await service.client.post("/tiktok/session")
    assert response.status_code == 200, response.text
    return response.json()["session_id"]


async def test_live_sessions_share_one_driver_and_deleting_them_leaves_no_browser_or_driver(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    before = driver_processes()
    async with running_service(tmp_path, site.url) as service:
        first, second = await create(service), await create(service)
        drivers = driver_processes() - before
        assert len(drivers) == 1, f"two live sessions, drivers {drivers}"
        for session_id in (first, second):
            # Launched by that driver: the browser is its child.
            assert parent_of(browser_main_process(service.clones_dir / session_id)) in drivers

        for session_id in (first, second):
            assert (await service.client.delete(f"/tiktok/session/{session_id}")).status_code == 200
        assert browsers_under(tmp_path) == []
        # Releasing a session closes its browser only; the driver stays for the next one.
        assert driver_processes() - before == drivers
    assert driver_processes() - before == set()


async def test_killed_driver_ends_its_sessions_as_driver_lost_and_the_next_session_starts(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    before = driver_processes()
    async with running_service(tmp_path, site.url) as service:
        session_ids = [await create(service), await create(service)]
        sessions = [await service.service.locate(session_id) for session_id in session_ids]
        (driver,) = driver_processes() - before
        os.kill(driver, signal.SIGKILL)

        for session_id, session in zip(session_ids, sessions, strict=True):
            clone = service.clones_dir / session_id
            await wait_until(lambda clone=clone: not clone.exists(), timeout=5, what="the session to end")
            assert session.end_reason == "driver_lost"
            assert session.executor is not None and session.executor.ended_reason == "driver_lost"
            assert browsers_under(clone) == []
            assert_error(await service.client.get(f"/tiktok/session/{session_id}"), 404, "SESSION_NOT_FOUND")

        next_id = await create(service)
        (restarted,) = driver_processes() - before
        assert restarted != driver
        assert parent_of(browser_main_process(service.clones_dir / next_id)) == restarted
        assert (await service.client.get(f"/tiktok/session/{next_id}")).json()["state"] == "live"


async def test_a_driver_that_served_its_share_is_replaced_and_stops_after_its_last_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    before = driver_processes()
    async with running_service(tmp_path, site.url, MAX_SESSIONS=4) as service:
        # Flat memory: a driver keeps state per session it launched, so it serves a bounded number.
        service.service.browsers.driver.recycle_after = 2
        first, second = await create(service), await create(service)
        (old,) = driver_processes() - before
        third = await create(service)
        drivers = driver_processes() - before
        assert len(drivers) == 2 and old in drivers, "the third session starts on a new driver"
        (new,) = drivers - {old}
        assert parent_of(browser_main_process(service.clones_dir / third)) == new
        for session_id in (first, second):
            assert (await service.client.delete(f"/tiktok/session/{session_id}")).status_code == 200
        await wait_until(
            lambda: driver_processes() - before == {new}, timeout=10, what="the retired driver to stop"
        )
        assert (await service.client.get(f"/tiktok/session/{third}")).json()["state"] == "live"
    assert driver_processes() - before == set()
