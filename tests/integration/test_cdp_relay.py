"""The CDP relay against a real Chromium, with real clients (Playwright, Puppeteer, websockets).

The Playwright and Puppeteer clients run in processes of their own. Each test gets its own browser,
launched directly with a DevTools port on 127.0.0.1, and its own relay server: a Starlette app on
uvicorn whose one WebSocket route runs `RelayHub.relay` to that browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosed

from app.services.common.browser import browser_pids_using, chromium_flags, devtools_endpoint, find_browser
from app.services.common.cdp_relay import CLIENT_MAX_MESSAGE_BYTES, Direction, RelayEnd, RelayHub
from tests.support.playwright_client import NOISE_PAGE, PlaywrightClient, attach, playwright_clients

pytestmark = pytest.mark.browser

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
PUPPETEER_CLIENT = CLIENTS / "puppeteer_client.mjs"

BROWSER_START_DEADLINE = 20.0
CLIENT_DEADLINE = 60.0  # one command of a client process, 30 MB results included

START_PAGE = "<!doctype html><title>relay-start</title><p>start"

# `"CDP-é✓😀-"` is 14 bytes of UTF-8; 2_300_000 repeats make a 32.2 MB result, past uvicorn's 16 MiB
# default and websockets' 1 MiB default, with multi-byte characters that must arrive intact.
BIG_REPEAT = 2_300_000
BIG_UTF8_BYTES = 32_200_000
BIG_SHA256 = hashlib.sha256(("CDP-é✓😀-" * BIG_REPEAT).encode()).hexdigest()
BIG_COMMAND_CHARS = 18_000_000  # client to browser: past uvicorn's 16 MiB default `ws_max_size`


async def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll with a deadline. Not tests.support.harness's: that one imports the whole app, this needs none."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def free_socket() -> socket.socket:
    """A listening socket on a free 127.0.0.1 port, handed to uvicorn as it is: no check-then-bind race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def established_connections_to(port: int) -> int:
    """Established TCP connections whose local end is `port` on this machine: the browser's DevTools side."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, _remote, state = line.split()[1:4]
        if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
            count += 1
    return count


@dataclass
class Chromium:
    process: asyncio.subprocess.Process
    profile_dir: Path
    ws_url: str

    @property
    def devtools_port(self) -> int:
        return int(self.ws_url.split(":")[2].split("/")[0])

    def alive(self) -> bool:
        return self.process.returncode is None


@dataclass
class RelayServer:
    """The relay route's URL and what its callbacks saw."""

    url: str
    base: str
    hub: RelayHub
    upstream_url: str = ""
    activity: list[Direction] = field(default_factory=list)
    browser_close_requests: int = 0
    ends: list[str] = field(default_factory=list)


@pytest.fixture
async def relay_server() -> AsyncIterator[RelayServer]:
    sock = free_socket()
    port = sock.getsockname()[1]
    state = RelayServer(url=f"ws://127.0.0.1:{port}/cdp", base=f"http://127.0.0.1:{port}", hub=RelayHub())

    def note_browser_close() -> None:
        state.browser_close_requests += 1

    async def cdp(websocket: WebSocket) -> None:
        end = await state.hub.relay(
            websocket,
            state.upstream_url,
            on_activity=state.activity.append,
            on_browser_close=note_browser_close,
        )
        state.ends.append(end)

    app = Starlette(
        routes=[
            WebSocketRoute("/cdp", cdp),
            Route("/start", lambda request: HTMLResponse(START_PAGE)),
            Route("/noise", lambda request: HTMLResponse(NOISE_PAGE)),
        ]
    )
    # The settings the relay's docstring asks of the service.
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        ws_max_size=CLIENT_MAX_MESSAGE_BYTES,
        ws_per_message_deflate=False,
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_until(lambda: server.started or task.done(), 10.0, "the relay server to start")
        assert server.started, "the relay server did not start"
        yield state
    finally:
        await state.hub.close_all()
        server.should_exit = True
        await asyncio.wait_for(task, 10.0)
        sock.close()


