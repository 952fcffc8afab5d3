"""Remote control of a live session (SPEC §8): the real service over HTTP, its real Chromium, and real
CDP clients (Playwright, Puppeteer) in processes of their own, attached through `cdp_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import struct
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.harness import (
    API_KEY,
    RunningService,
    assert_error,
    browsers_under,
    running_service,
    wait_until,
)
from tests.support.playwright_client import PlaywrightClient, attach, playwright_clients
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
PUPPETEER_CLIENT = CLIENTS / "puppeteer_client.mjs"

CLIENT_DEADLINE = 90.0  # one command of a client process on a loaded 2-core machine, 30 MB results included
END_DEADLINE = 20.0  # a session must be gone within 2 s of its end; generous for a busy machine
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STANDIN_TITLE = "TikTok - Make Your Day"  # the stand-in's home page, where detection leaves the first page
IDLE_TIMEOUT = 3

# `"CDP-é✓😀-"` is 14 bytes of UTF-8; 2_300_000 repeats make a 32.2 MB evaluate result, far past the
# 1 MiB default of common WebSocket libraries, with multi-byte characters that must arrive intact.
BIG_REPEAT = 2_300_000
BIG_UTF8_BYTES = 32_200_000
BIG_SHA256 = hashlib.sha256(("CDP-é✓😀-" * BIG_REPEAT).encode()).hexdigest()


@pytest.fixture
async def clients() -> AsyncIterator[list[PlaywrightClient]]:
    async with playwright_clients() as started:
        yield started


@asynccontextmanager
async def logged_in_service(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], **overrides: Any
) -> AsyncIterator[RunningService]:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, **overrides) as service:
        yield service


async def create(service: RunningService) -> dict[str, Any]:
    response = await service.client.post("/tiktok/session")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "success" and response.headers["X-Session-Id"] == body["session_id"]
    return body


def ws_base(service: RunningService) -> str:
    return "ws://" + service.base_url.removeprefix("http://")


def bare_client(service: RunningService) -> httpx.AsyncClient:
    """A client with no API key: what a browser opening `view_url` is."""
    return httpx.AsyncClient(base_url=service.base_url, timeout=60)


async def refused(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body with which the WebSocket handshake was refused."""
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, additional_headers=headers, proxy=None, open_timeout=30):
            pass
    response = refusal.value.response
    # The service's own error envelope, not a refusal by the WebSocket layer.
    assert response.headers["X-Error-Code"] == json.loads(response.body)["error_details"]["code"]
    return response.status_code, json.loads(response.body)


async def browser_version_over(ws: ClientConnection) -> str:
    await ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), CLIENT_DEADLINE))
    assert reply["id"] == 1, reply
    return reply["result"]["product"]


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE, png[:16]
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


