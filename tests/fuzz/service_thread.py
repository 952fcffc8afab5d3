"""The real service on its own event loop in a background thread, for synchronous clients.

Schemathesis calls the API with blocking `requests` from the test's thread; a service on that same
event loop would never answer. Here the service (uvicorn, its browsers, its driver) lives on a loop
of its own; the tests reach it over HTTP only.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.harness import RunningService, running_service

START_DEADLINE = 60.0  # seconds; uvicorn and the service's start-up sweep, on a busy 2-core machine
STOP_DEADLINE = 60.0  # seconds; every live session is closed (browser and clone) before the loop ends


class ServiceThread:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.running: RunningService | None = None

    @property
    def service(self) -> RunningService:
        assert self.running is not None, "the service did not start"
        return self.running


@contextmanager
def service_in_thread(user_data_dir: Path, site_url: str, **overrides: Any) -> Iterator[ServiceThread]:
    handle = ServiceThread()
    started: Future[None] = Future()
    ended: Future[None] = Future()
    stop: asyncio.Event | None = None

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        handle.loop = asyncio.get_running_loop()
        try:
            async with running_service(user_data_dir, site_url, **overrides) as running:
                handle.running = running
                started.set_result(None)
                await stop.wait()
        except BaseException as error:
            (ended if started.done() else started).set_exception(error)
            return
        ended.set_result(None)

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="service-under-test")
    thread.start()
    try:
        started.result(START_DEADLINE)
        yield handle
    finally:
        if thread.is_alive() and handle.loop is not None and stop is not None:
            handle.loop.call_soon_threadsafe(stop.set)
        thread.join(STOP_DEADLINE)
        if thread.is_alive():
            raise AssertionError(f"the service did not stop within {STOP_DEADLINE} s")
    if ended.done():
        ended.result()  # a failure while stopping (or while serving) is the test's failure too
