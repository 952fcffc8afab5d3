"""One-writer-many-readers lock on the master profile, shared by every process on the host.

Readers are sessions copying the master into a clone; writers are a write-mode session (which runs
Chromium on the master itself) and the profile commands of the CLI. Several service workers and the CLI
run at once, so the lock has to live in the kernel: `flock(2)` on `<USER_DATA_DIR>/master.lock`.

Usage — each call to `shared()` / `exclusive()` is one acquisition, awaited either way:

    held = await lock.exclusive(timeout)    # the caller keeps it (write mode: for the session's life)
    ...
    held.release()

    async with lock.shared(timeout):        # released when the block exits, whatever happens
        ...
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from app.core.errors import UserDataLocked

LockMode = Literal["shared", "exclusive"]

# Short enough that a released lock is picked up without a noticeable delay, long enough that a
# hundred waiting requests cost nothing measurable.
_POLL_INTERVAL = 0.025

_FLOCK_OPERATION: dict[LockMode, int] = {"shared": fcntl.LOCK_SH, "exclusive": fcntl.LOCK_EX}


class HeldLock:
    """One acquired lock. Dropping the file descriptor is what releases it."""

    def __init__(self, fd: int, mode: LockMode, path: Path):
        self._fd: int | None = fd
        self.mode: LockMode = mode
        self.path = path

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __repr__(self) -> str:
        return f"HeldLock(mode={self.mode!r}, path={str(self.path)!r}, held={self.held})"


class LockAcquisition:
    """What `ProfileLock.shared()` / `.exclusive()` return: awaitable, and an async context manager.

    Nothing happens until it is awaited or entered, so an acquisition that is built and dropped
    leaks neither a file descriptor nor a never-awaited coroutine.
    """

    def __init__(self, lock: ProfileLock, mode: LockMode, timeout: float):
        self._lock = lock
        self._mode: LockMode = mode
        self._timeout = timeout
        self._held: HeldLock | None = None

    def __await__(self) -> Generator[Any, None, HeldLock]:
        return self._lock._acquire(self._mode, self._timeout).__await__()

    async def __aenter__(self) -> HeldLock:
        self._held = await self._lock._acquire(self._mode, self._timeout)
        return self._held

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._held is not None:
            self._held.release()


class ProfileLock:
    """Cross-process shared/exclusive lock on the master profile (`flock` on `lock_path`)."""

    def __init__(self, lock_path: Path):
        self.lock_path = lock_path

    def shared(self, timeout: float) -> LockAcquisition:
        """Reader side: any number at once, none while an exclusive holder exists."""
        return LockAcquisition(self, "shared", timeout)

    def exclusive(self, timeout: float) -> LockAcquisition:
        """Writer side: only when nobody else holds the lock in any mode."""
        return LockAcquisition(self, "exclusive", timeout)

    async def _acquire(self, mode: LockMode, max_wait: float) -> HeldLock:
        # A descriptor of our own per acquisition: flock belongs to the open file description, so two
        # acquisitions in this process exclude each other exactly as two processes would. Opening a
        # small local file and a non-blocking flock are single syscalls, cheaper than a thread hop,
        # and keeping them on the loop means a cancellation can never strand an open descriptor.
        fd = self._open()
        operation = _FLOCK_OPERATION[mode] | fcntl.LOCK_NB
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        try:
            while True:
                try:
                    fcntl.flock(fd, operation)
                    return HeldLock(fd, mode, self.lock_path)
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise UserDataLocked(details=_locked_details(mode, max_wait), timeout=max_wait)
                # Polling rather than a blocking flock in a thread: a thread stuck in flock cannot be
                # cancelled and would grab the lock after its caller had given up.
                await asyncio.sleep(min(_POLL_INTERVAL, remaining))
        except BaseException:
            os.close(fd)
            raise

    def _open(self) -> int:
        # O_CLOEXEC: a Chromium child that inherited the descriptor would keep the lock alive after we
        # released ours, until the browser exits.
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        try:
            return os.open(self.lock_path, flags, 0o600)
        except FileNotFoundError:
            self.lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(self.lock_path, flags, 0o600)


def _locked_details(mode: LockMode, timeout: float) -> str:
    if mode == "shared":
        holder = "held exclusively (write-mode session or profile command)"
    else:
        holder = "in use (sessions being cloned, a write-mode session or a profile command)"
    return f"master profile is {holder}; not free within {timeout:g} s"
