"""Shared fixtures: a running TikTok stand-in site and real Chromium master profiles built against it."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio

from tests.support.profiles import CHROMIUM_PATH, build_master_profile
from tests.support.redis_server import RedisServer
from tests.support.standin.server import StandinServer

# sid_guard of the "expired_guard" profile: a 1 h session issued a day ago, cookie still in the browser.
EXPIRED_GUARD_MAX_AGE = 3600
EXPIRED_GUARD_ISSUED_AGO = 24 * 3600


@pytest.fixture(scope="session")
def standin() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def site(standin: StandinServer) -> Iterator[StandinServer]:
    """The session's stand-in site, put back to `normal` after the test whatever mode it set."""
    yield standin
    standin.set_mode("normal")


@pytest.fixture(scope="session")
async def master_profiles(
    standin: StandinServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Real profiles, built once: logged_in, logged_out, revoked, expired_guard. Copy before use."""
    if not CHROMIUM_PATH.exists():
        pytest.fail(f"{CHROMIUM_PATH} is missing: browser tests need Debian's Chromium", pytrace=False)
    root = tmp_path_factory.mktemp("master-profiles")
    profiles = {name: root / name for name in ("logged_in", "logged_out", "revoked", "expired_guard")}
    standin.set_mode("normal")
    await build_master_profile(profiles["logged_in"], standin.url, "alice")
    await build_master_profile(profiles["logged_out"], standin.url, None)
    await build_master_profile(profiles["revoked"], standin.url, "bob")
    # Server-side end of session: bob's cookies stay in the profile, as on real TikTok.
    standin.revoke("bob")
    await build_master_profile(
        profiles["expired_guard"],
        standin.url,
        "carol",
        max_age=EXPIRED_GUARD_MAX_AGE,
        issued_ago=EXPIRED_GUARD_ISSUED_AGO,
    )
    return profiles


@pytest.fixture
def display() -> Iterator[str]:
    """A virtual screen for the visible-window mode; the real one when the developer has a display."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.fail("Xvfb is missing: `make install` installs Debian's xvfb", pytrace=False)
    process = subprocess.Popen(
        [xvfb, "-displayfd", "1", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    number = process.stdout.readline().decode().strip()  # Xvfb prints the display once it is ready
    os.environ["DISPLAY"] = f":{number}"
    try:
        yield os.environ["DISPLAY"]
    finally:
        del os.environ["DISPLAY"]
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server of the test's own, on a free loopback port, without persistence."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """The test's own look into Redis: what the instances wrote there."""
    client = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    with contextlib.suppress(redis.RedisError):
        await client.aclose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that builds or uses a real master profile starts Chromium: it is a `browser` test
    (modules that start one otherwise say so themselves), so `make test-fast` can leave it out."""
    for item in items:
        if "master_profiles" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
