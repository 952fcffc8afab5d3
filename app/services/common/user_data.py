"""The user-data directory: the accounts' master profiles, throwaway clones, their crash-safe cleanup.

    <USER_DATA_DIR>/
        accounts/<name>/
            master/             the account's logged-in Chromium profile (written under the exclusive lock)
            master.lock         see `profile_lock`
            master.generation   changes whenever the master changes (see `generation`)
            identity.json       the account's device: fingerprint, locale, timezone, proxy (`identity`)
        clones/<id>/        one session's private copy of a master
        clones/<id>.owner   flock'ed LOCK_EX by the process that owns clones/<id>/, for its whole life

Earlier versions kept one master at `<USER_DATA_DIR>/master`; it becomes the account `default`
(`migrate_single_master`, safe to run again after an interruption).

The owner file is how a starting service tells a crashed worker's clone from a live worker's one: the
kernel drops a dead process's flocks, so a lockable owner file means nobody is using the clone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from app.core.errors import MasterProfileMissing
from app.services.common.profile_lock import ProfileLock

logger = logging.getLogger(__name__)

OWNER_SUFFIX = ".owner"

# Caches are rebuilt by Chromium on demand and make up most of a used profile's size (often >90 %), so
# skipping them is what makes a clone take milliseconds rather than seconds. Matched by name at any depth.
SKIPPED_CACHE_DIRS = frozenset(
    {
        "Cache",
        "Code Cache",
        "GPUCache",
        "GPUPersistentCache",
        "DawnCache",
        "DawnGraphiteCache",
        "DawnWebGPUCache",
        "GrShaderCache",
        "GraphiteDawnCache",
        "ShaderCache",
        "component_crx_cache",
        "extensions_crx_cache",
        "Crashpad",
        "BrowserMetrics",
        "optimization_guide_model_store",
    }
)

# These names are too generic to skip everywhere; only under a service worker store are they caches.
SKIPPED_CACHE_SUBPATHS = frozenset({("Service Worker", "CacheStorage"), ("Service Worker", "ScriptCache")})

# Chromium's process-singleton files: a copied SingletonLock (a symlink to "<host>-<pid>") makes the
# clone's browser believe the profile is in use and refuse to start. DevToolsActivePort would point a
# client at the master browser's debugging port. LevelDB `LOCK` files, by contrast, are plain empty files
# that each database re-locks on open, so they are copied like any other file.
SKIPPED_FILE_PREFIXES = ("Singleton", "DevToolsActivePort", "BrowserMetrics")

# A stray owner file (no clone directory next to it) is normally a clone being created right now: the
# owner file is created, then locked, then the directory made. Only one this old is certainly abandoned.
STRAY_OWNER_GRACE_SECONDS = 60.0

PROFILE_HOWTO = (
    "create one with `python -m app.cli profile login` (log in by hand in the window that opens) "
    "or `python -m app.cli profile import-cookies FILE`"
)


DEFAULT_ACCOUNT = "default"
# Account names become folder names and appear in URLs and logs.
ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def is_account_name(name: str) -> bool:
    return ACCOUNT_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class UserDataLayout:
    """Where one account's files are (`account`, `default` unless named), and the shared clones."""

    root: Path
    account: str = DEFAULT_ACCOUNT

    def __post_init__(self) -> None:
        if not is_account_name(self.account):
            raise ValueError(f"invalid account name {self.account!r}")

    @property
    def accounts(self) -> Path:
        return self.root / "accounts"

    @property
    def account_dir(self) -> Path:
        return self.accounts / self.account

    @property
    def master(self) -> Path:
        return self.account_dir / "master"

    @property
    def clones(self) -> Path:
        return self.root / "clones"

    @property
    def lock_file(self) -> Path:
        return self.account_dir / "master.lock"

    @property
    def generation_file(self) -> Path:
        return self.account_dir / "master.generation"

    @property
    def identity_file(self) -> Path:
        return self.account_dir / "identity.json"

    def for_account(self, account: str) -> UserDataLayout:
        return UserDataLayout(self.root, account)

    def account_names(self) -> list[str]:
        """Accounts: folders under accounts/ with a master/ inside. Blocking."""
        migrate_single_master(self.root)
        try:
            entries = sorted(os.scandir(self.accounts), key=lambda entry: entry.name)
        except FileNotFoundError:
            return []
        return [
            entry.name
            for entry in entries
            if is_account_name(entry.name) and os.path.isdir(os.path.join(entry.path, "master"))
        ]

    def clone_dir(self, clone_id: str) -> Path:
        return self.clones / clone_id

    def owner_file(self, clone_id: str) -> Path:
        return self.clones / f"{clone_id}{OWNER_SUFFIX}"

    def require_master(self) -> Path:
        """The master profile directory, or `MasterProfileMissing` saying how to make one. Blocking."""
        if not (self.master / "Default").is_dir():
            state = "has no Default/ profile" if self.master.is_dir() else "does not exist"
            how = PROFILE_HOWTO if self.account == DEFAULT_ACCOUNT else _howto_for(self.account)
            raise MasterProfileMissing(f"master profile {self.master} {state}; {how}")
        return self.master

    def ensure(self) -> None:
        """Create the root, the account's and the clones directories (private: profiles hold login
        cookies), moving a single-master layout into place first. Blocking."""
        for directory in (self.root, self.accounts, self.account_dir, self.clones):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        migrate_single_master(self.root)