@pytest.fixture
async def chromium(relay_server: RelayServer, tmp_path: Path) -> AsyncIterator[Chromium]:
    """A real headless Chromium on a tmp profile, showing the relay server's start page; killed afterwards."""
    profile_dir = tmp_path / "profile"
    profile_dir.mkdir()
    process = await asyncio.create_subprocess_exec(
        str(find_browser(None)),
        "--headless=new",
        *chromium_flags(),
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile_dir}",
        f"{relay_server.base}/start",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its own process group, so every helper dies with it
    )
    try:
        await wait_until(
            lambda: devtools_endpoint(profile_dir) is not None or process.returncode is not None,
            BROWSER_START_DEADLINE,
            "Chromium to write DevToolsActivePort",
        )
        ws_url = devtools_endpoint(profile_dir)
        assert ws_url is not None, f"Chromium exited with {process.returncode} before listening"
        relay_server.upstream_url = ws_url
        yield Chromium(process, profile_dir, ws_url)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10.0)
        # Helpers reparented away from the group (zygotes) are found by their command line.
        await wait_until(lambda: not browser_pids_using(profile_dir), 10.0, "every Chromium process to exit")


@pytest.fixture
async def clients() -> AsyncIterator[list[PlaywrightClient]]:
    async with playwright_clients() as started:
        yield started


async def test_playwright_attaches_and_moves_multi_megabyte_messages_both_ways(
    relay_server: RelayServer, chromium: Chromium, clients: list[PlaywrightClient]
) -> None:
    client = await attach(clients, relay_server.url)

    pages = await client.run("pages")
    assert pages["contexts"] == 1
    assert pages["urls"] == [f"{relay_server.base}/start"]

    opened = await client.run("open", url=f"{relay_server.base}/noise")
    assert opened["url"] == f"{relay_server.base}/noise"

    shot = await client.run("screenshot")
    assert (shot["width"], shot["height"]) == (1280, 2400)
    assert shot["bytes"] >= 5_000_000

    big = await client.run("big_string", repeat=BIG_REPEAT)
    assert big["utf8_bytes"] == BIG_UTF8_BYTES
    assert big["sha256"] == BIG_SHA256

    sent = await client.run("send_big", chars=BIG_COMMAND_CHARS)
    assert sent["length"] == BIG_COMMAND_CHARS


async def test_two_clients_work_at_once_and_one_leaving_keeps_the_browser_and_the_other(
    relay_server: RelayServer, chromium: Chromium, clients: list[PlaywrightClient]
) -> None:
    first = await attach(clients, relay_server.url)
    second = await attach(clients, relay_server.url)
    assert relay_server.hub.open_count == 2
    assert established_connections_to(chromium.devtools_port) == 2  # one upstream connection each

    assert (await first.run("open", url=f"{relay_server.base}/noise"))["url"].endswith("/noise")
    assert (await second.run("evaluate", expression="document.title"))["value"] == "relay-start"

    assert await second.quit() == 0
    await wait_until(lambda: relay_server.hub.open_count == 1, 10.0, "the second relay to end")
    assert relay_server.ends == [RelayEnd.CLIENT_LEFT]
    await wait_until(
        lambda: established_connections_to(chromium.devtools_port) == 1,
        10.0,
        "the second client's upstream connection to close",
    )

    assert chromium.alive()
    assert (await first.run("evaluate", expression="window.drawn"))["value"] is True
    urls = (await first.run("pages"))["urls"]
    assert f"{relay_server.base}/start" in urls and f"{relay_server.base}/noise" in urls


async def test_browser_close_from_a_client_is_reported_and_ends_the_browser(
    relay_server: RelayServer, chromium: Chromium, clients: list[PlaywrightClient]
) -> None:
    client = await attach(clients, relay_server.url)
    assert (await client.run("pages"))["contexts"] == 1
    assert relay_server.browser_close_requests == 0  # attaching alone never looks like Browser.close

    answer = await client.run("browser_close")
    assert answer["sent"] is True
    assert relay_server.browser_close_requests == 1
    await asyncio.wait_for(chromium.process.wait(), 10.0)
    await wait_until(lambda: relay_server.ends, 10.0, "the relay to end")
    assert relay_server.ends == [RelayEnd.BROWSER_LEFT]
    assert relay_server.hub.open_count == 0


