"""More than one machine (SPEC §10): real instances on loopback sharing a real Redis server.

Each test starts its own `redis-server` (Debian's, no persistence) on a free port, and two instances of
the service with separate user-data dirs and the same REDIS_URL: in this process, or (to be killed with
SIGKILL) as a `python -m app` process of its own. Sessions run real Chromium against the stand-in site.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.forwarding import PEER_HEADER, SIGNATURE_WINDOW
from app.api.state import app_state
from app.main import create_app
from app.services.cluster.registry import RECOVERY_KEY, SLOTS_KEY, master_lock_key, record_key
from tests.support import free_port
from tests.support.harness import (
    API_KEY,
    SERVICE_VARIABLES,
    RunningService,
    assert_error,
    bound_socket,
    browsers_under,
    serving,
    settings_for_test,
    wait_until,
)
from tests.support.playwright_client import PlaywrightClient
from tests.support.profiles import install_master
from tests.support.redis_server import RedisServer
from tests.support.standin.server import StandinServer

MASTER_LOCK_KEY = master_lock_key("default")

pytestmark = pytest.mark.browser

REGISTRY_TTL = 3  # seconds: short, so a dead instance's sessions are gone quickly
# Registry changes that the heartbeat makes (republishing after an outage) take REGISTRY_TTL / 3 at most
# on an idle machine; a loaded 2-core machine gets this much.
SETTLE_DEADLINE = 20.0
START_DEADLINE = 60.0  # `python -m app` importing everything and listening, on a loaded machine
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VIEWER = (
    "JSON.parse(document.getElementById('__UNIVERSAL_DATA_FOR_REHYDRATION__').textContent)"
    ".__DEFAULT_SCOPE__['webapp.app-context'].user.uniqueId"
)


def cluster_values(
    user_data_dir: Path, site: StandinServer, redis_url: str, **overrides: Any
) -> dict[str, Any]:
    return {
        "USER_DATA_DIR": user_data_dir,
        "TIKTOK_URL": site.url,
        "API_KEYS": [API_KEY],
        "LOGIN_DETECTION_TIMEOUT": 8,
        "SESSION_START_TIMEOUT": 30,
        "REDIS_URL": redis_url,
        "REGISTRY_TTL": REGISTRY_TTL,
        **overrides,
    }


@dataclass(frozen=True)
class RequestHead:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]


class PeerRequests:
    """Wraps an instance's app and keeps the head of every request that came signed by another instance,
    as it arrived on the wire: what someone listening between the instances would have captured."""

    def __init__(self) -> None:
        self.heads: list[RequestHead] = []

    def around(self, app: ASGIApp) -> ASGIApp:
        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                raw = scope["headers"]
                headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
                if any(name.lower() == PEER_HEADER.lower() for name, _ in headers):
                    query = scope["query_string"].decode("latin-1")
                    self.heads.append(RequestHead(scope.get("method", "GET"), scope["path"], query, headers))
            await app(scope, receive, send)

        return recording


@asynccontextmanager
async def instance(
    user_data_dir: Path,
    site: StandinServer,
    redis_url: str,
    recorder: PeerRequests | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningService]:
    """One instance in this process, on a port known before it starts (its INSTANCE_URL names it)."""
    sock = bound_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    values = cluster_values(user_data_dir, site, redis_url, INSTANCE_URL=base_url, **overrides)
    settings = settings_for_test(**values)
    app = create_app(settings)
    async with serving(
        app, settings, sock, recorder.around(app) if recorder is not None else None
    ) as running:
        yield running


@asynccontextmanager
async def two_instances(
    tmp_path: Path,
    site: StandinServer,
    master: Path,
    redis_url: str,
    recorder: PeerRequests | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[RunningService, RunningService]]:
    """A and B: same Redis, same keys, each with its own copy of the logged-in master; settled."""
    for name in ("a", "b"):
        install_master(master, tmp_path / name)
    async with (
        instance(tmp_path / "a", site, redis_url, recorder, **overrides) as a,
        instance(tmp_path / "b", site, redis_url, **overrides) as b,
    ):
        await registry_settled(redis_url)
        yield a, b


async def registry_settled(redis_url: str) -> None:
    """Until the registry grants sessions. A Redis without the cluster's generation key cannot be told from
    one that lost its data, so a new cluster waits REGISTRY_TTL like one after a loss (SPEC §10)."""
    store = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + REGISTRY_TTL + SETTLE_DEADLINE
        while await store.exists(RECOVERY_KEY):
            assert time.monotonic() < deadline, f"{RECOVERY_KEY} outlived REGISTRY_TTL"
            await asyncio.sleep(0.1)
    finally:
        await store.aclose()


async def create(service: RunningService) -> dict[str, Any]:
    response = await service.client.post("/tiktok/session")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["X-Session-Id"] == body["session_id"]
    return body


async def listed_ids(service: RunningService) -> list[str]:
    response = await service.client.get("/tiktok/sessions")
    assert response.status_code == 200, response.text
    return [session["session_id"] for session in response.json()["sessions"]]


@asynccontextmanager
async def service_process(
    user_data_dir: Path, site: StandinServer, redis_url: str, **overrides: Any
) -> AsyncIterator[tuple[asyncio.subprocess.Process, httpx.AsyncClient]]:
    """`python -m app` as an instance of its own, so that it can be killed with SIGKILL."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    values = cluster_values(
        user_data_dir, site, redis_url, HOST="127.0.0.1", PORT=port, INSTANCE_URL=base_url
    )
    values.update(overrides)
    environment = {name: value for name, value in os.environ.items() if name.upper() not in SERVICE_VARIABLES}
    for name, value in values.items():
        environment[name] = ",".join(value) if isinstance(value, list) else str(value)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    # The working directory of a fresh temporary dir: no developer's .env is read.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", env=environment, cwd=user_data_dir.parent, stdout=log, stderr=log
    )
    client = httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": API_KEY}, timeout=60)
    try:
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if process.returncode is not None:
                log.seek(0)
                raise AssertionError(f"the instance exited:\n{log.read().decode(errors='replace')[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/health", timeout=1)).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"the instance did not listen within {START_DEADLINE} s")
            await asyncio.sleep(0.1)
        yield process, client
    finally:
        await client.aclose()
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), 15)
        log.close()


