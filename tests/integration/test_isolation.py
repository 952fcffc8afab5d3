"""Isolation (SPEC §11): a session's client reaches its session and nothing else.

Every escape found in the first version is tried for real, as a client holding only the session's
`cdp_url` would (Playwright over the relay), against the real service and its sandboxed Chromium; each
refusal is paired with the legitimate path still working. Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from app.services.common.browser import browser_pids_using
from app.services.common.sandbox import BOX_MOUNT
from app.services.tiktok.session import LiveSession
from tests.support.harness import API_KEY, RunningService, running_service
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

SECRET_KEY = "isolation-test-key-0123456789"
PROXY_PASSWORD = "pr0xy-pa55word-never-in-the-browser"
BLOCKED = "ERR_BLOCKED_BY_ADMINISTRATOR"
REPO = Path(__file__).resolve().parents[2]


class PrivateService:
    """A second local HTTP server standing for "a service on the machine's private network"."""

    def __init__(self) -> None:
        self.hits = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                owner.hits += 1
                body = b"private data"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def private_service() -> Iterator[PrivateService]:
    service = PrivateService()
    yield service
    service.close()


@asynccontextmanager
async def session_client(service: RunningService) -> AsyncIterator[tuple[str, Browser, Page]]:
    """A new session, and a Playwright client attached to it through its cdp_url: what a client holds."""
    response = await service.client.post("/tiktok/session")
    assert response.status_code == 200, response.text
    session_id = response.json()["session_id"]
    info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(info["cdp_url"])
        try:
            yield session_id, browser, browser.contexts[0].pages[0]
        finally:
            await browser.close()


async def navigation_error(page: Page, url: str) -> str | None:
    """None when `url` loaded; else the browser's net error. Tried in a tab of its own, so an error
    page still loading cannot interrupt the next attempt."""
    tab = await page.context.new_page()
    try:
        await tab.goto(url, timeout=15_000)
    except Exception as error:  # noqa: BLE001 - Playwright's Error carries the net error text
        return str(error).splitlines()[0]
    finally:
        await tab.close()
    return None


def browser_pids(session: LiveSession) -> list[int]:
    """The session's Chromium processes (bubblewrap, which starts them, names the profile too)."""
    executor = session.executor
    assert executor is not None
    pids = [
        pid
        for pid in browser_pids_using(executor.profile_dir)
        if Path(f"/proc/{pid}/comm").read_text().strip() in ("chromium", "chrome")
    ]
    assert pids, "the session's Chromium processes should be found by their --user-data-dir"
    return pids