def _howto_for(account: str) -> str:
    return (
        f"log it in with `python -m app.cli profile login --account {account}` (or `--remote` without a "
        f"display), or `python -m app.cli profile import-cookies --account {account} FILE`"
    )


def migrate_single_master(root: Path) -> bool:
    """`<root>/master` (the single-master layout) becomes the account `default`, nothing lost.

    Each step is one rename on the same file system, the marker before the profile: an interrupted
    migration leaves either step undone, and running this again finishes it. An account `default`
    that already has a master is never overwritten. Returns whether a master was moved. Blocking.
    """
    old_master = root / "master"
    if not old_master.is_dir():
        return False
    target = root / "accounts" / DEFAULT_ACCOUNT
    if (target / "master").exists():
        logger.warning("accounts.migration_skipped reason=accounts/default/master exists root=%s", root)
        return False
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    old_generation = root / "master.generation"
    if old_generation.exists() and not (target / "master.generation").exists():
        os.rename(old_generation, target / "master.generation")
    os.rename(old_master, target / "master")
    # The old lock file guarded the old path; nobody can hold it for the new one.
    _unlink_quietly(root / "master.lock")
    logger.info("accounts.migrated account=default root=%s", root)
    return True


class OwnedDir:
    """A directory owned by this process (its `<id>.owner` file flock'ed) until it is removed.

    `remove()` is idempotent and safe to call from several tasks at once: every caller returns only once
    the directory is gone. `sweep_orphans()` deletes the ones whose owner died.
    """

    def __init__(self, parent: Path, dir_id: str, owner_fd: int):
        self.dir_id = dir_id
        self.path = parent / dir_id
        self.owner_file = parent / f"{dir_id}{OWNER_SUFFIX}"
        self._owner_fd: int | None = owner_fd
        self._remove_lock = threading.Lock()

    @classmethod
    def claim_sync(cls, parent: Path, dir_id: str) -> Self:
        """Claim `dir_id` under `parent` and make its empty directory. Blocking."""
        _check_clone_id(dir_id)
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner_file = parent / f"{dir_id}{OWNER_SUFFIX}"
        # Owner file first, locked, and only then the directory: a sweeper must never see the directory
        # without a locked owner next to it.
        fd = os.open(owner_file, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # For a human looking at a stuck directory; the lock, not this pid, is what sweeping trusts.
            os.write(fd, f"{os.getpid()}\n".encode())
            os.mkdir(parent / dir_id, 0o700)
        except BaseException:
            _unlink_quietly(owner_file)
            os.close(fd)
            raise
        return cls(parent, dir_id, fd)

    @property
    def removed(self) -> bool:
        return self._owner_fd is None

    async def remove(self) -> None:
        """Delete the clone directory and its owner file, then give up ownership. Idempotent."""
        if self.removed:
            return
        await asyncio.to_thread(self.remove_sync)

    def remove_sync(self) -> None:
        """Blocking `remove()`, for exit paths that have no event loop."""
        with self._remove_lock:
            if self._owner_fd is None:
                return
            # Directory before owner file, while still holding the lock: a concurrent sweeper keeps
            # its hands off until the directory is gone.
            _rmtree(self.path)
            _unlink_quietly(self.owner_file)
            os.close(self._owner_fd)
            self._owner_fd = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dir_id={self.dir_id!r}, removed={self.removed})"