# --- one cluster, many doors ---------------------------------------------------------------------------


async def test_a_session_created_on_one_instance_is_listed_and_read_on_the_other(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, site, master_profiles["logged_in"], redis_server.url) as (a, b):
        session_id = (await create(a))["session_id"]
        assert await listed_ids(b) == [session_id]
        assert await listed_ids(a) == [session_id]

        info = (await b.client.get(f"/tiktok/session/{session_id}")).json()
        assert info["status"] == "success"
        assert info["session_id"] == session_id
        assert info["state"] == "live" and info["mode"] == "read"
        assert info["login"]["state"] == "logged_in"
        # Its links lead to the instance the client asked, which forwards to the owner.
        ws_base = b.base_url.replace("http://", "ws://")
        assert info["cdp_url"].startswith(f"{ws_base}/tiktok/session/{session_id}/cdp?token=")
        assert info["view_url"].startswith(f"{b.base_url}/tiktok/session/{session_id}/view?token=")
        assert (a.clone_dirs(), b.clone_dirs()) == ([a.clones_dir / session_id], [])


async def test_a_playwright_client_attached_through_the_other_instance_drives_the_logged_in_page(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, site, master_profiles["logged_in"], redis_server.url) as (a, b):
        session_id = (await create(a))["session_id"]
        cdp_url = (await b.client.get(f"/tiktok/session/{session_id}")).json()["cdp_url"]
        client = await PlaywrightClient.attach(cdp_url)
        try:
            pages = await client.run("pages")
            assert pages["contexts"] == 1
            assert pages["urls"] == [site.url], "the page on which A proved the login"
            assert (await client.run("evaluate", expression=VIEWER))["value"] == "alice"
            # Two relays: B's, to A's /cdp, and A's, to the browser.
            forwarder = app_state(b.app).forwarder
            assert forwarder is not None and forwarder.relays.open_count == 1
            assert a.service.relays_open() == 1
        finally:
            await client.kill()
        await wait_until(lambda: a.service.relays_open() == 0, 20, "A's relay to close after the client left")
        assert (
            await a.client.get(f"/tiktok/session/{session_id}")
        ).status_code == 200, "the session lives on"


