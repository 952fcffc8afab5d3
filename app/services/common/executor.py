"""One browser on one profile directory, with one idempotent close and one "it ended by itself" hook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.services.common.browser import devtools_endpoint, devtools_endpoint_via, kill_browsers_using
from app.services.common.driver import DRIVER_LOST
from app.services.common.sandbox import SessionBox

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT = 1.5  # seconds; a session must be fully gone within 2 s of its end


class BrowserEnd(StrEnum):
    """Why a browser ended on its own."""

    BROWSER_CLOSED = "browser_closed"  # crashed, killed, or its window closed
    LAST_PAGE_CLOSED = "last_page_closed"
    DRIVER_LOST = DRIVER_LOST  # its Patchright driver died: nothing can drive it any more


class AbstractBrowsingExecutor(ABC):
    """Owns a browser context on `profile_dir` from `start()` to `close()`.

    Subclasses say how the context is launched (`_launch`) and released (`_release`); this class
    watches it for ends nobody asked for (a crash, a person closing the last page or the window)
    and guarantees that after `close()` no browser process is left running on the profile.
    """

    def __init__(self, profile_dir: Path, box: SessionBox | None = None):
        self.profile_dir = profile_dir
        # The browser's own folders (downloads, uploads, sockets); removed once the browser is gone.
        self.box = box
        self.context: Any = None
        self.page: Any = None
        self._on_end: Callable[[str], None] | None = None
        self._closing = False
        self._closed = asyncio.Event()
        self._launch_task: asyncio.Task[Any] | None = None
        self.ended_reason: str | None = None
        # `ws://127.0.0.1:<port>/devtools/browser/<id>` when the browser listens for DevTools on loopback.
        self.devtools_url: str | None = None
        # A sandboxed browser's loopback is its own: its DevTools is reached through this unix socket.
        self.devtools_socket: Path | None = None

    @abstractmethod
    async def _launch(self) -> Any:
        """Start the browser and return its (persistent) context."""

    @abstractmethod
    async def _release(self) -> None:
        """Close what `_launch` opened; must tolerate a half-finished launch and a dead browser."""

    def on_end(self, callback: Callable[[str], None]) -> None:
        """`callback(reason)` runs once if the browser ends without `close()` being called."""
        self._on_end = callback

    @property
    def is_alive(self) -> bool:
        return self.context is not None and not self._closing and self.ended_reason is None

    async def start(self) -> None:
        # The launch runs as its own task so a timeout of the caller cannot interrupt Playwright
        # half-way (which would orphan a Chromium); close() waits for it and then releases it.
        self._launch_task = asyncio.get_running_loop().create_task(self._launch())
        self.context = await asyncio.shield(self._launch_task)
        if self.devtools_socket is not None:
            self.devtools_url = await devtools_endpoint_via(self.devtools_socket)
        else:
            # Chromium writes the file once it listens, before the launch returns.
            self.devtools_url = devtools_endpoint(self.profile_dir)
        pages = self.context.pages
        self.page = pages[0] if pages else await self.context.new_page()
        self.context.on("close", lambda _context: self._ended(BrowserEnd.BROWSER_CLOSED))
        self.context.on("page", self._watch_page)
        for page in self.context.pages:
            self._watch_page(page)

    def active_page(self) -> Any:
        """The most recently opened page that is still open (what a person would be looking at)."""
        pages = [
            page for page in (self.context.pages if self.context is not None else []) if not page.is_closed()
        ]
        return pages[-1] if pages else None

    def _watch_page(self, page: Any) -> None:
        page.on("close", lambda _page: self._page_closed())

    def _page_closed(self) -> None:
        if self.context is not None and not self.context.pages:
            self._ended(BrowserEnd.LAST_PAGE_CLOSED)

    def _ended(self, reason: str) -> None:
        if self._closing or self.ended_reason is not None:
            return
        self.ended_reason = reason
        logger.info("browser.ended reason=%s", reason)
        if self._on_end is not None:
            callback, self._on_end = self._on_end, None
            callback(reason)

    async def close(self) -> None:
        """Idempotent; returns once the browser is gone. Safe at any point of `start()`."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            if self._launch_task is not None and not self._launch_task.done():
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(asyncio.shield(self._launch_task), CLOSE_TIMEOUT)
            try:
                await asyncio.wait_for(self._release(), CLOSE_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - a dead browser may fail to close politely
                logger.debug("browser.release_failed error=%s", type(error).__name__)
            killed = await asyncio.to_thread(kill_browsers_using, self.profile_dir)
            if killed:
                logger.warning("browser.killed_stragglers count=%d", killed)
        finally:
            self.context = None
            self.page = None
            try:
                if self.box is not None:
                    await self.box.remove()
            finally:
                self._closed.set()
