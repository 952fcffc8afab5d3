"""A person's live view of a session over one WebSocket (SPEC §13): the page out, their input in.

The page is streamed with CDP's screencast (`Page.startScreencast`): Chromium sends a JPEG when the
page paints and none while it is still, and keeps at most two unacknowledged, so each frame is
acknowledged only once it is on its way to the client: a slow viewer slows its own stream, nothing
else. Every picture goes out as a `frame` message (its size, the viewport it shows, the scroll
offsets) followed by the JPEG as one binary message. The message vocabulary is app/schemas/live_view.py.

The view follows the tab a person would look at: a tab that opens is shown, a closed one gives way to
the most recent one still open, and the person may pick another (`switch_tab`). The session's state,
its tabs and the link's validity are checked once a second (and at once when a tab opens, closes or
navigates) and sent when they change.

Watching is not activity: only input, from a connection whose scope allows it, touches the session.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from patchright.async_api import Error as BrowserError
from pydantic import BaseModel, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from app.schemas.live_view import (
    ClientMessage,
    Ended,
    ErrorMessage,
    FrameInfo,
    Hello,
    KeyInput,
    MouseInput,
    Revoked,
    Scroll,
    Size,
    SwitchTab,
    Tab,
    Tabs,
    TextInput,
    ViewState,
    WheelInput,
    WindowSize,
    client_message,
)
from app.services.common.access import Scope
from app.services.common.executor import AbstractBrowsingExecutor
from app.services.common.view_input import (
    key_commands,
    mouse_commands,
    text_commands,
    wheel_commands,
)

logger = logging.getLogger(__name__)

JPEG_QUALITY = 70
# Until the client says how large it shows the picture (its first `size` message).
DEFAULT_SIZE = WindowSize(type="size", width=1280, height=800)
SIZE_WAIT = 1.0  # seconds a new view waits for the client's size before streaming at the default
CHECK_INTERVAL = 1.0  # seconds between checks of the session's state, its tabs and the link
# A page stuck in a long script must not hold the view up; a call that takes longer is given up on.
PAGE_CALL_TIMEOUT = 2.0
INPUT_TIMEOUT = 5.0
# The largest client message worth parsing: a paste of 100,000 characters, JSON-escaped.
MAX_MESSAGE_CHARS = 1_000_000
# Input events on their way to the page at once; a client sending faster waits (back pressure).
MAX_INPUT_IN_FLIGHT = 64
# Closing must fit in a session's 2 s teardown.
CLOSE_TIMEOUT = 0.5

NORMAL_CLOSURE = 1000
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011

VIEW_ONLY = "view only"


class ViewEnd:
    """Why a live view ended."""

    CLIENT_LEFT = "client_left"
    CLOSED = "closed"  # `close()`: the session ended
    REVOKED = "revoked"  # the link it was opened with expired or was revoked
    ERROR = "error"  # a bug; logged with its traceback


class Watched(Protocol):
    """What a live view needs of its session."""

    id: str
    executor: AbstractBrowsingExecutor | None

    def view_state(self) -> ViewState: ...

    def touch(self) -> None: ...


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header, without decoding the picture."""
    position = 2  # after the start-of-image marker
    while position + 9 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte
            position += 1
            continue
        # SOF0…SOF15 carry the size; C4 (Huffman tables), C8 and CC (arithmetic coding) do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[position + 5 : position + 7], "big")
            width = int.from_bytes(data[position + 7 : position + 9], "big")
            return width, height
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
    return None