async def test_screenshot_view_and_keepalive_are_forwarded_and_the_owner_checks_the_clients_token(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, site, master_profiles["logged_in"], redis_server.url) as (a, b):
        session_id = (await create(a))["session_id"]
        token = (await a.client.get(f"/tiktok/session/{session_id}")).json()["cdp_url"].split("token=")[1]
        async with httpx.AsyncClient(base_url=b.base_url, timeout=60) as bare:
            path = f"/tiktok/session/{session_id}"
            shot = await bare.get(f"{path}/screenshot", params={"token": token})
            assert shot.status_code == 200, shot.text
            assert shot.headers["content-type"] == "image/png" and shot.content.startswith(PNG_SIGNATURE)
            view = await bare.get(f"{path}/view", params={"token": token})
            assert view.status_code == 200 and view.headers["content-type"].startswith("text/html")
            # The page's own URLs are relative to it: its stream and pictures come through B too.
            assert f'"frame": "view/frame?token={token}"' in view.text

            assert_error(
                await bare.get(f"{path}/screenshot", params={"token": "x" + token}), 401, "UNAUTHORIZED"
            )
            assert_error(await bare.get(f"{path}/screenshot"), 401, "UNAUTHORIZED")

        kept = await b.client.post(f"{path}/keepalive")
        assert kept.status_code == 200, kept.text
        assert kept.json()["session_id"] == session_id
        assert kept.json()["cdp_url"].startswith(b.base_url.replace("http://", "ws://")), "links name B"

        # The owner decides: a peer's signature with no credentials of a client gets nothing from A.
        forwarder = app_state(b.app).forwarder
        assert forwarder is not None
        signature = forwarder.sign("GET", f"{path}/screenshot", "", b"")
        async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as peer_only:
            refused = await peer_only.get(f"{path}/screenshot", headers={PEER_HEADER: signature})
            assert_error(refused, 401, "UNAUTHORIZED")
            forged = await peer_only.delete(path, headers={PEER_HEADER: "1.bad", "X-API-Key": API_KEY})
            assert_error(forged, 401, "UNAUTHORIZED")
        assert await listed_ids(a) == [session_id]


async def test_delete_through_the_other_instance_ends_the_session_on_its_owner(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, site, master_profiles["logged_in"], redis_server.url) as (a, b):
        session_id = (await create(a))["session_id"]
        clone = a.clones_dir / session_id
        assert clone.is_dir()

        deleted = await b.client.delete(f"/tiktok/session/{session_id}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"status": "success", "message": "Session ended", "session_id": session_id}
        # Answered only once the owner closed the browser and deleted the clone.
        assert not clone.exists()
        assert browsers_under(clone) == []
        for service in (a, b):
            assert_error(await service.client.get(f"/tiktok/session/{session_id}"), 404, "SESSION_NOT_FOUND")
            assert await listed_ids(service) == []
        assert_error(await b.client.delete(f"/tiktok/session/{session_id}"), 404, "SESSION_NOT_FOUND")


# --- the cluster cap -------------------------------------------------------------------------------------


async def test_a_burst_spread_over_both_instances_never_passes_the_cluster_cap(
    tmp_path: Path,
    site: StandinServer,
    master_profiles: dict[str, Path],
    redis_server: RedisServer,
    store: redis.asyncio.Redis,
) -> None:
    async with two_instances(
        tmp_path, site, master_profiles["logged_in"], redis_server.url, CLUSTER_MAX_SESSIONS=3
    ) as (a, b):
        burst = [service.client.post("/tiktok/session") for service in (a, b, a, b, a, b)]
        answers = await asyncio.gather(*burst)
        statuses = sorted(response.status_code for response in answers)
        assert statuses == [200, 200, 200, 429, 429, 429], [r.text for r in answers]
        for refused in (r for r in answers if r.status_code == 429):
            body = assert_error(refused, 429, "TOO_MANY_SESSIONS")
            assert "CLUSTER_MAX_SESSIONS" in body["error_details"]["details"]
            assert int(refused.headers["Retry-After"]) >= 1
        created = {r.json()["session_id"] for r in answers if r.status_code == 200}
        assert set(await listed_ids(a)) == created == set(await listed_ids(b))
        assert await store.zcard(SLOTS_KEY) == 3

        # An end frees its slot at once, whichever instance it was on.
        ended = next(iter(created))
        assert (await b.client.delete(f"/tiktok/session/{ended}")).status_code == 200
        assert await store.zcard(SLOTS_KEY) == 2
        await create(b)
        assert_error(await a.client.post("/tiktok/session"), 429, "TOO_MANY_SESSIONS")


async def test_a_killed_instances_sessions_leave_the_registry_within_registry_ttl_and_free_their_slots(
    tmp_path: Path,
    site: StandinServer,
    master_profiles: dict[str, Path],
    redis_server: RedisServer,
    store: redis.asyncio.Redis,
) -> None:
    install_master(master_profiles["logged_in"], tmp_path / "a")
    install_master(master_profiles["logged_in"], tmp_path / "b")
    async with (
        service_process(tmp_path / "a", site, redis_server.url, CLUSTER_MAX_SESSIONS=2) as (process_a, a),
        instance(tmp_path / "b", site, redis_server.url, CLUSTER_MAX_SESSIONS=2) as b,
    ):
        await registry_settled(redis_server.url)
        on_a = set()
        for _ in range(2):
            response = await a.post("/tiktok/session")
            assert response.status_code == 200, response.text
            on_a.add(response.json()["session_id"])
        assert set(await listed_ids(b)) == on_a
        assert_error(await b.client.post("/tiktok/session"), 429, "TOO_MANY_SESSIONS")

        process_a.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process_a.wait(), 15)
        # Nobody refreshes them any more: Redis itself drops each within REGISTRY_TTL from now.
        for session_id in on_a:
            assert 0 < await store.pttl(record_key(session_id)) <= REGISTRY_TTL * 1000
        await wait_until_listed(b, [], REGISTRY_TTL + SETTLE_DEADLINE)
        assert await store.exists(*(record_key(session_id) for session_id in on_a)) == 0

        # Their slots are free: B may open as many as the cap allows again.
        await create(b)
        await create(b)
        assert_error(await b.client.post("/tiktok/session"), 429, "TOO_MANY_SESSIONS")
        # A's browsers died with it.
        await wait_until(lambda: browsers_under(tmp_path / "a") == [], 20, "A's browsers to exit")


