"""One writer, many readers on the master profile, across processes and modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.common.generation import read_generation
from app.services.common.profile_lock import ProfileLock
from app.services.common.user_data import UserDataLayout
from tests.support.harness import assert_error, browsers_under, running_service, tree_digest
from tests.support.holders import held_by_other_process
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser


async def test_read_session_waits_for_a_profile_command_then_answers_423(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, LOCK_TIMEOUT=0.5) as service:
        async with held_by_other_process("exclusive", UserDataLayout(tmp_path).lock_file):
            body = assert_error(await service.client.post("/tiktok/session"), 423, "USER_DATA_LOCKED")
            assert body["error_details"]["timeout"] == 0.5
            assert service.clone_dirs() == []
        # The other process has ended, and its lock with it.
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text


async def test_write_mode_runs_on_the_master_and_keeps_it_exclusive(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    master = install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, WRITE_MODE=True, LOCK_TIMEOUT=0.5) as service:
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text
        session_id = response.json()["session_id"]
        info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
        assert info["mode"] == "write"
        assert browsers_under(master) and service.clone_dirs() == []

        # A second writer, and any reader, must wait for the first writer.
        assert_error(await service.client.post("/tiktok/session"), 423, "USER_DATA_LOCKED")
        with pytest.raises(Exception, match="exclusively"):
            await ProfileLock(UserDataLayout(tmp_path).lock_file).shared(0.2)

        page = (await service.service.locate(session_id)).executor.page
        await page.goto(site.url_for("explore"))
        generation_before = read_generation(service.layout)
        assert (await service.client.delete(f"/tiktok/session/{session_id}")).status_code == 200
        assert browsers_under(master) == []
        # The session wrote the master: its generation changed, so warm copies of the old one are stale.
        assert read_generation(service.layout) not in (None, generation_before)
    held = await ProfileLock(UserDataLayout(tmp_path).lock_file).exclusive(0.2)
    held.release()


async def test_read_sessions_share_the_master_and_leave_it_untouched(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    master = install_master(master_profiles["logged_in"], tmp_path)
    before = tree_digest(master)
    async with running_service(tmp_path, site.url) as service:
        first = await service.client.post("/tiktok/session")
        second = await service.client.post("/tiktok/session")
        assert first.status_code == second.status_code == 200
        assert len(service.clone_dirs()) == 2
    assert tree_digest(master) == before
