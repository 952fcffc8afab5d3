"""A session's own tools (SPEC §2, §11): token scopes, view links, downloads, uploads, the relay limit.

The real service over HTTP with its real (sandboxed) Chromium and the stand-in site; a client drives
the browser the way a remote one does, with Playwright's `connect_over_cdp` on `cdp_url`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.async_api import Page, async_playwright
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.harness import RunningService, assert_error, running_service, wait_until
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEADLINE = 20.0  # something the service does at once, on a loaded 2-core machine
# What the stand-in serves at /__standin/report.txt: bytes 0..255, forty times.
REPORT_NAME = "report.txt"
REPORT_SIZE = 10_240
REPORT_SHA256 = "e96760a87768717bcebcfd25ddc7d46b4dbc95a4b0014def080c08539f7d90d0"
# Where the sandbox shows the session's uploads folder to its browser.
UPLOADS_AS_THE_BROWSER_SEES_THEM = "/session/uploads"

# The page reads the file its input holds, as a site's upload script would.
READ_PICKED_FILE = """async (input) => {
  const file = input.files[0];
  if (!file) return null;
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
  return {name: file.name, size: file.size, sha256: hex};
}"""


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
    assert body["cdp_url"] and body["view_url"], body
    return body


def token_of(url: str) -> str:
    [token] = parse_qs(urlsplit(url).query)["token"]
    return token


def bare_client(service: RunningService) -> httpx.AsyncClient:
    """No API key: what a client holding only a session's URL is."""
    return httpx.AsyncClient(base_url=service.base_url, timeout=60)


def tools_path(session_id: str, route: str = "") -> str:
    return f"/tiktok/session/{session_id}" + (f"/{route}" if route else "")


async def refused(url: str) -> tuple[int, dict[str, Any]]:
    """The HTTP status and the service's error envelope with which a WebSocket upgrade was refused."""
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, proxy=None, open_timeout=30):
            pass
    response = refusal.value.response
    body = json.loads(response.body)
    assert response.headers["X-Error-Code"] == body["error_details"]["code"]
    return response.status_code, body


async def eventually(probe: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """`wait_until` for a condition that needs a request to check."""
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)  # the poll interval of `wait_until`


@asynccontextmanager
async def attached_page(cdp_url: str) -> AsyncIterator[Page]:
    """A Playwright client on the session's own page, over the relay; detaches (the browser stays)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(cdp_url, timeout=30_000)
        yield browser.contexts[0].pages[0]


async def download_report(cdp_url: str, site: StandinServer) -> None:
    """A page of the session downloads the stand-in's report while a Playwright client is attached."""
    async with attached_page(cdp_url) as page:
        await page.goto(f"{site.url}__standin/files")
        async with page.expect_download(timeout=30_000):
            await page.click("#report")


# Every route a control credential opens besides the view: method, path under the session, query.
CONTROL_ROUTES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "screenshot", {}),
    ("GET", "downloads", {}),
    ("GET", f"downloads/{REPORT_NAME}", {}),
    ("POST", "files", {"name": "note.txt"}),
    ("POST", "keepalive", {}),
    ("POST", "view-links", {}),
    ("DELETE", "view-links", {}),
]


async def call_with_token(
    client: httpx.AsyncClient, session_id: str, token: str, method: str, route: str, query: dict[str, str]
) -> httpx.Response:
    """One session route with `?token=` as the only credential; an upload sends a few bytes."""
    return await client.request(
        method,
        tools_path(session_id, route),
        params={**query, "token": token},
        content=b"a note" if route == "files" else None,
    )


# --- token scopes -----------------------------------------------------------------------------------