async def wait_until_listed(service: RunningService, expected: list[str], within: float) -> None:
    deadline = time.monotonic() + within
    while (listed := await listed_ids(service)) != expected:
        assert time.monotonic() < deadline, f"still listed after {within} s: {listed}"
        await asyncio.sleep(0.1)


# --- write mode ------------------------------------------------------------------------------------------


async def test_write_mode_on_one_instance_holds_the_cluster_lock_and_a_write_session_on_the_other_is_423(
    tmp_path: Path,
    site: StandinServer,
    master_profiles: dict[str, Path],
    redis_server: RedisServer,
    store: redis.asyncio.Redis,
) -> None:
    async with two_instances(
        tmp_path, site, master_profiles["logged_in"], redis_server.url, WRITE_MODE=True, LOCK_TIMEOUT=1
    ) as (a, b):
        writing = await create(a)
        assert (await a.client.get(f"/tiktok/session/{writing['session_id']}")).json()["mode"] == "write"
        assert await store.exists(MASTER_LOCK_KEY) == 1

        body = assert_error(await b.client.post("/tiktok/session"), 423, "USER_DATA_LOCKED")
        assert "another instance" in body["error_details"]["details"]
        assert body["error_details"]["timeout"] == 1
        assert browsers_under(tmp_path / "b") == [], "B never started a browser on its master"

        assert (await a.client.delete(f"/tiktok/session/{writing['session_id']}")).status_code == 200
        assert await store.exists(MASTER_LOCK_KEY) == 0
        second = await create(b)
        assert (await b.client.get(f"/tiktok/session/{second['session_id']}")).json()["mode"] == "write"


# --- Redis outage ----------------------------------------------------------------------------------------


