"""Accounts (SPEC §12): several TikTok accounts in one service, each a steady device with its own proxy.

Real service, real sandboxed Chromium, the stand-in site; the device is read the way a page reads it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import async_playwright

from app.services.common.user_data import UserDataLayout
from tests.support import free_port
from tests.support.harness import RunningService, assert_error, running_service
from tests.support.profiles import install_legacy_master, install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
PROXY_USER = "acct-user"
PROXY_PASSWORD = "acct-proxy-pa55word"

# What a page can read of its device.
READ_DEVICE = """async () => {
  const canvas = document.createElement('canvas');
  const gl = canvas.getContext('webgl');
  const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
  return {
    userAgent: navigator.userAgent,
    screen: [screen.width, screen.height],
    webgl: info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : null,
    cores: navigator.hardwareConcurrency,
    memory: navigator.deviceMemory,
    languages: navigator.languages,
    timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
  };
}"""


async def device_of(service: RunningService, account: str | None) -> dict[str, Any]:
    body = {"account": account} if account else {}
    response = await service.client.post("/tiktok/session", json=body)
    assert response.status_code == 200, response.text
    session_id = response.json()["session_id"]
    page = (await service.service.locate(session_id)).executor.page
    # In the page's own world, where its scripts run (Patchright evaluates in an isolated one by default).
    device = await page.evaluate(READ_DEVICE, isolated_context=False)
    info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
    assert (await service.client.delete(f"/tiktok/session/{session_id}")).status_code == 200
    return device | {"account": info["account"]}


async def test_one_account_is_one_device_across_sessions_and_restarts_and_two_accounts_differ(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path, "alice")
    install_master(master_profiles["logged_in"], tmp_path, "bob")
    async with running_service(tmp_path, site.url) as service:
        first = await device_of(service, "alice")
        second = await device_of(service, "alice")
        other = await device_of(service, "bob")
    async with running_service(tmp_path, site.url) as service:
        after_restart = await device_of(service, "alice")
    assert first == second == after_restart
    assert first["account"] == "alice" and other["account"] == "bob"
    differing = {key for key in first if key not in ("account", "userAgent") and first[key] != other[key]}
    # Two draws of a device rarely agree on everything; they must not be the same device.
    assert differing, (first, other)
    stored = json.loads(UserDataLayout(tmp_path, "alice").identity_file.read_text())
    # UTC has two names (Etc/UTC, UTC); the browser may answer with either.
    same_zone = {"Etc/UTC": "UTC"}
    assert same_zone.get(stored["timezone"], stored["timezone"]) == same_zone.get(
        first["timezone"], first["timezone"]
    )
    assert [stored["fingerprint"]["screen"]["width"], stored["fingerprint"]["screen"]["height"]] == first[
        "screen"
    ]


async def test_the_single_master_layout_becomes_the_default_account_once(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    legacy = install_legacy_master(master_profiles["logged_in"], tmp_path)
    (tmp_path / "master.generation").write_text("7-0123456789abcdef\n")
    async with running_service(tmp_path, site.url) as service:
        accounts = (await service.client.get("/tiktok/accounts")).json()["accounts"]
        assert [account["name"] for account in accounts] == ["default"]
        assert accounts[0]["generation"] == "7-0123456789abcdef"
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text
    assert not legacy.exists()
    moved = UserDataLayout(tmp_path).master
    before = sorted(p.relative_to(moved) for p in moved.rglob("*"))
    async with running_service(tmp_path, site.url) as service:
        assert [a["name"] for a in (await service.client.get("/tiktok/accounts")).json()["accounts"]] == [
            "default"
        ]
    assert sorted(p.relative_to(moved) for p in moved.rglob("*")) == before


async def test_any_account_skips_a_logged_out_one_and_spreads_over_the_logged_in_ones(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path, "alice")
    install_master(master_profiles["logged_out"], tmp_path, "carol")
    install_master(master_profiles["logged_in"], tmp_path, "dave")
    async with running_service(tmp_path, site.url, MAX_SESSIONS=6) as service:
        served = []
        for _ in range(4):
            response = await service.client.post("/tiktok/session")
            assert response.status_code == 200, response.text
            info = (await service.client.get(f"/tiktok/session/{response.json()['session_id']}")).json()
            served.append(info["account"])
        # Least recently handed out first: the logged-out account is learnt once and then skipped,
        # the two logged-in ones take turns.
        assert served == ["alice", "dave", "alice", "dave"]
        carol = (await service.client.get("/tiktok/accounts/carol")).json()
        assert carol["login"]["state"] == "logged_out"
        alice = (await service.client.get("/tiktok/accounts/alice")).json()
        assert alice["login"]["state"] == "logged_in" and alice["login"]["username"] == "alice"
        assert alice["live_sessions"] == 2


async def test_no_account_that_can_serve_is_409_naming_each_one(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_out"], tmp_path, "carol")
    install_master(master_profiles["revoked"], tmp_path, "erin")
    async with running_service(tmp_path, site.url) as service:
        body = assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")
        assert set(body["error_details"]["accounts"]) == {"carol", "erin"}
        assert "carol" in body["error_details"]["details"] and "erin" in body["error_details"]["details"]


async def test_unknown_and_invalid_account_names(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path, "alice")
    async with running_service(tmp_path, site.url) as service:
        assert_error(
            await service.client.post("/tiktok/session", json={"account": "nobody"}), 404, "ACCOUNT_NOT_FOUND"
        )
        for name in ("Alice", "../alice", "-x", "a" * 64, ""):
            assert_error(
                await service.client.post("/tiktok/session", json={"account": name}), 422, "VALIDATION_ERROR"
            )
        assert_error(await service.client.get("/tiktok/accounts/nobody"), 404, "ACCOUNT_NOT_FOUND")
        assert_error(await service.client.get("/tiktok/accounts/Bad.Name"), 422, "VALIDATION_ERROR")


async def test_a_writer_of_one_account_holds_that_account_only(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path, "alice")
    install_master(master_profiles["logged_in"], tmp_path, "bob")
    async with running_service(tmp_path, site.url, WRITE_MODE=True, LOCK_TIMEOUT=0.5) as service:
        writer = await service.client.post("/tiktok/session", json={"account": "alice"})
        assert writer.status_code == 200, writer.text
        assert (await service.client.get("/tiktok/accounts/alice")).json()["locked"] is True
        assert_error(
            await service.client.post("/tiktok/session", json={"account": "alice"}), 423, "USER_DATA_LOCKED"
        )
        other = await service.client.post("/tiktok/session", json={"account": "bob"})
        assert other.status_code == 200, other.text
        assert (await service.client.get("/tiktok/accounts/bob")).json()["locked"] is True
        await service.client.delete(f"/tiktok/session/{writer.json()['session_id']}")
        assert (await service.client.get("/tiktok/accounts/alice")).json()["locked"] is False


class RecordingProxy:
    """An HTTP CONNECT proxy on loopback that wants Basic credentials and records where it tunnels."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.refused = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> RecordingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            request, *headers = head.split("\r\n")
            method, target, _version = request.split(" ")
            expected = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
            if method != "CONNECT" or f"Proxy-Authorization: Basic {expected}" not in headers:
                self.refused += 1
                writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            host, port = target.rsplit(":", 1)
            upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
            self.tunnels.append(target)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_copy(reader, upstream_writer), _copy(upstream_reader, writer))
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
async def recording_proxy() -> Any:
    proxy = await RecordingProxy().start()
    yield proxy
    await proxy.stop()