async def test_closing_the_hub_sends_each_client_a_normal_close_frame(
    relay_server: RelayServer, chromium: Chromium
) -> None:
    async with (
        websockets.connect(relay_server.url, max_size=None) as first,
        websockets.connect(relay_server.url, max_size=None) as second,
    ):
        for client in (first, second):
            await client.send('{"id": 1, "method": "Browser.getVersion"}')
            assert json.loads(await asyncio.wait_for(client.recv(), 10.0))["id"] == 1
        assert relay_server.hub.open_count == 2

        await asyncio.wait_for(relay_server.hub.close_all(), 5.0)

        for client in (first, second):
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(client.recv(), 5.0)
            assert client.close_code == 1000
        assert relay_server.hub.open_count == 0
        assert sorted(relay_server.ends) == [RelayEnd.CLOSED, RelayEnd.CLOSED]
        # The relays closed their own upstream connections; the browser itself is the session's to close.
        await wait_until(
            lambda: established_connections_to(chromium.devtools_port) == 0,
            5.0,
            "the upstream connections to close",
        )
        assert chromium.alive()


async def test_a_client_arriving_after_the_hub_closed_is_closed_normally_at_once(
    relay_server: RelayServer, chromium: Chromium
) -> None:
    await relay_server.hub.close_all()
    async with websockets.connect(relay_server.url) as client:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), 5.0)
        assert client.close_code == 1000
    assert established_connections_to(chromium.devtools_port) == 0


async def test_activity_is_reported_for_each_message_in_each_direction(
    relay_server: RelayServer, chromium: Chromium
) -> None:
    async with websockets.connect(relay_server.url) as client:
        await client.send('{"id": 1, "method": "Browser.getVersion"}')
        await asyncio.wait_for(client.recv(), 10.0)
        assert relay_server.activity == ["to_browser", "to_client"]
        await client.send('{"id": 2, "method": "Target.getTargets"}')
        await asyncio.wait_for(client.recv(), 10.0)
        assert relay_server.activity == ["to_browser", "to_client", "to_browser", "to_client"]


async def test_relayed_answers_are_the_browsers_own_text_frames_byte_for_byte(
    relay_server: RelayServer, chromium: Chromium
) -> None:
    command = '{"id": 5, "method": "Browser.getVersion"}'
    async with websockets.connect(chromium.ws_url) as direct:
        await direct.send(command)
        expected = await asyncio.wait_for(direct.recv(), 10.0)
    async with websockets.connect(relay_server.url) as relayed:
        await relayed.send(command)
        answer = await asyncio.wait_for(relayed.recv(), 10.0)
    assert isinstance(answer, str)  # still a text frame
    assert answer == expected
    assert '"product":"Chrome/' in answer  # new headless names itself Chrome


async def test_an_unreachable_browser_closes_the_client_with_1011_quickly(relay_server: RelayServer) -> None:
    with socket.socket() as unused:  # a port that was free a moment ago: nothing listens there
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    relay_server.upstream_url = f"ws://127.0.0.1:{port}/devtools/browser/none"
    started = time.monotonic()
    async with websockets.connect(relay_server.url) as client:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(client.recv(), 5.0)
    assert client.close_code == 1011
    assert time.monotonic() - started < 2.0
    assert relay_server.ends == [RelayEnd.UNREACHABLE]


async def test_puppeteer_attaches_lists_pages_and_evaluates(
    relay_server: RelayServer, chromium: Chromium
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: `make install` installs nodejs for the Puppeteer client")
    if not (CLIENTS / "node_modules" / "puppeteer-core").is_dir():
        pytest.fail("tests/clients/node_modules is missing: run `make node-clients`", pytrace=False)
    process = await asyncio.create_subprocess_exec(
        node,
        str(PUPPETEER_CLIENT),
        relay_server.url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLIENT_DEADLINE)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr.decode(errors="replace")
    result = json.loads(stdout.decode().strip().splitlines()[-1])
    assert result["urls"] == [f"{relay_server.base}/start"]
    assert result["value"] == ["relay-start", 42]
    assert result["version"].startswith("Chrome/")
    await wait_until(lambda: relay_server.ends == [RelayEnd.CLIENT_LEFT], 10.0, "the relay to end")
    assert chromium.alive()