class PageScreen:
    """One page's own CDP session: its screencast, and the input dispatched to it."""

    def __init__(self, page: Any, cdp: Any) -> None:
        self.page = page
        self._cdp = cdp
        self.size: WindowSize | None = None
        self.closed = False

    @classmethod
    async def open(cls, context: Any, page: Any, on_frame: Callable[[PageScreen, dict], None]) -> PageScreen:
        cdp = await context.new_cdp_session(page)
        screen = cls(page, cdp)
        cdp.on("Page.screencastFrame", lambda params: on_frame(screen, params))
        return screen

    async def start(self, size: WindowSize) -> None:
        if self.size is not None:
            await self._cdp.send("Page.stopScreencast")
        self.size = size
        await self._cdp.send(
            "Page.startScreencast",
            {
                "format": "jpeg",
                "quality": JPEG_QUALITY,
                "maxWidth": size.width,
                "maxHeight": size.height,
                "everyNthFrame": 1,
            },
        )

    async def ack(self, frame_session: int) -> None:
        await self._cdp.send("Page.screencastFrameAck", {"sessionId": frame_session})

    async def send(self, method: str, params: dict[str, Any]) -> None:
        """One input command (`Input.*`)."""
        await self._cdp.send(method, params)

    async def close(self) -> None:
        """Detach (which ends the screencast); the page may be gone already."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(BrowserError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._cdp.detach()


class LiveView:
    """One person's view of a session over one WebSocket. `run()` once; `close()` from anywhere.

    The client is a Starlette `WebSocket` the route has authorized but not accepted. `scope` is what
    the connection's credential allows (input needs INTERACTIVE_VIEW); `still_granted` says whether
    that credential still works (a view link expires or is revoked while its view is open).
    """

    def __init__(
        self, client: WebSocket, session: Watched, scope: Scope, still_granted: Callable[[], bool]
    ) -> None:
        self._client = client
        self._session = session
        self.interactive = scope.allows(Scope.INTERACTIVE_VIEW)
        self._still_granted = still_granted
        self._screen: PageScreen | None = None
        self._frames: asyncio.Queue[tuple[PageScreen, dict]] = asyncio.Queue()
        self._switching = asyncio.Lock()
        # One message at a time on the socket: a frame's JPEG follows its `frame` message directly.
        self._sending = asyncio.Lock()
        self._size: WindowSize | None = None
        self._sized = asyncio.Event()
        self._changed = asyncio.Event()  # a tab opened, closed or navigated
        self._buttons = 0  # mouse buttons held down, for drags
        self._in_flight: deque[asyncio.Future[Any]] = deque()  # input sent, not yet handled by the page
        self._titles: dict[Any, str] = {}
        self._sent: dict[str, BaseModel] = {}
        self._watched: set[Any] = set()
        self._follow_ups: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._running = False
        self._finished = asyncio.Event()

    async def run(self) -> str:
        if self._running or self._finished.is_set():
            raise RuntimeError("a LiveView runs once")
        self._running = True
        end = ViewEnd.ERROR
        try:
            end = await self._run()
        except Exception:
            logger.exception("view.failed", extra={"session_id": self._session.id})
        finally:
            await self._finish(end)
            self._finished.set()
        logger.info("view.closed", extra={"session_id": self._session.id, "end": end})
        return end

    async def close(self) -> None:
        """End the view: the client is told the session ended and gets a 1000 close. Idempotent."""
        self._stop.set()
        if self._running:
            await self._finished.wait()

    async def _run(self) -> str:
        try:
            await self._client.accept()
        except OSError:  # uvicorn's ClientDisconnected: the client left before the upgrade finished
            return ViewEnd.CLIENT_LEFT
        executor = self._session.executor
        context = executor.context if executor is not None else None
        if self._stop.is_set() or context is None:
            return ViewEnd.CLOSED
        await self._send(Hello(session_id=self._session.id, interactive=self.interactive))
        context.on("page", self._page_opened)
        for page in context.pages:
            self._watch(page)
        stopped = asyncio.create_task(self._stop.wait())
        tasks = [
            stopped,
            asyncio.create_task(self._receive()),
            asyncio.create_task(self._keep_up(context)),
            asyncio.create_task(self._pump()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            context.remove_listener("page", self._page_opened)
            for page in self._watched:
                self._unwatch(page)
        if stopped in done:
            return ViewEnd.CLOSED
        # A task that ended with a bug re-raises here and is logged by `run()`.
        return next(task for task in tasks if task in done).result()

    async def _finish(self, end: str) -> None:
        for task in [*self._follow_ups, *self._in_flight]:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: an input lost as the view ends is not worth a warning
            task.cancel()
        screen, self._screen = self._screen, None
        # Both at once: the client hears why at once, whatever the browser's CDP session takes.
        closing: list[Coroutine[Any, Any, None]] = [screen.close()] if screen is not None else []
        if end == ViewEnd.CLOSED:
            reason = self._session.view_state().end_reason
            closing.append(self._goodbye(Ended(reason=reason), NORMAL_CLOSURE, "session ended"))
        elif end == ViewEnd.REVOKED:
            closing.append(self._goodbye(Revoked(), POLICY_VIOLATION, "view link revoked or expired"))
        elif end == ViewEnd.ERROR:
            closing.append(self._goodbye(None, INTERNAL_ERROR, "live view error"))
        await asyncio.gather(*closing)

    async def _goodbye(self, last: BaseModel | None, code: int, reason: str) -> None:
        if WebSocketState.DISCONNECTED in (self._client.client_state, self._client.application_state):
            return
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if self._client.application_state == WebSocketState.CONNECTING:
                    await self._client.accept()
                if last is not None:
                    await self._send(last)
                await self._client.close(code, reason)

    # --- the three loops ---------------------------------------------------------------------------

    async def _receive(self) -> str:
        while True:
            try:
                message = await self._client.receive()
            except WebSocketDisconnect:
                return ViewEnd.CLIENT_LEFT
            if message["type"] == "websocket.disconnect":
                return ViewEnd.CLIENT_LEFT
            text = message.get("text")
            if text is None or len(text) > MAX_MESSAGE_CHARS:
                await self._refuse(f"send JSON text messages of at most {MAX_MESSAGE_CHARS} characters")
                continue
            try:
                parsed = client_message.validate_json(text)
            except ValidationError as error:
                first = error.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                await self._refuse(f"not a live view message ({where}: {first['msg']})")
                continue
            await self._handle(parsed)

    async def _pump(self) -> str:
        """Frames to the client, each acknowledged once it is sent (the screencast's back pressure)."""
        while True:
            screen, params = await self._frames.get()
            if screen.closed:
                continue  # a tab no longer shown: its CDP session, and so its screencast, is gone
            data = base64.b64decode(params["data"])
            metadata = params.get("metadata", {})
            width, height = jpeg_size(data) or (0, 0)
            info = FrameInfo(
                width=width,
                height=height,
                viewport=Size(width=metadata.get("deviceWidth", 0), height=metadata.get("deviceHeight", 0)),
                scroll=Scroll(x=metadata.get("scrollOffsetX", 0), y=metadata.get("scrollOffsetY", 0)),
                page_scale_factor=metadata.get("pageScaleFactor", 1),
            )
            try:
                async with self._sending:
                    await self._client.send_text(info.model_dump_json())
                    await self._client.send_bytes(data)
            except (WebSocketDisconnect, OSError):
                return ViewEnd.CLIENT_LEFT
            with contextlib.suppress(BrowserError, TimeoutError):
                async with asyncio.timeout(PAGE_CALL_TIMEOUT):
                    await screen.ack(params["sessionId"])

    async def _keep_up(self, context: Any) -> str:
        """Start on the active tab, then send the session's state and tabs whenever they change."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SIZE_WAIT):
                await self._sized.wait()
        await self._show(None, to_front=False)
        while True:
            if not self._still_granted():
                return ViewEnd.REVOKED
            self._changed.clear()
            try:
                await self._send_if_changed(self._session.view_state())
                await self._send_if_changed(await self._tabs(context))
            except (WebSocketDisconnect, OSError):
                return ViewEnd.CLIENT_LEFT
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECK_INTERVAL):
                    await self._changed.wait()

    # --- client messages ---------------------------------------------------------------------------

    async def _handle(self, message: ClientMessage) -> None:
        if isinstance(message, WindowSize):
            await self._resize(message)
            return
        if not self.interactive:
            await self._refuse(VIEW_ONLY)
            return
        self._session.touch()
        if isinstance(message, SwitchTab):
            await self._switch_tab(message.index)
            return
        screen = self._screen
        if screen is None:
            return  # between two tabs: there is no page for the input to reach
        if isinstance(message, MouseInput):
            commands, self._buttons = mouse_commands(message, self._buttons)
        elif isinstance(message, WheelInput):
            commands = wheel_commands(message)
        elif isinstance(message, KeyInput):
            commands = key_commands(message)
        else:
            assert isinstance(message, TextInput)
            commands = text_commands(message.text)
        # Sent in order without waiting for each event to be handled before the next goes out: a
        # person's input overlaps as in a local browser instead of queueing behind the slowest event
        # (a mouse move waits for the page's next frame). Chromium handles one CDP session's
        # commands in the order they arrive.
        for method, params in commands:
            self._in_flight.append(asyncio.ensure_future(screen.send(method, params)))
        while self._in_flight and (self._in_flight[0].done() or len(self._in_flight) > MAX_INPUT_IN_FLIGHT):
            await self._settle(self._in_flight.popleft())

    @staticmethod
    async def _settle(event: asyncio.Future[Any]) -> None:
        try:
            async with asyncio.timeout(INPUT_TIMEOUT):
                await event
        except (BrowserError, TimeoutError) as error:
            # The tab closed under the input, or is stuck: the view moves on, the input is lost.
            logger.debug("view.input_lost error=%s", type(error).__name__)

    async def _resize(self, size: WindowSize) -> None:
        self._size = size
        self._sized.set()
        async with self._switching:
            screen = self._screen
            if screen is not None and screen.size != size:
                with contextlib.suppress(BrowserError, TimeoutError):
                    async with asyncio.timeout(PAGE_CALL_TIMEOUT):
                        await screen.start(size)

    async def _switch_tab(self, index: int) -> None:
        pages = self._pages()
        if index >= len(pages):
            await self._refuse(f"there is no tab {index}")
            return
        await self._show(pages[index], to_front=True)

    async def _refuse(self, why: str) -> None:
        with contextlib.suppress(WebSocketDisconnect, OSError):
            await self._send(ErrorMessage(message=why))

    # --- tabs --------------------------------------------------------------------------------------

    def _pages(self) -> list[Any]:
        executor = self._session.executor
        context = executor.context if executor is not None else None
        return [page for page in (context.pages if context is not None else []) if not page.is_closed()]

    async def _show(self, page: Any, to_front: bool) -> None:
        """Stream `page` (None: the active page) instead of the tab shown so far.

        `to_front`: bring it to the front first (a tab the person picked, or the one left when the
        shown tab closed); a background tab paints nothing in a window of tabs.
        """
        async with self._switching:
            old, self._screen = self._screen, None
            if old is not None:
                await old.close()
            # The page may close while the view attaches to it: then the next active page is shown.
            for _attempt in range(3):
                executor = self._session.executor
                if executor is None or executor.context is None:
                    return
                if page is None:
                    page = executor.active_page()
                elif page.is_closed():
                    page, to_front = executor.active_page(), True
                if page is None:
                    return
                screen: PageScreen | None = None
                try:
                    async with asyncio.timeout(PAGE_CALL_TIMEOUT):
                        screen = await PageScreen.open(executor.context, page, self._frame_arrived)
                        # Set before the screencast starts: its first frames are this screen's.
                        self._screen = screen
                        if to_front:
                            await page.bring_to_front()
                        await screen.start(self._size or DEFAULT_SIZE)
                except (BrowserError, TimeoutError) as error:
                    logger.debug("view.attach_failed error=%s", type(error).__name__)
                    self._screen = None
                    if screen is not None:
                        await screen.close()
                    page, to_front = None, True
                    continue
                self._changed.set()
                return

    def _frame_arrived(self, screen: PageScreen, params: dict) -> None:
        self._frames.put_nowait((screen, params))

    async def _tabs(self, context: Any) -> Tabs:
        pages = self._pages()
        titles = await asyncio.gather(*(self._title(page) for page in pages))
        self._titles = dict(zip(pages, titles, strict=True))
        shown = self._screen.page if self._screen is not None else None
        return Tabs(
            tabs=[
                Tab(index=index, title=title, url=page.url, active=page is shown)
                for index, (page, title) in enumerate(zip(pages, titles, strict=True))
            ]
        )

    async def _title(self, page: Any) -> str:
        try:
            async with asyncio.timeout(PAGE_CALL_TIMEOUT):
                return str(await page.title())
        except (BrowserError, TimeoutError):
            return self._titles.get(page, "")  # navigating, or busy: the last title known

    async def _send_if_changed(self, message: BaseModel) -> None:
        kind = str(getattr(message, "type", type(message).__name__))
        if self._sent.get(kind) != message:
            await self._send(message)
            self._sent[kind] = message

    async def _send(self, message: BaseModel) -> None:
        async with self._sending:
            await self._client.send_text(message.model_dump_json(exclude_none=True))

    # --- browser events (called by Playwright, cannot await) ---------------------------------------

    def _page_opened(self, page: Any) -> None:
        self._watch(page)
        # A tab that opens comes to the front, as in a browser: the view shows it.
        self._follow_up(self._show(page, to_front=False))

    def _watch(self, page: Any) -> None:
        self._watched.add(page)
        page.on("close", self._page_closed)
        page.on("framenavigated", self._frame_navigated)
        page.on("load", self._page_loaded)

    def _unwatch(self, page: Any) -> None:
        page.remove_listener("close", self._page_closed)
        page.remove_listener("framenavigated", self._frame_navigated)
        page.remove_listener("load", self._page_loaded)

    def _page_closed(self, page: Any) -> None:
        self._watched.discard(page)
        self._unwatch(page)
        self._changed.set()
        if self._screen is not None and self._screen.page is page:
            self._follow_up(self._show(None, to_front=True))

    def _frame_navigated(self, frame: Any) -> None:
        if frame.parent_frame is None:
            self._changed.set()

    def _page_loaded(self, _page: Any) -> None:
        self._changed.set()  # the title is usually known by now

    def _follow_up(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._follow_ups.add(task)
        task.add_done_callback(self._follow_up_done)

    def _follow_up_done(self, task: asyncio.Task[None]) -> None:
        self._follow_ups.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("view.follow_up_failed", exc_info=task.exception())