async def test_local_files_are_refused_by_the_browser_and_tiktok_still_loads(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    (tmp_path / "api_key").write_text(SECRET_KEY)
    async with running_service(tmp_path, site.url) as service, session_client(service) as (_, _, page):
        assert await navigation_error(page, site.url) is None
        for url in (
            f"file://{tmp_path}/api_key",
            f"file://{tmp_path}/",
            "file:///proc/self/cwd/.env",
            "file:///etc/passwd",
            "view-source:file:///etc/passwd",
        ):
            error = await navigation_error(page, url)
            assert error is not None and BLOCKED in error, (url, error)
        assert SECRET_KEY not in await page.content()


async def test_loopback_services_other_than_tiktok_are_refused_navigation_and_fetch(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], private_service: PrivateService
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service, session_client(service) as (_, _, page):
        private_port = private_service.url.rsplit(":", 1)[1].rstrip("/")
        service_port = service.base_url.rsplit(":", 1)[1]
        for url in (
            private_service.url,
            f"http://localhost:{private_port}/",
            f"http://127.1:{private_port}/",
            f"http://0.0.0.0:{private_port}/",
            f"http://[::ffff:127.0.0.1]:{private_port}/",
            f"http://127.0.0.1:{service_port}/health",
            # The browser's own DevTools, inside its sandbox.
            "http://127.0.0.1:9222/json/version",
        ):
            assert await navigation_error(page, url) is not None, url
        # From TikTok's own page, a script's fetch is refused as well; the site's own requests are not.
        assert await navigation_error(page, site.url) is None
        outcome = await page.evaluate(
            "u => fetch(u, {mode: 'no-cors'}).then(() => 'reached', () => 'refused')", private_service.url
        )
        assert outcome == "refused"
        assert await page.evaluate("fetch('/').then(r => r.status)") == 200
        assert private_service.hits == 0
        metrics = (await service.client.get("/metrics")).text
        (refused,) = [
            line for line in metrics.splitlines() if line.startswith("tiktok_egress_refused_total ")
        ]
        assert float(refused.split()[1]) >= 7, refused  # one per refused destination above, at least


async def test_blocked_hosts_are_refused(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    blocked_name = "blocked.example"
    async with (
        running_service(tmp_path, site.url, BROWSER_BLOCKED_HOSTS=[blocked_name, "10.0.0.0/8"]) as service,
        session_client(service) as (_, _, page),
    ):
        # Refused by the gate before any name lookup or packet: nothing leaves the machine.
        for url in (f"http://{blocked_name}/", f"http://www.{blocked_name}/", "http://10.1.2.3/"):
            assert await navigation_error(page, url) is not None, url
        assert await navigation_error(page, site.url) is None


async def test_browser_runs_unprivileged_in_its_own_namespaces_with_chromiums_sandbox_on(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service, session_client(service) as (sid, _, page):
        own = process_facts(os.getpid())
        for pid in browser_pids(await service.service.locate(sid)):
            facts = process_facts(pid)
            assert facts["uid"] != 0
            assert "--no-sandbox" not in facts["cmdline"]
            for kind in NAMESPACES:
                assert facts[kind] != own[kind], (pid, kind)
        tab = await page.context.new_page()
        await tab.goto("chrome://sandbox")
        assert "adequately sandboxed" in (await tab.inner_text("body")).lower()


NAMESPACES = ("mnt", "pid", "net")


def process_facts(pid: int) -> dict[str, Any]:
    """Real uid, command line and namespaces of a process, as the host sees them."""
    status = Path(f"/proc/{pid}/status").read_text()
    facts: dict[str, Any] = {
        "uid": int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1]),
        "cmdline": Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"),
    }
    facts.update({kind: os.readlink(f"/proc/{pid}/ns/{kind}") for kind in NAMESPACES})
    return facts


def visible_inside(pid: int, *paths: Path | str) -> list[bool]:
    """Whether each path exists in the file system process `pid` sees (its root, through /proc)."""
    root = Path(f"/proc/{pid}/root")
    return [(root / str(path).lstrip("/")).exists() for path in paths]


def environment_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


async def test_the_browsers_file_system_holds_its_own_profile_and_nothing_of_the_service(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    (tmp_path / "api_key").write_text(SECRET_KEY)
    async with running_service(tmp_path, site.url) as service, session_client(service) as (sid, _, _page):
        session = await service.service.locate(sid)
        executor = session.executor
        assert executor is not None
        pid = browser_pids(session)[0]
        assert visible_inside(pid, executor.profile_dir / "Default", BOX_MOUNT / "downloads") == [True, True]
        absent = (tmp_path / "api_key", tmp_path / "master", REPO / "app", REPO / ".env", Path.home())
        assert visible_inside(pid, *absent) == [False] * len(absent)
        with tempfile.NamedTemporaryFile(prefix="isolation-marker-", dir="/tmp") as marker:
            assert visible_inside(pid, marker.name) == [False]


async def test_no_service_setting_reaches_the_driver_or_the_browser(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    # Set where the service reads them (the environment), so a leak would carry them along.
    monkeypatch.setenv("API_KEYS", SECRET_KEY)
    monkeypatch.setenv("REDIS_URL_TEST_SECRET", PROXY_PASSWORD)
    async with running_service(tmp_path, site.url) as service, session_client(service) as (sid, _, _page):
        processes = browser_pids(await service.service.locate(sid)) + driver_pids()
        assert driver_pids(), "the Patchright driver process should be found"
        for pid in processes:
            environment = environment_of(pid)
            assert SECRET_KEY.encode() not in environment, pid
            assert PROXY_PASSWORD.encode() not in environment, pid
            assert b"API_KEYS" not in environment, pid


def driver_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            # The service's Patchright driver (the test's own Playwright client has a driver too).
            if b"run-driver" in cmdline and b"patchright" in cmdline and parent == os.getpid():
                found.append(int(entry.name))
    return found


async def test_downloads_to_any_path_land_in_the_sessions_own_folder(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    target = tmp_path / "planted"
    target.mkdir()
    async with (
        running_service(tmp_path, site.url) as service,
        session_client(service) as (sid, browser, page),
    ):
        cdp = await browser.new_browser_cdp_session()
        await cdp.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(target)})
        assert await navigation_error(page, site.url) is None
        await page.evaluate("""() => { const a = document.createElement('a');
                a.href = URL.createObjectURL(new Blob(['planted code'], {type: 'text/plain'}));
                a.download = 'evil.pth'; document.body.appendChild(a); a.click(); }""")

        async def arrived() -> bool:
            response = await service.client.get(f"/tiktok/session/{sid}/downloads")
            return "evil.pth" in [item["name"] for item in response.json()["downloads"]]

        await wait_until_async(arrived, timeout=20, what="the download to be listed")
        assert list(target.iterdir()) == []
        body = await service.client.get(f"/tiktok/session/{sid}/downloads/evil.pth")
        assert body.content == b"planted code"


async def wait_until_async(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_a_host_path_given_to_a_file_input_reaches_nothing(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    secret = tmp_path / "api_key"
    secret.write_text(SECRET_KEY)
    async with running_service(tmp_path, site.url) as service, session_client(service) as (_, _, page):
        assert await navigation_error(page, site.url) is None
        await page.evaluate(
            "() => { const i = document.createElement('input'); i.type = 'file'; i.id = 'pick';"
            " document.body.appendChild(i); }"
        )
        cdp = await page.context.new_cdp_session(page)
        document = await cdp.send("DOM.getDocument")
        node = await cdp.send(
            "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": "#pick"}
        )
        await cdp.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [str(secret)]})
        read = await page.evaluate(
            "() => document.querySelector('#pick').files[0].text().then(t => t, e => 'unreadable: ' + e.name)"
        )
        assert SECRET_KEY not in read
        assert read.startswith("unreadable")
        # The legitimate way in: the service's own uploads folder.
        stored = await service.client.post(
            f"/tiktok/session/{await page_session_id(service)}/files",
            params={"name": "clip.txt"},
            content=b"a real upload",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert stored.status_code == 200, stored.text
        await cdp.send("DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [stored.json()["path"]]})
        assert await page.evaluate("() => document.querySelector('#pick').files[0].text()") == "a real upload"


async def page_session_id(service: RunningService) -> str:
    (session,) = await service.service.list_sessions()
    return session.id


async def test_isolation_mode_is_reported_and_none_is_an_explicit_opt_out(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url) as service:
        ready = (await service.client.get("/ready")).json()
        assert ready["isolation"] == "sandbox"
        assert 'tiktok_session_isolation{mode="sandbox"} 1.0' in (await service.client.get("/metrics")).text
    async with running_service(tmp_path, site.url, SESSION_ISOLATION="none") as service:
        assert (await service.client.get("/ready")).json()["isolation"] == "none"
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text
    logged = capfd.readouterr().err
    assert "isolation.off SESSION_ISOLATION=none" in logged
    assert API_KEY not in logged
