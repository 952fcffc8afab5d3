"""Cloning the master profile and sweeping orphan clones, on real files with real processes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from pathlib import Path

import pytest

from app.core.errors import MasterProfileMissing, UserDataLocked
from app.services.common.profile_lock import ProfileLock
from app.services.common.user_data import (
    STRAY_OWNER_GRACE_SECONDS,
    Clone,
    UserDataLayout,
    clone_master,
    sweep_orphan_clones,
)
from tests.support.holders import READY_TIMEOUT, held_by_other_process

KEPT_FILES = {
    "Local State": b'{"profile": {"info_cache": {}}}',
    "Default/Preferences": b'{"profile": {"name": "master"}}',
    "Default/Cookies": b"SQLite format 3\x00" + bytes(range(256)) * 64,
    "Default/Local Storage/leveldb/CURRENT": b"MANIFEST-000001\n",
    "Default/Local Storage/leveldb/LOCK": b"",
    "Default/Local Storage/leveldb/000003.log": os.urandom(4096),
    "Default/IndexedDB/https_www.tiktok.com_0.indexeddb.leveldb/000005.ldb": os.urandom(8192),
    "Default/Service Worker/Database/000001.log": b"sw registrations",
}
SKIPPED_FILES = [
    "Default/Cache/Cache_Data/0123456789abcdef_0",
    "Default/Code Cache/js/index",
    "Default/GPUCache/data_0",
    "Default/DawnWebGPUCache/data_0",
    "Default/Service Worker/CacheStorage/abc/index",
    "Default/Service Worker/ScriptCache/0123_0",
    "GrShaderCache/data_1",
    "component_crx_cache/abc.crx3",
    "Crashpad/settings.dat",
    "BrowserMetrics/BrowserMetrics-1.pma",
    "BrowserMetrics-spare.pma",
    "DevToolsActivePort",
]
SINGLETON_LINKS = {
    "SingletonLock": "buildhost-4242",
    "SingletonSocket": "/tmp/.org.chromium.Chromium.abc/SingletonSocket",
    "SingletonCookie": "1234567890",
}


def build_master(layout: UserDataLayout) -> None:
    """A small profile shaped like a used Chromium one, including a live browser's singleton links."""
    layout.ensure()
    for relative, content in KEPT_FILES.items():
        write(layout.master / relative, content)
    for relative in SKIPPED_FILES:
        write(layout.master / relative, b"cache or lock")
    for name, target in SINGLETON_LINKS.items():
        os.symlink(target, layout.master / name)


