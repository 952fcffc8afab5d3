"""Capacity (SPEC §7, functional, not timed): 12 live sessions at once, and a burst over MAX_SESSIONS.

12 Chromiums on a 2-core machine are slow to start: the sessions are opened a few at a time, with
detection and start budgets well above the defaults.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.harness import RunningService, assert_error, browsers_under, running_service
from tests.support.processes import parent_of
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

LOADED = {"LOGIN_DETECTION_TIMEOUT": 20, "SESSION_START_TIMEOUT": 60}
POST_TIMEOUT = 120.0  # seconds, client side: the service answers (200 or 504) within its own budget first
CDP_TIMEOUT = 30.0
START_BATCH = 3


def descendants_of_this_process() -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := parent_of(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    frontier = [os.getpid()]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def driver_processes() -> list[int]:
    """Processes below this test process (the service runs in it) whose command line has `run-driver`."""
    drivers = []
    for pid in descendants_of_this_process():
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if "run-driver" in arguments:
            drivers.append(pid)
    return drivers


async def browser_version_over(cdp_url: str) -> dict[str, object]:
    async with asyncio.timeout(CDP_TIMEOUT), connect(cdp_url, max_size=None, compression=None) as cdp:
        await cdp.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
        while True:  # the browser may send events first; the answer is the message with our id
            message = json.loads(await cdp.recv())
            if message.get("id") == 1:
                return message


async def open_sessions(service: RunningService, count: int) -> list[dict[str, object]]:
    bodies: list[dict[str, object]] = []
    while len(bodies) < count:
        batch = min(START_BATCH, count - len(bodies))
        responses = await asyncio.gather(
            *(service.client.post("/tiktok/session", timeout=POST_TIMEOUT) for _ in range(batch))
        )
        for response in responses:
            assert response.status_code == 200, response.text
            bodies.append(response.json())
    return bodies


async def test_twelve_live_sessions_each_answer_over_their_relay_and_deleting_them_leaves_only_the_driver(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, MAX_SESSIONS=12, **LOADED) as service:
        bodies = await open_sessions(service, 12)
        session_ids = [body["session_id"] for body in bodies]
        assert len(set(session_ids)) == 12
        assert len(await service.service.list_sessions()) == 12
        assert len(service.clone_dirs()) == 12
        assert len(driver_processes()) == 1, "every browser must be launched through the one shared driver"

        answers = await asyncio.gather(*(browser_version_over(str(body["cdp_url"])) for body in bodies))
        for answer in answers:
            assert "error" not in answer, answer
            assert answer["result"]["product"].split("/")[0] in ("Chrome", "HeadlessChrome"), answer
            assert answer["result"]["protocolVersion"] == "1.3", answer

        for session_id in session_ids:
            response = await service.client.delete(f"/tiktok/session/{session_id}")
            assert response.status_code == 200, response.text
        assert await service.service.list_sessions() == []
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []
        # The shared driver outlives its sessions (the next POST reuses it); nothing else is left.
        assert len(driver_processes()) == 1


async def test_burst_of_twenty_over_max_sessions_three_is_three_sessions_and_seventeen_429s(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, MAX_SESSIONS=3, **LOADED) as service:
        responses = await asyncio.gather(
            *(service.client.post("/tiktok/session", timeout=POST_TIMEOUT) for _ in range(20))
        )
        statuses = sorted(response.status_code for response in responses)
        unexpected = [r.text for r in responses if r.status_code not in (200, 429)]
        assert statuses == [200] * 3 + [429] * 17, unexpected
        for response in responses:
            if response.status_code == 429:
                assert_error(response, 429, "TOO_MANY_SESSIONS")
                assert int(response.headers["Retry-After"]) >= 1
        assert len(service.clone_dirs()) == 3

        for response in responses:
            if response.status_code == 200:
                deleted = await service.client.delete(f"/tiktok/session/{response.json()['session_id']}")
                assert deleted.status_code == 200, deleted.text
        assert await service.service.list_sessions() == []
        assert service.clone_dirs() == []
        assert browsers_under(tmp_path) == []