async def test_while_redis_is_down_own_sessions_work_others_are_503_and_all_recovers_when_it_returns(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, site, master_profiles["logged_in"], redis_server.url) as (a, b):
        kept_on_a = (await create(a))["session_id"]
        ended_on_a = (await create(a))["session_id"]
        on_b = (await create(b))["session_id"]

        redis_server.stop()
        # A's own sessions: read, screenshot and end as usual.
        assert (await a.client.get(f"/tiktok/session/{kept_on_a}")).status_code == 200
        shot = await a.client.get(f"/tiktok/session/{kept_on_a}/screenshot")
        assert shot.status_code == 200 and shot.content.startswith(PNG_SIGNATURE)
        assert (await a.client.delete(f"/tiktok/session/{ended_on_a}")).status_code == 200
        assert not (a.clones_dir / ended_on_a).exists()
        # B's session, the cluster's list and new sessions need the registry.
        for response in (
            await a.client.get(f"/tiktok/session/{on_b}"),
            await a.client.delete(f"/tiktok/session/{on_b}"),
            await a.client.get(f"/tiktok/session/{on_b}/screenshot"),
            await a.client.get("/tiktok/sessions"),
            await a.client.post("/tiktok/session"),
        ):
            body = assert_error(response, 503, "REGISTRY_UNAVAILABLE")
            assert f"127.0.0.1:{redis_server.port}" in body["error_details"]["details"]
        assert a.clone_dirs() == [a.clones_dir / kept_on_a], "the refused POST left nothing behind"
        ready = assert_error(await a.client.get("/ready"), 503, "NOT_READY")
        assert ready["error_details"]["checks"]["registry"].startswith(
            f"redis at 127.0.0.1:{redis_server.port}"
        )
        assert "registry: redis at" in ready["error_details"]["details"]

        # The same port, empty: the instances put back what they serve, without a restart.
        redis_server.start()
        await wait_until_ok(a, "/ready")
        await wait_until_ok(a, f"/tiktok/session/{on_b}")
        await wait_until_ok(b, f"/tiktok/session/{kept_on_a}")
        assert sorted(await listed_ids(a)) == sorted([kept_on_a, on_b]) == sorted(await listed_ids(b))
        assert (await b.client.delete(f"/tiktok/session/{kept_on_a}")).status_code == 200
        assert not (a.clones_dir / kept_on_a).exists()
        # An empty Redis may have lost another instance's share: new sessions wait out REGISTRY_TTL.
        await registry_settled(redis_server.url)
        await create(a)


async def wait_until_ok(service: RunningService, path: str) -> None:
    deadline = time.monotonic() + SETTLE_DEADLINE
    while (response := await service.client.get(path)).status_code != 200:
        assert time.monotonic() < deadline, f"{path} still answers {response.status_code}: {response.text}"
        await asyncio.sleep(0.1)


# --- Redis data loss ---------------------------------------------------------------------------------------


async def test_after_redis_loses_its_data_the_cap_holds_until_every_instance_has_republished_its_share(
    tmp_path: Path,
    site: StandinServer,
    master_profiles: dict[str, Path],
    redis_server: RedisServer,
    store: redis.asyncio.Redis,
) -> None:
    async with two_instances(
        tmp_path, site, master_profiles["logged_in"], redis_server.url, CLUSTER_MAX_SESSIONS=2
    ) as (a, b):
        on_a = (await create(a))["session_id"]
        on_b = (await create(b))["session_id"]

        await store.flushall()  # what a failover to an empty replica does
        # The count in Redis is 0 and the true count 2: no instance may grant a third session.
        first = await a.client.post("/tiktok/session")
        body = assert_error(first, 429, "TOO_MANY_SESSIONS")
        assert "re-publishing" in body["error_details"]["details"]
        assert 1 <= int(first.headers["Retry-After"]) <= REGISTRY_TTL
        # The refusal came after A had put its own share back, at once.
        assert await store.exists(record_key(on_a)) == 1
        for service in (b, a, b):
            assert_error(await service.client.post("/tiktok/session"), 429, "TOO_MANY_SESSIONS")
        assert (a.clone_dirs(), b.clone_dirs()) == ([a.clones_dir / on_a], [b.clones_dir / on_b])

        await registry_settled(redis_server.url)
        assert sorted(await store.zrange(SLOTS_KEY, 0, -1)) == sorted([on_a, on_b])
        assert sorted(await listed_ids(a)) == sorted([on_a, on_b]) == sorted(await listed_ids(b))
        # The count is right again: the cluster is full, and an end frees a slot.
        full = assert_error(await b.client.post("/tiktok/session"), 429, "TOO_MANY_SESSIONS")
        assert "CLUSTER_MAX_SESSIONS" in full["error_details"]["details"]
        assert (await a.client.delete(f"/tiktok/session/{on_b}")).status_code == 200
        await create(a)
        assert await store.zcard(SLOTS_KEY) == 2


# --- signatures between instances --------------------------------------------------------------------------


def replayed(head: RequestHead, **changes: str) -> dict[str, Any]:
    """httpx arguments that send a captured request head again, with `method`, `path` or `query` changed."""
    query = changes.get("query", head.query)
    return {
        "method": changes.get("method", head.method),
        "url": changes.get("path", head.path) + (f"?{query}" if query else ""),
        "headers": [(name, value) for name, value in head.headers if name.lower() != "content-length"],
    }