def write(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


def tree_state(root: Path) -> dict[str, str]:
    """Every entry under root with its kind and content (hash) or link target."""
    state: dict[str, str] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                state[relative] = "link:" + os.readlink(path)
            elif path.is_dir():
                state[relative] = "dir"
            else:
                state[relative] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def clones_listing(layout: UserDataLayout) -> list[str]:
    return sorted(os.listdir(layout.clones)) if layout.clones.exists() else []


@pytest.fixture
def layout(tmp_path: Path) -> UserDataLayout:
    layout = UserDataLayout(tmp_path / "user_data")
    build_master(layout)
    return layout


@pytest.fixture
def lock(layout: UserDataLayout) -> ProfileLock:
    return ProfileLock(layout.lock_file)


# --- cloning -------------------------------------------------------------------------------------


async def test_clone_leaves_out_caches_and_chromium_lock_files(layout: UserDataLayout, lock: ProfileLock):
    clone = await clone_master(layout, lock, 1, "c1")
    for relative in SKIPPED_FILES:
        assert not (clone.path / relative).exists(), relative
    for name in SINGLETON_LINKS:
        assert not (clone.path / name).is_symlink(), name
    for cache_dir in ("Default/Cache", "Default/Code Cache", "Default/Service Worker/CacheStorage"):
        assert not (clone.path / cache_dir).exists(), cache_dir
    await clone.remove()


async def test_clone_copies_profile_data_byte_for_byte(layout: UserDataLayout, lock: ProfileLock):
    clone = await clone_master(layout, lock, 1, "c1")
    for relative, content in KEPT_FILES.items():
        assert (clone.path / relative).read_bytes() == content, relative
    assert ((clone.path / "Default/Cookies").stat().st_mode & 0o777) == (
        (layout.master / "Default/Cookies").stat().st_mode & 0o777
    )
    await clone.remove()


async def test_clone_keeps_symlinks_as_links_without_pointing_back_into_master(
    layout: UserDataLayout, lock: ProfileLock
):
    os.symlink("Preferences", layout.master / "Default/Preferences.link")
    os.symlink(layout.master / "Default/Cookies", layout.master / "Default/Cookies.link")
    os.symlink("/etc/hostname", layout.master / "Default/outside.link")
    clone = await clone_master(layout, lock, 1, "c1")
    assert os.readlink(clone.path / "Default/Preferences.link") == "Preferences"
    assert os.readlink(clone.path / "Default/Cookies.link") == str(clone.path / "Default/Cookies")
    # Copied as a link, not as the file it names.
    assert os.readlink(clone.path / "Default/outside.link") == "/etc/hostname"
    await clone.remove()


async def test_clone_leaves_master_untouched(layout: UserDataLayout, lock: ProfileLock):
    before = tree_state(layout.master)
    clone = await clone_master(layout, lock, 1, "c1")
    await clone.remove()
    assert tree_state(layout.master) == before


async def test_clone_without_master_raises_master_profile_missing(tmp_path: Path):
    layout = UserDataLayout(tmp_path / "empty")
    with pytest.raises(MasterProfileMissing) as raised:
        await clone_master(layout, ProfileLock(layout.lock_file), 1, "c1")
    assert "profile login" in raised.value.details
    assert clones_listing(layout) == []


async def test_clone_of_master_without_default_profile_raises(tmp_path: Path):
    layout = UserDataLayout(tmp_path / "user_data")
    write(layout.master / "Local State", b"{}")
    with pytest.raises(MasterProfileMissing):
        await clone_master(layout, ProfileLock(layout.lock_file), 1, "c1")
    assert clones_listing(layout) == []


async def test_clone_while_another_process_writes_master_times_out_leaving_nothing(
    layout: UserDataLayout, lock: ProfileLock
):
    async with held_by_other_process("exclusive", layout.lock_file):
        started = time.monotonic()
        with pytest.raises(UserDataLocked):
            await clone_master(layout, lock, 0.3, "c1")
        assert time.monotonic() - started >= 0.3
    assert clones_listing(layout) == []


async def test_clone_releases_the_shared_lock_once_copied(layout: UserDataLayout, lock: ProfileLock):
    clone = await clone_master(layout, lock, 1, "c1")
    (await lock.exclusive(0)).release()
    await clone.remove()


async def test_cancelled_clone_leaves_nothing_on_disk(layout: UserDataLayout, lock: ProfileLock):
    # Enough files that the copy is still running when the clone directory first appears.
    big = layout.master / "Default/IndexedDB/big.leveldb"
    big.mkdir(parents=True)
    for index in range(1000):
        (big / f"{index:06d}.ldb").write_bytes(b"x" * 512)
    task = asyncio.create_task(clone_master(layout, lock, 1, "c1"))
    deadline = time.monotonic() + READY_TIMEOUT
    while not layout.clone_dir("c1").exists():
        assert time.monotonic() < deadline, "the clone never started"
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clones_listing(layout) == []
    (await lock.exclusive(0)).release()


async def test_remove_is_idempotent_and_safe_to_race(layout: UserDataLayout, lock: ProfileLock):
    clone = await clone_master(layout, lock, 1, "c1")
    await asyncio.gather(clone.remove(), clone.remove())
    await clone.remove()
    clone.remove_sync()
    assert clone.removed
    assert clones_listing(layout) == []


async def test_invalid_clone_id_is_refused(layout: UserDataLayout, lock: ProfileLock):
    for clone_id in ("", "../escape", ".hidden", "x.owner"):
        with pytest.raises(ValueError):
            await clone_master(layout, lock, 1, clone_id)
    assert clones_listing(layout) == []


# --- sweeping orphans ----------------------------------------------------------------------------


async def test_sweep_removes_the_clone_of_a_killed_process(layout: UserDataLayout):
    async with held_by_other_process("clone", layout.root, "dead") as proc:
        proc.kill()  # SIGKILL: no cleanup code runs, exactly like a crash
        await proc.wait()
    assert await sweep_orphan_clones(layout) == ["dead"]
    assert clones_listing(layout) == []


async def test_sweep_keeps_the_clone_of_a_live_process(layout: UserDataLayout):
    async with held_by_other_process("clone", layout.root, "alive"):
        assert await sweep_orphan_clones(layout) == []
        assert layout.clone_dir("alive").is_dir()
    # It exited without removing its clone: from now on that clone is an orphan like a crashed one's.
    assert await sweep_orphan_clones(layout) == ["alive"]


async def test_sweep_keeps_a_clone_this_process_holds(layout: UserDataLayout, lock: ProfileLock):
    clone = await clone_master(layout, lock, 1, "mine")
    assert await sweep_orphan_clones(layout) == []
    assert clone.path.is_dir()
    await clone.remove()


async def test_sweep_removes_a_directory_without_owner_file(layout: UserDataLayout):
    write(layout.clone_dir("legacy") / "Default/Preferences", b"{}")
    assert await sweep_orphan_clones(layout) == ["legacy"]
    assert clones_listing(layout) == []


async def test_sweep_removes_only_stray_owner_files_past_the_grace_period(layout: UserDataLayout):
    write(layout.owner_file("old"), b"")
    write(layout.owner_file("fresh"), b"")
    past = time.time() - STRAY_OWNER_GRACE_SECONDS - 5
    os.utime(layout.owner_file("old"), (past, past))
    assert await sweep_orphan_clones(layout) == ["old"]
    assert clones_listing(layout) == ["fresh.owner"]


async def test_sweep_without_clones_directory_finds_nothing(tmp_path: Path):
    assert await sweep_orphan_clones(UserDataLayout(tmp_path / "nothing")) == []


async def test_clone_owner_survives_until_removed(layout: UserDataLayout):
    clone = await asyncio.to_thread(Clone.create_sync, layout, "c1")
    assert clones_listing(layout) == ["c1", "c1.owner"]
    await clone.remove()
    assert clones_listing(layout) == []
