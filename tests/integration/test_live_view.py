"""The live view (SPEC §13): a person watches and drives a session in their own browser.

The real service with its real (sandboxed) Chromium and the stand-in site; the person is a second,
headless Chromium that opens the view page. Clicks go through `#screen` by the rule the page
promises: a point at fraction (fx, fy) of the picture's box is (fx * viewport width, fy * viewport
height) in the session's page. The stream itself is also spoken to directly, as a client would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, Page, async_playwright
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.api.live_view import render_view
from app.services.common.access import Scope
from tests.support.harness import API_KEY, RunningService, running_service, wait_until
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

VIEWER_CHROMIUM = "/usr/lib/chromium/chromium"
DEADLINE = 20.0  # something the service does at once, on a loaded 2-core machine
IDLE_TIMEOUT = 3


@pytest.fixture(scope="module")
async def viewer() -> AsyncIterator[Browser]:
    """The person's own browser: headless Chromium, apart from the session's."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=VIEWER_CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        await browser.close()


@asynccontextmanager
async def logged_in_service(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], **overrides: Any
) -> AsyncIterator[RunningService]:
    install_master(master_profiles["logged_in"], tmp_path)
    async with running_service(tmp_path, site.url, **overrides) as service:
        yield service


async def create(service: RunningService) -> str:
    response = await service.client.post("/tiktok/session")
    assert response.status_code == 200, response.text
    return str(response.json()["session_id"])


async def view_link(service: RunningService, session_id: str, interactive: bool) -> str:
    minted = await service.client.post(
        f"/tiktok/session/{session_id}/view-links", json={"interactive": interactive}
    )
    assert minted.status_code == 200, minted.text
    return str(minted.json()["url"])


def stream_url(view_url: str) -> str:
    """The stream beside a view page: …/view?token=… → ws://…/view/stream?token=…"""
    return view_url.replace("http://", "ws://", 1).replace("/view?", "/view/stream?", 1)


async def session_page(service: RunningService, session_id: str) -> Any:
    executor = (await service.service.locate(session_id)).executor
    assert executor is not None
    return executor.page


async def open_playground(service: RunningService, session_id: str, site: StandinServer) -> Any:
    page = await session_page(service, session_id)
    await page.goto(f"{site.url}__standin/playground")
    return page


@asynccontextmanager
async def view_page(viewer: Browser, url: str) -> AsyncIterator[Page]:
    """The view page in the person's browser (window smaller than the session's viewport), showing a frame."""
    context = await viewer.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.wait_for_function(
            "() => { const s = document.querySelector('#screen');"
            " return Number(s.dataset.frames || 0) > 0 && s.naturalWidth > 0; }",
            timeout=DEADLINE * 1000,
        )
        yield page
    finally:
        await context.close()


async def point_through_screen(view: Page, target: Any, selector: str) -> tuple[float, float]:
    """Where in the view page the centre of `selector` in the session's page is, by the linear rule."""
    width, height = await target.evaluate("[innerWidth, innerHeight]")
    box = await target.locator(selector).bounding_box()
    screen = await view.locator("#screen").bounding_box()
    assert box is not None and screen is not None
    fx, fy = (box["x"] + box["width"] / 2) / width, (box["y"] + box["height"] / 2) / height
    return screen["x"] + fx * screen["width"], screen["y"] + fy * screen["height"]


async def click_through_screen(view: Page, target: Any, selector: str, clicks: int = 1) -> None:
    x, y = await point_through_screen(view, target, selector)
    await view.mouse.click(x, y, click_count=clicks)


