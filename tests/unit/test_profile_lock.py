"""The master-profile lock, exercised with real flocks, in this process and in real child processes."""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
import sys
from pathlib import Path

import pytest

from app.core.errors import UserDataLocked
from app.services.common import profile_lock
from app.services.common.profile_lock import HeldLock, ProfileLock
from tests.support.holders import READY_TIMEOUT, held_by_other_process


@pytest.fixture
def lock(tmp_path: Path) -> ProfileLock:
    return ProfileLock(tmp_path / "master.lock")


async def _acquire_shared(lock: ProfileLock, max_wait: float) -> HeldLock:
    return await lock.shared(max_wait)


class RefusalWatch:
    """Counts the lock's refused flock attempts, so a test can wait until a waiter is really waiting."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def record(self) -> None:
        self.count += 1
        self._changed.set()

    async def until(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), READY_TIMEOUT)


@pytest.fixture
def refusals(monkeypatch: pytest.MonkeyPatch) -> RefusalWatch:
    watch = RefusalWatch()
    real_flock = fcntl.flock

    def watched_flock(fd: int, operation: int) -> None:
        try:
            real_flock(fd, operation)
        except BlockingIOError:
            watch.record()
            raise

    monkeypatch.setattr(profile_lock.fcntl, "flock", watched_flock)
    return watch


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def test_shared_locks_coexist(lock: ProfileLock) -> None:
    first = await lock.shared(0)
    second = await lock.shared(0)
    assert first.held and second.held
    first.release()
    second.release()


async def test_exclusive_excludes_shared_within_one_process(lock: ProfileLock) -> None:
    async with lock.exclusive(0):
        with pytest.raises(UserDataLocked):
            await lock.shared(0.1)
    (await lock.shared(0)).release()


async def test_shared_excludes_exclusive_within_one_process(lock: ProfileLock) -> None:
    async with lock.shared(0):
        with pytest.raises(UserDataLocked):
            await lock.exclusive(0.1)
    (await lock.exclusive(0)).release()


async def test_exclusive_held_by_other_process_blocks_shared_until_it_exits(lock: ProfileLock) -> None:
    async with held_by_other_process("exclusive", lock.lock_path):
        with pytest.raises(UserDataLocked):
            await lock.shared(0.2)
    (await lock.shared(0.2)).release()


async def test_shared_held_by_other_process_blocks_exclusive_but_not_shared(lock: ProfileLock) -> None:
    async with held_by_other_process("shared", lock.lock_path):
        (await lock.shared(0)).release()
        with pytest.raises(UserDataLocked):
            await lock.exclusive(0.2)
    (await lock.exclusive(0.2)).release()


async def test_waiter_gets_the_lock_as_soon_as_it_is_released(
    lock: ProfileLock, refusals: RefusalWatch
) -> None:
    writer = await lock.exclusive(0)
    waiter = asyncio.create_task(_acquire_shared(lock, 5))
    await refusals.until(2)  # refused twice: it is polling, not failed
    assert not waiter.done()
    writer.release()
    reader = await asyncio.wait_for(waiter, 1)
    assert reader.held
    reader.release()


async def test_timeout_error_names_the_holder_and_the_timeout(lock: ProfileLock) -> None:
    async with lock.exclusive(0):
        with pytest.raises(UserDataLocked) as raised:
            await lock.shared(0.05)
    assert raised.value.http_status == 423
    assert raised.value.error_details["timeout"] == 0.05
    assert "held exclusively" in raised.value.details
    assert "0.05 s" in raised.value.details


async def test_waiting_does_not_block_the_event_loop(lock: ProfileLock) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    async with lock.exclusive(0):
        with pytest.raises(UserDataLocked):
            await lock.shared(0.3)
    ticking.cancel()
    assert ticks >= 10


async def test_release_is_idempotent(lock: ProfileLock) -> None:
    held = await lock.exclusive(0)
    held.release()
    held.release()
    assert not held.held
    (await lock.exclusive(0)).release()


async def test_async_with_releases_when_the_block_raises(lock: ProfileLock) -> None:
    with pytest.raises(RuntimeError):
        async with lock.exclusive(0):
            raise RuntimeError("boom")
    (await lock.exclusive(0)).release()


async def test_timed_out_and_cancelled_waits_leave_no_descriptor_open(
    lock: ProfileLock, refusals: RefusalWatch
) -> None:
    writer = await lock.exclusive(0)
    before = open_fds()
    with pytest.raises(UserDataLocked):
        await lock.shared(0.05)
    waiter = asyncio.create_task(_acquire_shared(lock, 5))
    await refusals.until(refusals.count + 1)  # the waiter holds its own descriptor now
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert open_fds() == before
    writer.release()


async def test_lock_is_not_inherited_by_child_processes(lock: ProfileLock) -> None:
    held = await lock.exclusive(0)
    # close_fds=False: only the descriptor's close-on-exec flag keeps the lock out of the child, the
    # situation of a browser started by a library that does not close descriptors.
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; print('ready', flush=True); sys.stdin.readline()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        close_fds=False,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert await asyncio.wait_for(child.stdout.readline(), READY_TIMEOUT) == b"ready\n"
        held.release()
        (await lock.exclusive(0)).release()
    finally:
        child.stdin.close()
        await asyncio.wait_for(child.wait(), READY_TIMEOUT)


async def test_lock_file_is_created_private(tmp_path: Path) -> None:
    lock = ProfileLock(tmp_path / "user_data" / "master.lock")
    (await lock.shared(0)).release()
    assert stat.S_IMODE(lock.lock_path.stat().st_mode) & 0o077 == 0