def run_cli(user_data: Path, site: StandinServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "USER_DATA_DIR": str(user_data), "TIKTOK_URL": site.url, "HOME": "/tmp"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_an_accounts_own_proxy_carries_its_traffic_and_its_password_shows_nowhere(
    tmp_path: Path,
    site: StandinServer,
    master_profiles: dict[str, Path],
    recording_proxy: RecordingProxy,
    capfd: pytest.CaptureFixture[str],
) -> None:
    install_master(master_profiles["logged_in"], tmp_path, "alice")
    install_master(master_profiles["logged_in"], tmp_path, "bob")
    proxy_url = f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{recording_proxy.port}"
    created = await asyncio.to_thread(
        run_cli, tmp_path, site, "accounts", "set", "alice", "--proxy", proxy_url
    )
    assert created.returncode == 0, created.stderr
    assert PROXY_PASSWORD not in created.stdout + created.stderr
    async with running_service(tmp_path, site.url) as service:
        response = await service.client.post("/tiktok/session", json={"account": "alice"})
        assert response.status_code == 200, response.text
        site_target = site.url.removeprefix("http://").rstrip("/")
        assert site_target in recording_proxy.tunnels
        through_alice = len(recording_proxy.tunnels)
        bob = await service.client.post("/tiktok/session", json={"account": "bob"})
        assert bob.status_code == 200, bob.text
        assert len(recording_proxy.tunnels) == through_alice, "bob has no proxy of its own"
        account = (await service.client.get("/tiktok/accounts/alice")).json()
        assert account["proxy"] == f"http://***:***@127.0.0.1:{recording_proxy.port}"
        bodies = [
            response.text,
            (await service.client.get("/tiktok/accounts")).text,
            (await service.client.get(f"/tiktok/session/{response.json()['session_id']}")).text,
            (await service.client.get("/metrics")).text,
        ]
    for text in [*bodies, capfd.readouterr().err]:
        assert PROXY_PASSWORD not in text
    assert recording_proxy.refused == 0


def test_accounts_cli_create_list_rotate_remove(tmp_path: Path, site: StandinServer) -> None:
    created = run_cli(
        tmp_path, site, "accounts", "create", "zoe", "--timezone", "Europe/Berlin", "--locale", "de-DE"
    )
    assert created.returncode == 0, created.stderr
    assert run_cli(tmp_path, site, "accounts", "create", "zoe").returncode == 1
    listed = json.loads(run_cli(tmp_path, site, "accounts", "list", "--json").stdout)
    assert [(a["name"], a["identity"]["timezone"], a["identity"]["locale"]) for a in listed] == [
        ("zoe", "Europe/Berlin", "de-DE")
    ]
    before = json.loads(UserDataLayout(tmp_path, "zoe").identity_file.read_text())
    assert run_cli(tmp_path, site, "accounts", "rotate-identity", "zoe").returncode == 0
    after = json.loads(UserDataLayout(tmp_path, "zoe").identity_file.read_text())
    assert after["fingerprint"] != before["fingerprint"]
    assert (after["timezone"], after["locale"]) == ("Europe/Berlin", "de-DE")
    assert run_cli(tmp_path, site, "accounts", "create", "Bad Name").returncode == 2
    assert run_cli(tmp_path, site, "accounts", "remove", "zoe", "--yes").returncode == 0
    assert json.loads(run_cli(tmp_path, site, "accounts", "list", "--json").stdout) == []


async def test_remote_login_saves_the_master_bumps_its_generation_and_proves_it(
    tmp_path: Path, site: StandinServer
) -> None:
    async with running_service(tmp_path, site.url) as service:
        started = await service.client.post("/tiktok/accounts/newbie/login")
        assert started.status_code == 200, started.text
        body = started.json()
        token = body["view_url"].split("token=", 1)[1]
        layout = UserDataLayout(tmp_path, "newbie")
        assert (await service.client.get("/tiktok/accounts/newbie")).json()["locked"] is True
        # The person logs in on the login page (here through the session's own page).
        page = (await service.service.locate(body["session_id"])).executor.page
        await page.wait_for_selector('input[name="username"]')
        await page.fill('input[name="username"]', "newbie")
        await page.fill('input[name="password"]', "secret")
        async with page.expect_navigation():
            await page.click('[data-e2e="login-button"]')
        bare = service.client.base_url
        async with httpx.AsyncClient(base_url=bare) as person:
            # A view-only link cannot press Done; the interactive one can.
            view_only = (await service.service.locate(body["session_id"])).view_token
            refused = await person.post(
                f"/tiktok/session/{body['session_id']}/done", params={"token": view_only}
            )
            assert_error(refused, 403, "FORBIDDEN")
            saved = await person.post(f"/tiktok/session/{body['session_id']}/done", params={"token": token})
        assert saved.status_code == 200, saved.text
        assert layout.generation_file.exists()

        async def proven() -> bool:
            account = (await service.client.get("/tiktok/accounts/newbie")).json()
            return account["login"]["state"] == "logged_in"

        deadline = asyncio.get_running_loop().time() + 30
        while not await proven():
            assert asyncio.get_running_loop().time() < deadline, "the login was never proven"
            await asyncio.sleep(0.2)
        account = (await service.client.get("/tiktok/accounts/newbie")).json()
        assert account["login"]["username"] == "newbie" and account["locked"] is False
        session = await service.client.post("/tiktok/session", json={"account": "newbie"})
        assert session.status_code == 200, session.text


def test_profile_login_without_a_display_says_so_in_one_line_and_names_remote(
    tmp_path: Path, site: StandinServer
) -> None:
    result = run_cli(tmp_path, site, "profile", "login", "--account", "zoe")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--remote" in result.stderr and "Traceback" not in result.stderr


async def test_profile_login_remote_prints_a_link_and_the_proof_after_done(
    tmp_path: Path, site: StandinServer
) -> None:
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "USER_DATA_DIR": str(tmp_path),
        "TIKTOK_URL": site.url,
        "API_KEYS": "remote-login-key-0123456789",
        "PORT": str(port),
    }
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "profile",
        "login",
        "--remote",
        "--account",
        "yuki",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert cli.stdout is not None
        link = ""
        while "token=" not in link:
            line = (await asyncio.wait_for(cli.stdout.readline(), 60)).decode()
            assert line, (await cli.stderr.read()).decode() if cli.stderr else "the CLI ended"
            link = line.strip() if "/view?token=" in line else link
        session_id = link.split("/tiktok/session/")[1].split("/")[0]
        headers = {"X-API-Key": env["API_KEYS"]}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            info = (await client.get(f"/tiktok/session/{session_id}")).json()
        async with async_playwright() as playwright:
            browser = await playwright.chromium.connect_over_cdp(info["cdp_url"])
            page = browser.contexts[0].pages[0]
            await page.wait_for_selector('input[name="username"]')
            await page.fill('input[name="username"]', "yuki")
            await page.fill('input[name="password"]', "secret")
            async with page.expect_navigation():
                await page.click('[data-e2e="login-button"]')
            await browser.close()
        async with httpx.AsyncClient() as person:
            done = await person.post(link.replace("/view?", "/done?"))
            assert done.status_code == 200, done.text
        out, err = await asyncio.wait_for(cli.communicate(), 90)
    finally:
        if cli.returncode is None:
            cli.kill()
            await cli.wait()
    assert cli.returncode == 0, out.decode() + err.decode()
    assert "Account yuki: logged_in as yuki" in out.decode()