async def test_post_and_info_carry_absolute_cdp_and_view_urls_with_the_session_tokens(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        session = await service.service.locate(session_id)
        # The control token drives (cdp_url); the view_url's own token only watches (SPEC §11).
        token, view_token = session.token, session.view_token
        assert len(token) >= 32 and token != API_KEY and len(view_token) >= 32 and view_token != token
        host = service.base_url.removeprefix("http://")  # 127.0.0.1:<port>
        expected_cdp = f"ws://{host}/tiktok/session/{session_id}/cdp?token={token}"
        expected_view = f"http://{host}/tiktok/session/{session_id}/view?token={view_token}"
        assert (body["cdp_url"], body["view_url"]) == (expected_cdp, expected_view)

        info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
        assert (info["cdp_url"], info["view_url"]) == (expected_cdp, expected_view)
        listed = (await service.client.get("/tiktok/sessions")).json()["sessions"]
        assert [(s["cdp_url"], s["view_url"]) for s in listed] == [(expected_cdp, expected_view)]


async def test_public_url_is_the_base_of_cdp_and_view_urls(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(
        tmp_path, site, master_profiles, PUBLIC_URL="https://sessions.example.com/base"
    ) as service:
        body = await create(service)
        session_id = body["session_id"]
        session = await service.service.locate(session_id)
        token, view_token = session.token, session.view_token
        expected_cdp = f"wss://sessions.example.com/base/tiktok/session/{session_id}/cdp?token={token}"
        expected_view = (
            f"https://sessions.example.com/base/tiktok/session/{session_id}/view?token={view_token}"
        )
        assert (body["cdp_url"], body["view_url"]) == (expected_cdp, expected_view)
        info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
        assert (info["cdp_url"], info["view_url"]) == (expected_cdp, expected_view)


async def test_playwright_client_finds_the_logged_in_context_its_page_and_cookies(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], clients: list[PlaywrightClient]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        client = await attach(clients, body["cdp_url"])

        pages = await client.run("pages")
        assert pages["contexts"] == 1
        assert pages["urls"] == [site.url]
        viewer = await client.run("viewer")
        assert viewer == {"url": site.url, "title": STANDIN_TITLE, "unique_id": "alice"}
        names = (await client.run("cookie_names"))["names"]
        assert {"sessionid", "sessionid_ss", "sid_tt", "sid_guard"} <= set(names)


async def test_a_page_the_client_opens_sends_the_session_cookies(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], clients: list[PlaywrightClient]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        client = await attach(clients, body["cdp_url"])

        opened = await client.run("open_text", url=site.url_for("__standin/headers"))
        assert opened["status"] == 200
        echoed = json.loads(opened["text"])
        assert "sessionid=" in echoed["cookie"], echoed
        assert (await client.run("pages"))["urls"] == [site.url, site.url_for("__standin/headers")]


async def test_full_page_screenshot_and_a_30_mb_result_cross_the_relay_intact(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], clients: list[PlaywrightClient]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        client = await attach(clients, body["cdp_url"])

        shot = await client.run("screenshot")
        assert shot["signature"] == PNG_SIGNATURE.hex()
        assert shot["width"] > 0 and shot["height"] > 0

        big = await client.run("big_string", repeat=BIG_REPEAT)
        assert big == {"utf8_bytes": BIG_UTF8_BYTES, "sha256": BIG_SHA256}
        assert (await service.service.locate(body["session_id"])).state == "live"


async def test_cdp_handshake_without_valid_credentials_is_refused_with_401_and_the_session_stays(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        first = await create(service)
        second = await create(service)
        first_id = first["session_id"]
        first_token = (await service.service.locate(first_id)).token
        second_token = (await service.service.locate(second["session_id"])).token
        bare = f"{ws_base(service)}/tiktok/session/{first_id}/cdp"
        attempts = {
            "no key": (bare, None),
            "a wrong key": (bare, {"X-API-Key": "wrong-key"}),
            "a made-up token": (f"{bare}?token=not-a-token", None),
            "another live session's token": (f"{bare}?token={second_token}", None),
            "a made-up session id": (
                f"{ws_base(service)}/tiktok/session/{uuid.uuid4()}/cdp?token={first_token}",
                None,
            ),
        }
        for name, (url, headers) in attempts.items():
            status, error = await refused(url, headers)
            assert status == 401, name
            assert error["status"] == "error" and error["error_details"]["code"] == "UNAUTHORIZED", name

        session = await service.service.locate(first_id)
        assert session.state == "live" and session.relays.open_count == 0
        info = await service.client.get(f"/tiktok/session/{first_id}")
        assert info.status_code == 200 and info.json()["state"] == "live"
        # The same route with the right token is open: the refusals were about the credentials.
        async with connect(first["cdp_url"], max_size=None, proxy=None, open_timeout=30) as ws:
            assert "Chrome" in await browser_version_over(ws)


async def test_two_clients_at_once_and_one_leaving_keeps_the_session_and_the_other(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], clients: list[PlaywrightClient]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session = await service.service.locate(body["session_id"])
        first = await attach(clients, body["cdp_url"])
        second = await attach(clients, body["cdp_url"])
        assert session.relays.open_count == 2
        assert (await first.run("viewer"))["unique_id"] == "alice"
        assert (await second.run("viewer"))["unique_id"] == "alice"

        assert await second.quit() == 0
        await wait_until(lambda: session.relays.open_count == 1, END_DEADLINE, "the second relay to end")

        info = await service.client.get(f"/tiktok/session/{body['session_id']}")
        assert info.status_code == 200 and info.json()["state"] == "live"
        assert (await first.run("viewer"))["unique_id"] == "alice"
        assert (await first.run("pages"))["urls"] == [site.url]


async def test_browser_close_from_a_client_ends_the_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], clients: list[PlaywrightClient]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        session = await service.service.locate(session_id)
        clone = service.clones_dir / session_id
        client = await attach(clients, body["cdp_url"])

        assert (await client.run("browser_close"))["sent"] is True
        await wait_until(session.ended.is_set, END_DEADLINE, "the session to end")
        assert session.end_reason == "client_closed"
        assert not clone.exists()
        assert browsers_under(tmp_path) == []
        assert_error(await service.client.get(f"/tiktok/session/{session_id}"), 404, "SESSION_NOT_FOUND")
        assert (await service.client.get("/tiktok/sessions")).json()["sessions"] == []


async def test_delete_closes_an_attached_client_with_a_normal_close_frame(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        async with connect(body["cdp_url"], max_size=None, proxy=None, open_timeout=30) as ws:
            assert "Chrome" in await browser_version_over(ws)
            deleted = await service.client.delete(f"/tiktok/session/{body['session_id']}")
            assert deleted.status_code == 200, deleted.text
            await asyncio.wait_for(ws.wait_closed(), END_DEADLINE)
            assert ws.close_code == 1000
        assert service.clone_dirs() == []


async def test_service_shutdown_closes_an_attached_client_with_a_normal_close_frame(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with AsyncExitStack() as stack:
        service = await stack.enter_async_context(running_service(tmp_path, site.url))
        body = await create(service)
        session = await service.service.locate(body["session_id"])
        # Not on the stack: the client must not close first, the service must.
        ws = await connect(body["cdp_url"], max_size=None, proxy=None, open_timeout=30)
        try:
            assert "Chrome" in await browser_version_over(ws)
            # What SIGTERM does: uvicorn's should_exit, then its shutdown, then the app's lifespan shutdown.
            await stack.aclose()
            await asyncio.wait_for(ws.wait_closed(), END_DEADLINE)
        finally:
            await ws.close()
    assert session.end_reason == "shutdown"
    assert ws.close_code == 1000, (ws.close_code, ws.close_reason)


async def test_screenshot_is_a_png_with_the_api_key_or_the_session_token_alone(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        token = (await service.service.locate(session_id)).token
        path = f"/tiktok/session/{session_id}/screenshot"

        with_key = await service.client.get(path)
        assert with_key.status_code == 200 and with_key.headers["content-type"] == "image/png"
        assert png_size(with_key.content) != (0, 0)
        async with bare_client(service) as bare:
            with_token = await bare.get(path, params={"token": token})
            assert with_token.status_code == 200 and with_token.headers["content-type"] == "image/png"
            assert png_size(with_token.content) == png_size(with_key.content)
            with_cookie = await bare.get(path, headers={"Cookie": f"session_token={API_KEY}"})
            assert with_cookie.status_code == 200 and png_size(with_cookie.content) != (0, 0)
            assert_error(await bare.get(path), 401, "UNAUTHORIZED")


async def test_full_page_screenshot_is_a_png_at_least_as_tall_as_the_viewport(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        path = f"/tiktok/session/{body['session_id']}/screenshot"
        viewport = await service.client.get(path)
        full = await service.client.get(path, params={"full_page": "true"})
        assert full.status_code == 200 and full.headers["content-type"] == "image/png"
        viewport_width, viewport_height = png_size(viewport.content)
        full_width, full_height = png_size(full.content)
        assert full_width == viewport_width and full_height >= viewport_height


async def test_screenshot_and_view_refuse_another_sessions_token(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        first = await create(service)
        second = await create(service)
        second_token = (await service.service.locate(second["session_id"])).token
        async with bare_client(service) as bare:
            for route in ("screenshot", "view"):
                answer = await bare.get(
                    f"/tiktok/session/{first['session_id']}/{route}", params={"token": second_token}
                )
                assert_error(answer, 401, "UNAUTHORIZED")
            # The token is good for its own session.
            own = await bare.get(
                f"/tiktok/session/{second['session_id']}/screenshot", params={"token": second_token}
            )
            assert own.status_code == 200


async def test_the_session_token_dies_with_its_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        token = (await service.service.locate(session_id)).token
        deleted = await service.client.delete(f"/tiktok/session/{session_id}")
        assert deleted.status_code == 200, deleted.text

        async with bare_client(service) as bare:
            for route in ("screenshot", "view"):
                answer = await bare.get(f"/tiktok/session/{session_id}/{route}", params={"token": token})
                assert_error(answer, 401, "UNAUTHORIZED")
        status, error = await refused(body["cdp_url"])
        assert status == 401 and error["error_details"]["code"] == "UNAUTHORIZED"


async def test_live_view_is_self_contained_html_streaming_with_its_own_token(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        view_token = parse_qs(urlsplit(body["view_url"]).query)["token"][0]
        async with bare_client(service) as bare:
            view = await bare.get(body["view_url"])
        assert view.status_code == 200 and view.headers["content-type"].startswith("text/html")
        page = view.text
        # Its stream and its fallback picture, named relative to the page (any PUBLIC_URL prefix works),
        # with the token the page was opened with.
        assert f"view/stream?token={view_token}" in page
        assert f"view/frame?token={view_token}" in page
        # Nothing from anywhere else: no absolute URL, no protocol-relative one, no external script or style.
        assert re.findall(r"https?://[^\s\"'<>()\\]+", page) == []
        assert not re.search(r"""(src|href)\s*=\s*["']?//""", page), "no protocol-relative resources"
        assert not re.search(r"<script[^>]*\ssrc=|<link[^>]*stylesheet", page)


async def test_undriven_session_ends_after_the_idle_timeout(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(
        tmp_path, site, master_profiles, SESSION_IDLE_TIMEOUT=IDLE_TIMEOUT
    ) as service:
        body = await create(service)
        session = await service.service.locate(body["session_id"])
        clone = service.clones_dir / session.id
        # Watched on the object: an API call would count as activity.
        await wait_until(session.ended.is_set, IDLE_TIMEOUT + END_DEADLINE, "the idle session to end")
        assert session.end_reason == "idle"
        assert not clone.exists()
        assert browsers_under(clone) == []
        assert_error(await service.client.get(f"/tiktok/session/{session.id}"), 404, "SESSION_NOT_FOUND")


async def test_cdp_commands_keep_a_session_alive_past_the_idle_timeout(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], clients: list[PlaywrightClient]
) -> None:
    # Playwright is started before the session, so its start-up does not eat the idle budget.
    client = await PlaywrightClient.start()
    clients.append(client)
    async with logged_in_service(
        tmp_path, site, master_profiles, SESSION_IDLE_TIMEOUT=IDLE_TIMEOUT
    ) as service:
        body = await create(service)
        session = await service.service.locate(body["session_id"])
        assert await client.run("connect", url=body["cdp_url"]) == {"connected": True}

        busy = await client.run("busy", seconds=2 * IDLE_TIMEOUT, interval=0.5)
        assert busy["seconds"] >= 2 * IDLE_TIMEOUT and busy["count"] >= 2
        assert not session.ended.is_set(), session.end_reason
        assert session.state == "live"


async def test_keepalive_pushes_the_idle_expiry_later(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    idle = 60
    async with logged_in_service(tmp_path, site, master_profiles, SESSION_IDLE_TIMEOUT=idle) as service:
        body = await create(service)
        session_id = body["session_id"]
        session = await service.service.locate(session_id)
        before = datetime.fromisoformat(
            (await service.client.get(f"/tiktok/session/{session_id}")).json()["idle_expires_at"]
        )

        def idle_for_a_second() -> bool:
            expiry = session.idle_expires_at
            return expiry is not None and (expiry - datetime.now(UTC)).total_seconds() <= idle - 1

        await wait_until(idle_for_a_second, 30, "a second without activity")
        answer = await service.client.post(f"/tiktok/session/{session_id}/keepalive")
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "success" and answer.json()["state"] == "live"
        after = datetime.fromisoformat(answer.json()["idle_expires_at"])
        assert (after - before).total_seconds() >= 0.5, (before, after)


def _listening_sockets() -> dict[str, tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """Socket inode → (local address, port) of every LISTEN TCP socket on the machine."""
    found = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A":
                continue
            address_hex, port_hex = local.split(":")
            raw = bytes.fromhex(address_hex)
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            ordered = b"".join(raw[i : i + 4][::-1] for i in range(0, width, 4))
            address = ipaddress.IPv4Address(ordered) if width == 4 else ipaddress.IPv6Address(ordered)
            found[inode] = (address, int(port_hex, 16))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target.removeprefix("socket:[").removesuffix("]"))
    return inodes


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


async def test_the_browser_listens_for_devtools_on_no_address_of_the_machine(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    """Sandboxed, DevTools listens on the browser's own loopback only; the service reaches it through a
    unix socket in the session's box, and no TCP port of the machine leads to it (SPEC §8, §11)."""
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session = await service.service.locate(body["session_id"])
        pids = browsers_under(service.clones_dir / session.id)
        assert pids, "the session's browser runs on its clone"
        listening = _listening_sockets()
        owned = [listening[inode] for pid in pids for inode in _socket_inodes(pid) if inode in listening]
        assert owned == [], f"a browser socket listens in the machine's network: {owned}"
        executor = session.executor
        assert executor is not None and executor.devtools_socket is not None
        assert executor.devtools_socket.is_socket()
        assert executor.devtools_socket.is_relative_to(executor.box.path)


async def test_puppeteer_attaches_lists_pages_and_evaluates(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: `make install` installs nodejs for the Puppeteer client")
    if not (CLIENTS / "node_modules" / "puppeteer-core").is_dir():
        pytest.fail("tests/clients/node_modules is missing: run `make node-clients`", pytrace=False)
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        with tempfile.TemporaryFile() as stderr:
            process = await asyncio.create_subprocess_exec(
                node,
                str(PUPPETEER_CLIENT),
                body["cdp_url"],
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
            try:
                output, _ = await asyncio.wait_for(process.communicate(), CLIENT_DEADLINE)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
            stderr.seek(0)
            errors = stderr.read().decode(errors="replace")[-4000:]
        assert process.returncode == 0, errors
        seen = json.loads(output.decode().strip().splitlines()[-1])
        assert seen["urls"] == [site.url]
        assert seen["value"] == [STANDIN_TITLE, 42]
        assert "Chrome" in seen["version"]
        # Puppeteer detached; the session goes on.
        info = await service.client.get(f"/tiktok/session/{body['session_id']}")
        assert info.status_code == 200 and info.json()["state"] == "live"


async def test_debug_logs_carry_neither_the_api_key_nor_the_session_token(
    tmp_path: Path,
    site: StandinServer,
    master_profiles: dict[str, Path],
    clients: list[PlaywrightClient],
    capfd: pytest.CaptureFixture[str],
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles, LOG_LEVEL="DEBUG") as service:
        body = await create(service)
        session_id = body["session_id"]
        token = (await service.service.locate(session_id)).token
        client = await attach(clients, body["cdp_url"])
        assert (await client.run("viewer"))["unique_id"] == "alice"
        async with bare_client(service) as bare:
            shot = await bare.get(f"/tiktok/session/{session_id}/screenshot", params={"token": token})
            assert shot.status_code == 200
        assert await client.quit() == 0
        session = await service.service.locate(session_id)
        await wait_until(lambda: session.relays.open_count == 0, END_DEADLINE, "the relay to end")
    captured = capfd.readouterr()
    logs = captured.out + captured.err
    # The lines that would carry them were written: the access log of both routes.
    assert f"/tiktok/session/{session_id}/screenshot" in logs
    assert f"/tiktok/session/{session_id}/cdp" in logs
    assert API_KEY not in logs
    assert token not in logs