class Clone(OwnedDir):
    """One session's private copy of the master. Build it with `clone_master()`."""

    def __init__(self, parent: Path, dir_id: str, owner_fd: int):
        super().__init__(parent, dir_id, owner_fd)
        # What the copy wrote and how long it took: for the metrics and the benchmark.
        self.bytes_copied = 0
        self.copy_seconds = 0.0

    @property
    def clone_id(self) -> str:
        return self.dir_id

    @classmethod
    def create_sync(cls, layout: UserDataLayout, clone_id: str) -> Clone:
        """Claim `clone_id` and make its empty directory. Blocking."""
        layout.ensure()
        return cls.claim_sync(layout.clones, clone_id)


class _CopyAborted(Exception):
    """The awaiting task was cancelled; the copying thread stops at the next file."""


async def clone_master(
    layout: UserDataLayout, lock: ProfileLock, lock_timeout: float, clone_id: str
) -> Clone:
    """Copy the master profile into `clones/<clone_id>/`, leaving caches and Chromium's lock files out.

    Raises `MasterProfileMissing` when there is no usable master and `UserDataLocked` when a writer
    keeps the master for longer than `lock_timeout`. On any failure, cancellation included, nothing of
    the clone is left on disk.
    """
    # The shared lock only spans the copy: a half-written master (login in progress, write-mode session)
    # is never copied, and a writer waits for copies, not for whole sessions.
    async with lock.shared(lock_timeout):
        abort = threading.Event()
        job = asyncio.ensure_future(asyncio.to_thread(_clone_master_sync, layout, clone_id, abort))
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            # The worker thread cannot be interrupted. Ask it to stop, and wait — with the shared lock
            # still held — until it has deleted what it copied, so no half clone outlives this call.
            abort.set()
            await _wait_despite_cancellation(job)
            if not job.cancelled() and job.exception() is None:
                # The copy finished just before it could see the abort request.
                await _wait_despite_cancellation(asyncio.to_thread(job.result().remove_sync))
            raise


async def sweep_orphan_clones(layout: UserDataLayout) -> list[str]:
    """Delete clones whose owning process is gone (left by a crash); return their ids.

    A clone owned by a live process — another worker, or this one — is never touched.
    """
    return await sweep_orphans(layout.clones)


async def sweep_orphans(parent: Path) -> list[str]:
    """Delete the owned directories under `parent` whose owning process is gone; return their ids."""
    return await asyncio.to_thread(_sweep_sync, parent)


def _clone_master_sync(layout: UserDataLayout, clone_id: str, abort: threading.Event) -> Clone:
    master = layout.require_master()
    started = time.perf_counter()
    clone = Clone.create_sync(layout, clone_id)
    try:
        clone.bytes_copied = _copy_tree(master, clone.path, master, clone.path, (), abort)
    except BaseException:
        clone.remove_sync()
        raise
    clone.copy_seconds = time.perf_counter() - started
    logger.info(
        "clone.created",
        extra={
            "clone_id": clone_id,
            "elapsed_ms": round(clone.copy_seconds * 1000, 1),
            "bytes": clone.bytes_copied,
        },
    )
    return clone