async def eventually_equal(read: Any, expected: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while (value := await read()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {value!r}, expected {expected!r}")
        await asyncio.sleep(0.05)


class Stream:
    """A raw client of the stream: every JSON message, and when each picture arrived."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.messages: list[dict[str, Any]] = []
        self.frames: list[float] = []
        self.frame_infos: list[dict[str, Any]] = []
        self.closed = asyncio.Event()

    async def read(self) -> None:
        try:
            async for message in self.socket:
                if isinstance(message, bytes):
                    assert message[:2] == b"\xff\xd8", "a frame is a JPEG"
                    self.frames.append(time.monotonic())
                else:
                    parsed = json.loads(message)
                    self.messages.append(parsed)
                    if parsed["type"] == "frame":
                        self.frame_infos.append(parsed)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message["type"] == kind]

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))


@asynccontextmanager
async def stream(url: str, api_key: bool = False) -> AsyncIterator[Stream]:
    headers = {"X-API-Key": API_KEY} if api_key else {}
    async with connect(url, proxy=None, open_timeout=30, max_size=None, additional_headers=headers) as socket:
        client = Stream(socket)
        reader = asyncio.create_task(client.read())
        try:
            yield client
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


def api_stream_url(service: RunningService, session_id: str) -> str:
    return f"{service.base_url.replace('http://', 'ws://')}/tiktok/session/{session_id}/view/stream"


# --- watching and driving through the view page --------------------------------------------------


async def test_text_and_enter_typed_through_the_screen_reach_the_page(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=True)
        async with view_page(viewer, url) as view:
            target = await open_playground(service, session_id, site)
            await click_through_screen(view, target, "#text")
            await view.keyboard.type("hello world")
            await view.keyboard.press("Enter")
            await eventually_equal(
                lambda: target.text_content("#submitted"), "hello world", "the form's submitted text"
            )
            assert await target.input_value("#text") == "hello world"


async def test_the_screen_keeps_the_viewports_aspect_and_says_interactive(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=True)
        async with view_page(viewer, url) as view:
            target = await session_page(service, session_id)
            width, height = await target.evaluate("[innerWidth, innerHeight]")
            screen = await view.locator("#screen").bounding_box()
            assert screen is not None
            # Scaled down to the person's 1280 x 800 window, not letterboxed inside the element.
            assert screen["width"] < width
            assert abs(screen["width"] / screen["height"] - width / height) < 0.01
            header = await view.inner_text("header")
            assert "Interactive" in header and "live" in header and "logged in" in header
            assert "view only" not in (await view.inner_text("body")).lower()
            # A plain session's view has no Done button (that is for remote login).
            assert await view.get_by_role("button", name="Done").count() == 0


async def test_clicks_double_clicks_and_the_wheel_through_the_screen_reach_the_page(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=True)
        async with view_page(viewer, url) as view:
            target = await open_playground(service, session_id, site)
            await click_through_screen(view, target, "#button")
            await eventually_equal(lambda: target.text_content("#clicks"), "1", "clicks")
            await click_through_screen(view, target, "#button", clicks=2)
            await eventually_equal(lambda: target.text_content("#dblclicks"), "1", "double clicks")
            x, y = await point_through_screen(view, target, "#typed")
            await view.mouse.move(x, y)
            await view.mouse.wheel(0, 600)
            await wait_until_true(lambda: target.evaluate("scrollY > 0"), "the page to scroll")


async def wait_until_true(probe: Any, what: str) -> None:
    await eventually_equal(probe, True, what)


async def test_shortcuts_backspace_and_paste_through_the_screen_reach_the_page(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=True)
        async with view_page(viewer, url) as view:
            target = await open_playground(service, session_id, site)
            await click_through_screen(view, target, "#text")
            await view.keyboard.type("abcdef")
            await view.keyboard.press("Backspace")
            await view.keyboard.press("ArrowLeft")
            await view.keyboard.press("ArrowLeft")
            await view.keyboard.press("Delete")
            await eventually_equal(lambda: target.input_value("#text"), "abce", "after Backspace and Delete")
            await view.keyboard.press("Control+A")
            await view.keyboard.press("Backspace")
            await eventually_equal(lambda: target.input_value("#text"), "", "after Ctrl+A, Backspace")
            # What the person's browser fires on Ctrl+V, with their clipboard's text.
            await view.evaluate("""() => {
                  const data = new DataTransfer();
                  data.setData('text/plain', 'pasted text');
                  document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}));
                }""")
            await eventually_equal(lambda: target.input_value("#text"), "pasted text", "the pasted text")


async def test_characters_of_any_layout_and_composed_text_reach_the_page(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        target = await open_playground(service, session_id, site)
        await target.focus("#text")
        async with stream(api_stream_url(service, session_id), api_key=True) as driver:
            await wait_until(lambda: driver.frame_infos, DEADLINE, "the first frame")
            # A French keyboard's é (on the 2 key), AltGr+E's € (the page sends AltGraph as no
            # modifier), and what an input method composed.
            for key, code in (("é", "Digit2"), ("€", "KeyE")):
                await driver.send({"type": "keydown", "key": key, "code": code})
                await driver.send({"type": "keyup", "key": key, "code": code})
            await driver.send({"type": "text", "text": "日本"})
            await eventually_equal(lambda: target.input_value("#text"), "é€日本", "the input")


async def test_a_view_only_link_changes_nothing_and_says_view_only(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=False)
        async with view_page(viewer, url) as view:
            target = await open_playground(service, session_id, site)
            assert "view only" in (await view.inner_text("body")).lower()
            await click_through_screen(view, target, "#text")
            await view.keyboard.type("hello")
            await view.keyboard.press("Enter")
            await click_through_screen(view, target, "#button")
            # Then a client allowed to drive types one character: had the view-only clicks and keys
            # reached the page (they were sent first), the input would hold more than that.
            async with stream(api_stream_url(service, session_id), api_key=True) as driver:
                await wait_until(lambda: driver.frame_infos, DEADLINE, "the driver's first frame")
                x, y = await centre_of(target, "#text")
                for kind in ("mousedown", "mouseup"):
                    await driver.send({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})
                await driver.send({"type": "keydown", "key": "z", "code": "KeyZ"})
                await driver.send({"type": "keyup", "key": "z", "code": "KeyZ"})
                await eventually_equal(lambda: target.input_value("#text"), "z", "the input")
            assert await target.text_content("#clicks") == "0"
            assert await target.text_content("#submitted") == ""


async def centre_of(target: Any, selector: str) -> tuple[float, float]:
    box = await target.locator(selector).bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


async def test_the_server_refuses_input_from_a_view_only_stream(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=False)
        target = await open_playground(service, session_id, site)
        await target.focus("#text")
        async with stream(stream_url(url)) as watcher:
            await wait_until(lambda: watcher.of_type("hello"), DEADLINE, "the hello")
            assert watcher.of_type("hello")[0]["interactive"] is False
            for message in (
                {"type": "keydown", "key": "a", "code": "KeyA"},
                {"type": "paste", "text": "pasted"},
                {"type": "switch_tab", "index": 0},
            ):
                await watcher.send(message)
            await wait_until(lambda: len(watcher.of_type("error")) == 3, DEADLINE, "three refusals")
        assert [error["message"] for error in watcher.of_type("error")] == ["view only"] * 3
        assert await target.input_value("#text") == ""


# --- activity: watching is not, input is -------------------------------------------------------


async def test_an_open_view_only_page_lets_an_idle_session_end(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(
        tmp_path, site, master_profiles, SESSION_IDLE_TIMEOUT=IDLE_TIMEOUT
    ) as service:
        session_id = await create(service)
        session = await service.service.locate(session_id)
        url = await view_link(service, session_id, interactive=False)
        async with view_page(viewer, url) as view:
            await wait_until(session.ended.is_set, DEADLINE, "the idle session to end")
            assert session.end_reason == "idle"
            await view.wait_for_function(
                "document.body.innerText.includes('This session has ended')", timeout=DEADLINE * 1000
            )


async def test_input_through_an_interactive_view_keeps_a_session_alive(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(
        tmp_path, site, master_profiles, SESSION_IDLE_TIMEOUT=IDLE_TIMEOUT
    ) as service:
        session_id = await create(service)
        session = await service.service.locate(session_id)
        url = await view_link(service, session_id, interactive=True)
        async with view_page(viewer, url) as view:
            screen = await view.locator("#screen").bounding_box()
            assert screen is not None
            # Three idle timeouts of a person moving the mouse over the picture.
            until = time.monotonic() + 3 * IDLE_TIMEOUT
            step = 0
            while time.monotonic() < until:
                step += 1
                await view.mouse.move(screen["x"] + 10 + step % 50, screen["y"] + 10)
                await asyncio.sleep(0.3)  # the pace of the person's input, not a wait for the service
                assert not session.ended.is_set(), f"ended ({session.end_reason}) while input arrived"
            # The idle timeout was armed all along: with the input stopped, it ends the session.
            await wait_until(session.ended.is_set, DEADLINE, "the session to end once input stops")
            assert session.end_reason == "idle"


# --- tabs -------------------------------------------------------------------------------------------


async def test_the_view_follows_a_new_tab_and_switches_back_on_request(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=True)
        async with view_page(viewer, url) as view:
            first = await open_playground(service, session_id, site)
            context = (await service.service.locate(session_id)).executor.context
            second = await context.new_page()
            await second.goto(f"{site.url}__standin/animated")
            tabs = view.locator("#tabs [role=tab]")
            await eventually_equal(tabs.count, 2, "tabs in the strip")
            selected = view.locator("#tabs [aria-selected=true]")
            await eventually_equal(selected.text_content, "animated", "the tab shown")

            await tabs.nth(0).click()
            await eventually_equal(selected.text_content, "playground", "the tab shown after switching")
            # Input now reaches the first tab.
            await click_through_screen(view, first, "#text")
            await view.keyboard.type("back")
            await eventually_equal(lambda: first.input_value("#text"), "back", "the first tab's input")

            await second.close()
            await eventually_equal(tabs.count, 1, "tabs once the second closed")


async def test_the_stream_lists_tabs_and_a_closed_tab_gives_way_to_the_one_left(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        await open_playground(service, session_id, site)
        async with stream(api_stream_url(service, session_id), api_key=True) as watcher:
            context = (await service.service.locate(session_id)).executor.context
            second = await context.new_page()
            await second.goto(f"{site.url}__standin/animated")

            def tabs() -> list[tuple[str, bool]]:
                listed = watcher.of_type("tabs")
                return [(tab["title"], tab["active"]) for tab in listed[-1]["tabs"]] if listed else []

            await wait_until(
                lambda: tabs() == [("playground", False), ("animated", True)], DEADLINE, "both tabs listed"
            )
            last = watcher.of_type("tabs")[-1]["tabs"]
            assert [tab["index"] for tab in last] == [0, 1]
            assert last[1]["url"] == f"{site.url}__standin/animated"
            await second.close()
            await wait_until(lambda: tabs() == [("playground", True)], DEADLINE, "the tab left shown")


# --- the stream ---------------------------------------------------------------------------------


async def test_frames_flow_while_the_page_changes_and_stop_when_it_is_still(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        target = await session_page(service, session_id)
        await target.goto(f"{site.url}__standin/animated")
        async with stream(api_stream_url(service, session_id), api_key=True) as watcher:
            await watcher.send({"type": "size", "width": 640, "height": 480})
            await wait_until(lambda: len(watcher.frames) >= 30, DEADLINE, "frames of the animation")
            info = watcher.frame_infos[-1]
            width, height = await target.evaluate("[innerWidth, innerHeight]")
            assert info["viewport"] == {"width": width, "height": height}
            assert 0 < info["width"] <= 640 and 0 < info["height"] <= 480
            assert abs(info["width"] / info["height"] - width / height) < 0.02

            # The page's own world (Patchright evaluates in an isolated one by default).
            await target.evaluate("stopAnimation()", isolated_context=False)

            def quiet_for_a_second() -> bool:
                return time.monotonic() - watcher.frames[-1] > 1.0

            await wait_until(quiet_for_a_second, DEADLINE, "the stream to go quiet on a still page")
            still = len(watcher.frames)
            await target.evaluate("document.body.style.background = '#fff'")
            await wait_until(lambda: len(watcher.frames) > still, DEADLINE, "a frame for the change")


async def test_the_stream_tells_the_state_and_ends_with_the_session(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
        async with stream(stream_url(info["view_url"])) as watcher:
            await wait_until(lambda: watcher.of_type("state"), DEADLINE, "the session's state")
            state = watcher.of_type("state")[0]
            assert state["session_id"] == session_id and state["state"] == "live"
            assert state["login"]["state"] == "logged_in"
            assert state["expires_at"].replace("Z", "+00:00") == info["expires_at"].replace("Z", "+00:00")
            assert "end_reason" not in state

            assert (await service.client.delete(f"/tiktok/session/{session_id}")).status_code == 200
            await asyncio.wait_for(watcher.closed.wait(), DEADLINE)
        assert watcher.messages[-1] == {"type": "ended", "reason": "deleted"}
        assert watcher.socket.close_code == 1000


async def test_revoking_view_links_closes_an_open_view(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=True)
        async with stream(stream_url(url)) as watcher:
            await wait_until(lambda: watcher.of_type("hello"), DEADLINE, "the hello")
            assert watcher.of_type("hello")[0]["interactive"] is True
            revoked = await service.client.delete(f"/tiktok/session/{session_id}/view-links")
            assert revoked.status_code == 200
            await asyncio.wait_for(watcher.closed.wait(), DEADLINE)
        assert watcher.messages[-1]["type"] == "revoked"
        assert watcher.socket.close_code == 1008
        assert (await service.service.locate(session_id)).state == "live"


async def test_a_made_up_token_is_refused_before_the_upgrade(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        with pytest.raises(InvalidStatus) as refusal:
            async with connect(f"{api_stream_url(service, session_id)}?token={'x' * 43}", proxy=None):
                pass
        response = refusal.value.response
        assert response.status_code == 401
        assert json.loads(response.body)["error_details"]["code"] == "UNAUTHORIZED"
        assert response.headers["X-Error-Code"] == "UNAUTHORIZED"


async def test_view_streams_count_against_max_relays_per_session_with_cdp(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles, MAX_RELAYS_PER_SESSION=2) as service:
        session_id = await create(service)
        session = await service.service.locate(session_id)
        info = (await service.client.get(f"/tiktok/session/{session_id}")).json()
        async with stream(stream_url(info["view_url"])) as watcher:
            await wait_until(lambda: watcher.of_type("hello"), DEADLINE, "the view to open")
            async with connect(info["cdp_url"], proxy=None, open_timeout=30):
                assert (session.relays.connection_count, session.relays.open_count) == (2, 1)
                for url in (stream_url(info["view_url"]), info["cdp_url"]):
                    with pytest.raises(InvalidStatus) as refusal:
                        async with connect(url, proxy=None, open_timeout=30):
                            pass
                    response = refusal.value.response
                    assert response.status_code == 429
                    assert json.loads(response.body)["error_details"]["code"] == "TOO_MANY_RELAYS"
        await wait_until(lambda: session.relays.connection_count == 0, DEADLINE, "both connections to end")
        async with stream(stream_url(info["view_url"])) as again:
            await wait_until(lambda: again.of_type("hello"), DEADLINE, "a view once there is room")


# --- Done (remote login) --------------------------------------------------------------------------


async def test_done_posts_to_its_url_with_the_views_token_and_says_saved(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], viewer: Browser
) -> None:
    async with logged_in_service(tmp_path, site, master_profiles) as service:
        session_id = await create(service)
        url = await view_link(service, session_id, interactive=True)
        [token] = parse_qs(urlsplit(url).query)["token"]
        # The route that opens a view with a Done button (remote login) is not this test's: the page
        # is rendered as that route will render it, served at the view's own URL, and its POST is
        # answered here.
        page_html = render_view(
            (await service.service.locate(session_id)).info(),
            token=token,
            scope=Scope.INTERACTIVE_VIEW,
            done_url="/tiktok/accounts/alice/login/done",
        )
        posted: list[tuple[str, str]] = []

        async def serve_view(route: Any) -> None:
            await route.fulfill(status=200, content_type="text/html", body=page_html)

        async def answer_done(route: Any) -> None:
            posted.append((route.request.method, route.request.url))
            await route.fulfill(status=200, content_type="application/json", body='{"status": "success"}')

        context = await viewer.new_context(viewport={"width": 1280, "height": 800})
        try:
            await context.route(lambda address: address == url, serve_view)
            await context.route(lambda address: "/login/done" in address, answer_done)
            view = await context.new_page()
            await view.goto(url)
            await view.get_by_role("button", name="Done").click()
            await view.get_by_text("Saved — you can close this tab").first.wait_for(timeout=DEADLINE * 1000)
        finally:
            await context.close()
        assert posted == [("POST", f"{service.base_url}/tiktok/accounts/alice/login/done?token={token}")]


async def test_an_account_is_logged_in_through_the_view_and_done(
    tmp_path: Path, site: StandinServer, viewer: Browser
) -> None:
    """SPEC §13, as a person does it: no display on the server, only the link."""
    async with running_service(tmp_path, site.url) as service:
        started = await service.client.post("/tiktok/accounts/kim/login")
        assert started.status_code == 200, started.text
        body = started.json()
        target = await session_page(service, body["session_id"])
        async with view_page(viewer, body["view_url"]) as view:
            await target.wait_for_selector('input[name="username"]')
            await click_through_screen(view, target, 'input[name="username"]')
            await view.keyboard.type("kim")
            await click_through_screen(view, target, 'input[name="password"]')
            await view.keyboard.type("secret")
            await view.keyboard.press("Enter")
            await eventually_equal(lambda: _path_of(target), "/", "the page after logging in")
            await view.get_by_role("button", name="Done").click()
            await view.get_by_text("Saved").first.wait_for(timeout=DEADLINE * 1000)

        async def login_state() -> str | None:
            account = (await service.client.get("/tiktok/accounts/kim")).json()
            return account["login"]["state"]

        await eventually_equal(login_state, "logged_in", "the account's proven login")
        session = await service.client.post("/tiktok/session", json={"account": "kim"})
        assert session.status_code == 200, session.text
        info = (await service.client.get(f"/tiktok/session/{session.json()['session_id']}")).json()
        assert info["account"] == "kim" and info["login"]["state"] == "logged_in"


async def _path_of(page: Any) -> str:
    return urlsplit(page.url).path