async def test_cdp_url_and_view_url_carry_different_tokens(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        info = (await service.client.get(tools_path(body["session_id"]))).json()
        control, view = token_of(info["cdp_url"]), token_of(info["view_url"])
        assert len(control) >= 32 and len(view) >= 32
        assert control != view
        assert urlsplit(info["view_url"]).path == tools_path(body["session_id"], "view")
        assert (token_of(body["cdp_url"]), token_of(body["view_url"])) == (control, view)


async def test_the_view_url_token_opens_the_view_page_and_its_frames(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        async with bare_client(service) as bare:
            page = await bare.get(body["view_url"])
            frame = await bare.get(
                tools_path(body["session_id"], "view/frame"), params={"token": token_of(body["view_url"])}
            )
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "view only" in page.text
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/png"
        assert frame.content.startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("link", ["view_url", "interactive view link"])
async def test_a_view_token_is_403_on_every_control_route(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], link: str
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        if link == "view_url":
            token = token_of(body["view_url"])
        else:
            minted = await service.client.post(
                tools_path(session_id, "view-links"), json={"interactive": True}
            )
            assert minted.status_code == 200, minted.text
            token = token_of(minted.json()["url"])
        async with bare_client(service) as bare:
            for method, route, query in CONTROL_ROUTES:
                answer = await call_with_token(bare, session_id, token, method, route, query)
                assert_error(answer, 403, "FORBIDDEN")
            # Still a good view token: the refusals were about its scope.
            assert (
                await bare.get(tools_path(session_id, "view"), params={"token": token})
            ).status_code == 200
        assert list((await service.service.locate(session_id)).box.uploads.iterdir()) == []


async def test_a_view_token_is_refused_at_the_cdp_upgrade_with_403_and_the_session_stays(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        cdp_with_view_token = f"{body['cdp_url'].split('?')[0]}?token={token_of(body['view_url'])}"

        status, error = await refused(cdp_with_view_token)
        assert status == 403 and error["error_details"]["code"] == "FORBIDDEN"
        session = await service.service.locate(session_id)
        assert session.state == "live" and session.relays.open_count == 0
        async with connect(body["cdp_url"], proxy=None, open_timeout=30) as ws:
            await ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
            assert "Chrome" in json.loads(await ws.recv())["result"]["product"]


async def test_the_control_token_opens_every_session_tool(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        token = token_of(body["cdp_url"])
        async with bare_client(service) as bare:
            for route in ("view", "view/frame"):
                assert (
                    await bare.get(tools_path(session_id, route), params={"token": token})
                ).status_code == 200
            for method, route, query in CONTROL_ROUTES:
                if route.startswith("downloads/"):
                    continue  # nothing was downloaded: a 404, checked with the download tests
                answer = await call_with_token(bare, session_id, token, method, route, query)
                assert answer.status_code == 200, (route, answer.text)
        async with connect(body["cdp_url"], proxy=None, open_timeout=30) as ws:
            await ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
            assert "Chrome" in json.loads(await ws.recv())["result"]["product"]


async def test_a_made_up_token_is_401_on_every_session_tool(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        made_up = "x" * 43
        async with bare_client(service) as bare:
            for method, route, query in [*CONTROL_ROUTES, ("GET", "view", {}), ("GET", "view/frame", {})]:
                answer = await call_with_token(bare, session_id, made_up, method, route, query)
                assert_error(answer, 401, "UNAUTHORIZED")
        status, error = await refused(f"{body['cdp_url'].split('?')[0]}?token={made_up}")
        assert status == 401 and error["error_details"]["code"] == "UNAUTHORIZED"


# --- view links -------------------------------------------------------------------------------------


async def test_a_minted_view_only_link_has_its_own_token_and_expiry_and_opens_the_view(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles, MAX_SESSION_DURATION=900) as service:
        body = await create(service)
        before = datetime.now(UTC)
        minted = await service.client.post(
            tools_path(body["session_id"], "view-links"), json={"interactive": False, "ttl": 600}
        )
        assert minted.status_code == 200, minted.text
        link = minted.json()
        assert link["status"] == "success" and link["interactive"] is False
        assert token_of(link["url"]) not in (token_of(body["cdp_url"]), token_of(body["view_url"]))
        expires_at = datetime.fromisoformat(link["expires_at"])
        assert before + timedelta(seconds=595) <= expires_at <= datetime.now(UTC) + timedelta(seconds=605)
        async with bare_client(service) as bare:
            view = await bare.get(link["url"])
        assert view.status_code == 200 and "view only" in view.text


async def test_an_interactive_link_opens_an_interactive_view(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        minted = await service.client.post(
            tools_path(body["session_id"], "view-links"), json={"interactive": True}
        )
        assert minted.status_code == 200, minted.text
        assert minted.json()["interactive"] is True
        async with bare_client(service) as bare:
            view = await bare.get(minted.json()["url"])
        assert view.status_code == 200
        assert "interactive" in view.text and "view only" not in view.text


async def test_a_link_minted_without_a_body_is_view_only_and_fits_the_default_max_session_duration(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    # MAX_SESSION_DURATION keeps its default (300 s), below the default ttl (600 s) of SPEC §11.
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        minted = await service.client.post(tools_path(body["session_id"], "view-links"))
        assert minted.status_code == 200, minted.text
        link = minted.json()
        assert link["interactive"] is False
        assert datetime.fromisoformat(link["expires_at"]) <= datetime.now(UTC) + timedelta(seconds=301)
        async with bare_client(service) as bare:
            view = await bare.get(link["url"])
        assert view.status_code == 200 and "view only" in view.text


@pytest.mark.parametrize("ttl", [301, 0])
async def test_a_ttl_outside_one_second_to_max_session_duration_is_422(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], ttl: int
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles, MAX_SESSION_DURATION=300) as service:
        body = await create(service)
        answer = await service.client.post(tools_path(body["session_id"], "view-links"), json={"ttl": ttl})
        assert_error(answer, 422, "VALIDATION_ERROR")


async def test_an_unknown_field_in_a_view_link_request_is_422(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        answer = await service.client.post(
            tools_path(body["session_id"], "view-links"), json={"interactive": False, "owner": "bob"}
        )
        assert_error(answer, 422, "VALIDATION_ERROR")


async def test_a_view_link_stops_working_once_its_ttl_has_passed(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        # 2 s, not the minimum 1 s: the first request must land inside the link's life on a busy machine.
        minted = await service.client.post(tools_path(session_id, "view-links"), json={"ttl": 2})
        minted_at = time.monotonic()
        assert minted.status_code == 200, minted.text
        url = minted.json()["url"]
        async with bare_client(service) as bare:
            assert (await bare.get(url)).status_code == 200

            async def refused_now() -> bool:
                return (await bare.get(url)).status_code == 401

            await eventually(refused_now, DEADLINE, "the link to expire")
            assert time.monotonic() - minted_at >= 2
            assert_error(await bare.get(url), 401, "UNAUTHORIZED")
            frame = tools_path(session_id, "view/frame")
            assert_error(await bare.get(frame, params={"token": token_of(url)}), 401, "UNAUTHORIZED")
            # The session and its other credentials are untouched.
            assert (await bare.get(body["view_url"])).status_code == 200
            control = {"token": token_of(body["cdp_url"])}
            assert (await bare.get(tools_path(session_id, "screenshot"), params=control)).status_code == 200


async def test_revoking_view_links_kills_every_view_token_and_hands_out_a_new_view_url(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        links_path = tools_path(session_id, "view-links")
        minted = [
            (await service.client.post(links_path, json={"interactive": interactive})).json()["url"]
            for interactive in (False, True)
        ]
        old_views = [body["view_url"], *minted]
        async with bare_client(service) as bare:
            for url in old_views:
                assert (await bare.get(url)).status_code == 200

            revoked = await bare.delete(links_path, params={"token": token_of(body["cdp_url"])})
            assert revoked.status_code == 200, revoked.text
            new_view_url = revoked.json()["view_url"]

            for url in old_views:
                assert_error(await bare.get(url), 401, "UNAUTHORIZED")
                frame = await bare.get(tools_path(session_id, "view/frame"), params={"token": token_of(url)})
                assert_error(frame, 401, "UNAUTHORIZED")
            assert token_of(new_view_url) not in {token_of(url) for url in old_views}
            new_view = await bare.get(new_view_url)
            assert new_view.status_code == 200 and "view only" in new_view.text
            control = {"token": token_of(body["cdp_url"])}
            assert (await bare.get(tools_path(session_id, "screenshot"), params=control)).status_code == 200
        info = (await service.client.get(tools_path(session_id))).json()
        assert info["view_url"] == new_view_url and info["cdp_url"] == body["cdp_url"]


# --- downloads --------------------------------------------------------------------------------------


async def listed_downloads(service: RunningService, session_id: str) -> list[dict[str, Any]]:
    """The session's downloads once at least one is listed (within the deadline)."""
    listed: list[dict[str, Any]] = []

    async def listed_now() -> bool:
        answer = await service.client.get(tools_path(session_id, "downloads"))
        assert answer.status_code == 200, answer.text
        listed[:] = answer.json()["downloads"]
        return bool(listed)

    await eventually(listed_now, DEADLINE, "a download to be listed")
    return listed


async def test_a_download_made_while_playwright_is_attached_is_listed_under_the_sites_name(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        started = datetime.now(UTC)
        # Playwright names a folder of its own on attach (Browser.setDownloadBehavior, allowAndName): the
        # file must land in the session's folder all the same, under the name the site gave it.
        await download_report(body["cdp_url"], site)

        listed = await listed_downloads(service, body["session_id"])
        assert [(item["name"], item["size"]) for item in listed] == [(REPORT_NAME, REPORT_SIZE)]
        created_at = datetime.fromisoformat(listed[0]["created_at"])
        assert started - timedelta(seconds=2) <= created_at <= datetime.now(UTC)


async def test_a_listed_download_is_served_byte_for_byte(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        await download_report(body["cdp_url"], site)
        [item] = await listed_downloads(service, session_id)

        served = await service.client.get(tools_path(session_id, f"downloads/{item['name']}"))
        assert served.status_code == 200
        assert served.headers["content-type"] == "application/octet-stream"
        assert len(served.content) == REPORT_SIZE
        assert hashlib.sha256(served.content).hexdigest() == REPORT_SHA256


@pytest.mark.parametrize(
    "name",
    [
        "..%2Foutside.txt",
        "%2E%2E%2Foutside.txt",
        "%2Fetc%2Fpasswd",
        "%2E%2E",
        "no-such-file.txt",
        "planted-link",
    ],
)
async def test_a_download_name_outside_the_folder_or_unknown_is_404(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], name: str
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        box = (await service.service.locate(body["session_id"])).executor.box
        # A file beside the downloads folder, and a link inside it pointing there: neither may be served.
        outside = box.path / "outside.txt"
        outside.write_bytes(b"not a download")
        (box.downloads / "planted-link").symlink_to(outside)

        answer = await service.client.get(
            httpx.URL(f"{service.base_url}{tools_path(body['session_id'], 'downloads')}/{name}")
        )
        assert answer.status_code == 404, answer.text
        assert answer.headers["X-Error-Code"] == answer.json()["error_details"]["code"]
        assert b"not a download" not in answer.content and b"root:" not in answer.content
        listed = (await service.client.get(tools_path(body["session_id"], "downloads"))).json()["downloads"]
        assert listed == []


async def test_downloads_are_deleted_with_their_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        session_id = body["session_id"]
        box = (await service.service.locate(session_id)).executor.box
        await download_report(body["cdp_url"], site)
        await wait_until(lambda: any(box.downloads.iterdir()), DEADLINE, "the download on disk")
        assert box.path.is_relative_to(Path(f"/tmp/tiktok-sessions-{os.geteuid()}"))

        deleted = await service.client.delete(tools_path(session_id))
        assert deleted.status_code == 200, deleted.text
        assert not box.downloads.exists()
        assert not box.path.exists()


# --- uploads ----------------------------------------------------------------------------------------


async def test_an_uploaded_file_reaches_a_pages_file_input_through_dom_set_file_input_files(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    video = os.urandom(300 * 1024)
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        stored = await service.client.post(
            tools_path(body["session_id"], "files"),
            params={"name": "video.mp4"},
            content=video,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert stored.status_code == 200, stored.text
        assert stored.json()["path"] == f"{UPLOADS_AS_THE_BROWSER_SEES_THEM}/video.mp4"
        assert stored.json()["size"] == 300 * 1024

        async with attached_page(body["cdp_url"]) as page:
            await page.goto(f"{site.url}upload")
            cdp = await page.context.new_cdp_session(page)
            document = await cdp.send("DOM.getDocument")
            node = await cdp.send(
                "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": "input[type=file]"}
            )
            await cdp.send(
                "DOM.setFileInputFiles", {"nodeId": node["nodeId"], "files": [stored.json()["path"]]}
            )
            picked = await page.eval_on_selector("input[type=file]", READ_PICKED_FILE)
        assert picked == {
            "name": "video.mp4",
            "size": 300 * 1024,
            "sha256": hashlib.sha256(video).hexdigest(),
        }


@pytest.mark.parametrize("name", ["../x", ".hidden", "", "a/b"])
async def test_an_upload_name_that_is_not_a_plain_file_name_is_422(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], name: str
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        body = await create(service)
        box = (await service.service.locate(body["session_id"])).executor.box
        answer = await service.client.post(
            tools_path(body["session_id"], "files"), params={"name": name}, content=b"payload"
        )
        assert_error(answer, 422, "INVALID_FILE_NAME")
        assert list(box.uploads.iterdir()) == []
        assert not (box.path / "x").exists()


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    """A body without Content-Length (chunked): the limit can only be found while reading it."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_upload_over_max_upload_bytes_is_413_and_leaves_no_file(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], declared: bool
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles, MAX_UPLOAD_BYTES=1000) as service:
        body = await create(service)
        box = (await service.service.locate(body["session_id"])).executor.box
        data = os.urandom(1001)
        answer = await service.client.post(
            tools_path(body["session_id"], "files"),
            params={"name": "video.mp4"},
            content=data if declared else chunks_of(data, 300),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert_error(answer, 413, "PAYLOAD_TOO_LARGE")
        assert list(box.uploads.iterdir()) == []


async def test_an_upload_of_exactly_max_upload_bytes_is_stored(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles, MAX_UPLOAD_BYTES=1000) as service:
        body = await create(service)
        box = (await service.service.locate(body["session_id"])).executor.box
        data = os.urandom(1000)
        answer = await service.client.post(
            tools_path(body["session_id"], "files"), params={"name": "clip.mp4"}, content=chunks_of(data, 300)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["size"] == 1000
        assert [entry.name for entry in box.uploads.iterdir()] == ["clip.mp4"]
        assert (box.uploads / "clip.mp4").read_bytes() == data


# --- relays -----------------------------------------------------------------------------------------


async def test_a_cdp_connection_over_max_relays_per_session_is_429_before_the_upgrade(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles, MAX_RELAYS_PER_SESSION=2) as service:
        body = await create(service)
        session = await service.service.locate(body["session_id"])
        async with (
            connect(body["cdp_url"], proxy=None, open_timeout=30) as first,
            connect(body["cdp_url"], proxy=None, open_timeout=30) as second,
        ):
            assert session.relays.open_count == 2
            status, error = await refused(body["cdp_url"])
            assert status == 429 and error["error_details"]["code"] == "TOO_MANY_RELAYS"
            # The two admitted clients still drive the browser.
            for number, ws in enumerate((first, second), start=1):
                await ws.send(json.dumps({"id": number, "method": "Browser.getVersion"}))
                assert json.loads(await ws.recv())["id"] == number
            assert session.relays.open_count == 2 and session.state == "live"


async def test_closing_one_of_max_relays_per_session_lets_a_new_one_in(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles, MAX_RELAYS_PER_SESSION=2) as service:
        body = await create(service)
        session = await service.service.locate(body["session_id"])
        async with connect(body["cdp_url"], proxy=None, open_timeout=30) as staying:
            second = await connect(body["cdp_url"], proxy=None, open_timeout=30)
            await second.close()
            await wait_until(lambda: session.relays.open_count == 1, DEADLINE, "the closed relay to end")
            async with connect(body["cdp_url"], proxy=None, open_timeout=30) as third:
                await third.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
                assert "Chrome" in json.loads(await third.recv())["result"]["product"]
            await staying.send(json.dumps({"id": 2, "method": "Browser.getVersion"}))
            assert json.loads(await staying.recv())["id"] == 2