def _copy_tree(
    src: Path, dst: Path, master: Path, clone: Path, rel: tuple[str, ...], abort: threading.Event
) -> int:
    """Copy `src` (an existing directory) into the existing `dst`, without following any symlink.

    Returns the number of file bytes copied.
    """
    copied = 0
    try:
        entries = list(os.scandir(src))
    except FileNotFoundError:
        return copied
    for entry in entries:
        if abort.is_set():
            raise _CopyAborted
        if _skipped(entry, rel):
            continue
        target = dst / entry.name
        try:
            if entry.is_symlink():
                os.symlink(_relocated_link(os.readlink(entry.path), master, clone), target)
            elif entry.is_dir(follow_symlinks=False):
                os.mkdir(target, 0o700)
                copied += _copy_tree(Path(entry.path), target, master, clone, (*rel, entry.name), abort)
            elif entry.is_file(follow_symlinks=False):
                # copyfile uses sendfile(2) on Linux: the bytes never pass through Python.
                shutil.copy2(entry.path, target, follow_symlinks=False)
                copied += entry.stat(follow_symlinks=False).st_size
            # Sockets and FIFOs have no content to copy.
        except FileNotFoundError:
            # Journals and temp files can vanish between listing and copying; they were transient.
            continue
    return copied


def _skipped(entry: os.DirEntry[str], rel: tuple[str, ...]) -> bool:
    if entry.is_dir(follow_symlinks=False):
        return entry.name in SKIPPED_CACHE_DIRS or (rel[-1:] + (entry.name,)) in SKIPPED_CACHE_SUBPATHS
    return entry.name.startswith(SKIPPED_FILE_PREFIXES)


def _relocated_link(target: str, master: Path, clone: Path) -> str:
    """Keep a link pointing inside the profile pointing inside the clone, never back into the master."""
    path = Path(target)
    if path.is_absolute() and path.is_relative_to(master):
        return str(clone / path.relative_to(master))
    return target


def _sweep_sync(parent: Path) -> list[str]:
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return []
    directories = {entry.name for entry in entries if entry.is_dir(follow_symlinks=False)}
    removed: list[str] = []
    for entry in entries:
        if entry.name in directories:
            clone_id = entry.name
        elif entry.name.endswith(OWNER_SUFFIX) and entry.name[: -len(OWNER_SUFFIX)] not in directories:
            clone_id = entry.name[: -len(OWNER_SUFFIX)]
            if not _older_than(entry, STRAY_OWNER_GRACE_SECONDS):
                continue
        else:
            continue
        if _remove_if_orphaned(parent, clone_id):
            removed.append(clone_id)
    if removed:
        logger.info("orphans_removed parent=%s count=%d ids=%s", parent, len(removed), ",".join(removed))
    return removed


def _remove_if_orphaned(parent: Path, clone_id: str) -> bool:
    owner_file = parent / f"{clone_id}{OWNER_SUFFIX}"
    try:
        # No O_CREAT: a missing owner file is itself the proof that nobody owns the directory.
        fd: int | None = os.open(owner_file, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # its owner is alive
        try:
            _rmtree(parent / clone_id)
        except OSError as exc:
            logger.warning("clone.orphan_remove_failed clone_id=%s error=%s", clone_id, exc)
            return False
        _unlink_quietly(owner_file)
        return True
    finally:
        if fd is not None:
            os.close(fd)


def _older_than(entry: os.DirEntry[str], seconds: float) -> bool:
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > seconds
    except FileNotFoundError:
        return False


def _rmtree(path: Path) -> None:
    """`shutil.rmtree` that treats anything already gone as removed."""

    def ignore_vanished(function: object, failed_path: str, error: BaseException) -> None:
        if not isinstance(error, FileNotFoundError):
            raise error

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=ignore_vanished)
    else:  # `onexc` is 3.12+; on 3.11 `onerror` is the same hook (not yet deprecated there)
        shutil.rmtree(path, onerror=lambda f, p, info: ignore_vanished(f, p, info[1]))


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _check_clone_id(clone_id: str) -> None:
    # The id becomes a path component next to other clones; anything path-like could escape clones/.
    if (
        not clone_id
        or clone_id.startswith(".")
        or clone_id.endswith(OWNER_SUFFIX)
        or os.sep in clone_id
        or (os.altsep and os.altsep in clone_id)
    ):
        raise ValueError(f"invalid clone id {clone_id!r}")


async def _wait_despite_cancellation(awaitable: Awaitable[object]) -> None:
    """Wait until `awaitable` has finished, even if this task is cancelled again meanwhile.

    Only for cleanup on a path that already ends by re-raising a cancellation.
    """
    future = asyncio.ensure_future(awaitable)
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            continue
    if not future.cancelled():
        future.exception()  # mark it retrieved: the caller decides what the outcome means