async def test_a_captured_peer_request_is_refused_when_replayed_to_either_instance_or_with_another_query(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], redis_server: RedisServer
) -> None:
    captured = PeerRequests()
    async with two_instances(tmp_path, site, master_profiles["logged_in"], redis_server.url, captured) as (
        a,
        b,
    ):
        session_id = (await create(a))["session_id"]
        info = (await a.client.get(f"/tiktok/session/{session_id}")).json()
        token = info["cdp_url"].split("token=")[1]
        path = f"/tiktok/session/{session_id}/screenshot"
        async with httpx.AsyncClient(base_url=b.base_url, timeout=60) as bare:
            shot = await bare.get(path, params={"token": token})
        assert shot.status_code == 200 and shot.content.startswith(PNG_SIGNATURE)
        [head] = captured.heads
        assert (head.method, head.path, head.query) == ("GET", path, f"token={token}")

        for target, changes in (
            (a, {}),
            (b, {}),
            (a, {"query": f"token={token}&full_page=true"}),
            # Revoking the view links is what this token may do: only the signature refuses it.
            (a, {"method": "DELETE", "path": f"/tiktok/session/{session_id}/view-links"}),
        ):
            async with httpx.AsyncClient(base_url=target.base_url, timeout=60) as attacker:
                refused = await attacker.request(**replayed(head, **changes))
            body = assert_error(refused, 401, "UNAUTHORIZED")
            assert PEER_HEADER in body["error_details"]["details"]
        async with httpx.AsyncClient(timeout=60) as bare:
            assert (await bare.get(info["view_url"])).status_code == 200, "the view link was not revoked"


async def test_a_peer_signature_covers_query_and_body_and_is_refused_outside_its_window(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, site, master_profiles["logged_in"], redis_server.url) as (a, b):
        session_id = (await create(a))["session_id"]
        forwarder = app_state(b.app).forwarder
        assert forwarder is not None
        screenshot = f"/tiktok/session/{session_id}/screenshot"
        view_links = f"/tiktok/session/{session_id}/view-links"

        def signed(signature: str) -> dict[str, str]:
            # A peer's signature beside a client's own key: the owner answers it itself, or refuses it.
            return {PEER_HEADER: signature, "X-API-Key": API_KEY}

        # A fresh signature for one query does not carry another; refused, it is still good for its own.
        signature = forwarder.sign("GET", screenshot, "full_page=false", b"")
        altered = await a.client.get(screenshot, params={"full_page": "true"}, headers=signed(signature))
        assert_error(altered, 401, "UNAUTHORIZED")
        own = await a.client.get(screenshot, params={"full_page": "false"}, headers=signed(signature))
        assert own.status_code == 200, own.text

        # The same for the body.
        signature = forwarder.sign("POST", view_links, "", b'{"ttl": 60}')
        other_body = await a.client.post(view_links, content=b'{"ttl": 90}', headers=signed(signature))
        assert_error(other_body, 401, "UNAUTHORIZED")
        own_body = await a.client.post(view_links, content=b'{"ttl": 60}', headers=signed(signature))
        assert own_body.status_code == 200, own_body.text

        # The window is at most 30 s, whatever the nonce.
        assert SIGNATURE_WINDOW <= 30
        for age in (SIGNATURE_WINDOW + 1, -SIGNATURE_WINDOW - 1):
            stale = forwarder.sign("GET", screenshot, "", b"", now=time.time() - age)
            assert_error(await a.client.get(screenshot, headers=signed(stale)), 401, "UNAUTHORIZED")
        recent = forwarder.sign("GET", screenshot, "", b"", now=time.time() - SIGNATURE_WINDOW / 2)
        assert (await a.client.get(screenshot, headers=signed(recent))).status_code == 200


async def test_a_body_sent_through_the_other_instance_reaches_the_owner(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], redis_server: RedisServer
) -> None:
    async with two_instances(tmp_path, site, master_profiles["logged_in"], redis_server.url) as (a, b):
        session_id = (await create(a))["session_id"]
        minted = await b.client.post(
            f"/tiktok/session/{session_id}/view-links", json={"interactive": True, "ttl": 60}
        )
        assert minted.status_code == 200, minted.text
        assert minted.json()["interactive"] is True
        assert minted.json()["url"].startswith(f"{b.base_url}/tiktok/session/{session_id}/view?token=")
