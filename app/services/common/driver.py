"""One Patchright driver per service process, shared by every browser the process launches.

The driver is Playwright's Node.js server (`node …/patchright/driver/package/cli.js run-driver`):
about half a second to start and over 100 MB resident. Started per session it doubled what a
session costs; here it starts on first use and every session's persistent context is launched
through it. Each browser is still its own Chromium process on its own profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from patchright._impl import _transport
from patchright.async_api import async_playwright

from app.services.common.browser import browser_environment

logger = logging.getLogger(__name__)

# End reason of a browser whose driver died: its context can no longer be driven, whatever Chromium does.
DRIVER_LOST = "driver_lost"
STOP_TIMEOUT = 5.0  # seconds; a driver that does not stop by then is dead or dying anyway
# The driver (and Patchright's connection to it, on this side) keeps per-session state it never frees
# (every wait's callbacks, ~28 KiB a session in the driver): after this many launches new sessions go to
# a fresh driver, and the old one stops once its last session has ended. Memory stays flat for days.
RECYCLE_AFTER_LAUNCHES = 100


def _driver_environment() -> dict[str, str]:
    # Patchright starts its driver with a copy of the whole service environment (API_KEYS, PROXY,
    # REDIS_URL...). The driver runs beside every browser a client drives: it gets only what it needs.
    # (`_transport.get_driver_env` is the one place the driver's environment is made; checked by
    # tests/integration/test_isolation.py against the installed Patchright.)
    env = _patchright_driver_env()
    return browser_environment() | {name: value for name, value in env.items() if name.startswith("PW_")}


_patchright_driver_env = _transport.get_driver_env
_transport.get_driver_env = _driver_environment


class DriverLostDuringLaunch(RuntimeError):
    """The driver died while it was launching a browser."""


@dataclass(eq=False)
class _Driver:
    """One driver process and the contexts launched through it that are not released yet."""

    playwright: Any
    carried: dict[Any, Callable[[], None]] = field(default_factory=dict)  # context -> on_lost
    launches: int = 0  # browsers this driver was asked to launch
    launching: int = 0  # launches in flight: not carried yet, but the driver is in use
    retired: bool = False  # takes no new launch; stops once it carries nothing

    @property
    def idle(self) -> bool:
        return not self.carried and not self.launching

    @property
    def lost(self) -> asyncio.Future[Any]:
        # Patchright's pipe transport completes this future when the driver's stdout ends without a
        # stop having been asked for, i.e. the process died. It is the only sign there is: a dead
        # driver sends no "close" event for the contexts it carried. (Private API, checked by
        # tests/integration/test_shared_driver.py against the installed Patchright.)
        return self.playwright._impl_obj._connection._transport.on_error_future

    @property
    def alive(self) -> bool:
        return not self.lost.done()

    @property
    def pid(self) -> int:
        return self.playwright._impl_obj._connection._transport._proc.pid


class SharedDriver:
    """Starts the driver lazily, replaces it after a crash, and stops it in `aclose()`.

    Sessions only ever close their own context (`release`). A crash of the driver ends exactly the
    sessions it carried, each told through the `on_lost` callback it launched with; the next launch
    starts a new driver. After `aclose()` the owner is done with the driver: one still started later
    (a late launch) lives only as long as the contexts it carries.
    """

    def __init__(self, recycle_after: int = RECYCLE_AFTER_LAUNCHES) -> None:
        self.recycle_after = recycle_after
        self._driver: _Driver | None = None
        self._owners: dict[Any, _Driver] = {}  # context -> the driver that launched it
        self._lock = asyncio.Lock()
        self._closed = False
        self._stopping: set[asyncio.Task[None]] = set()

    async def launch_persistent_context(self, options: dict[str, Any], on_lost: Callable[[], None]) -> Any:
        """`chromium.launch_persistent_context(**options)` on the shared driver."""
        driver = await self._running()
        try:
            context = await driver.playwright.chromium.launch_persistent_context(**options)
            if not driver.alive:
                # The launch returned, but nobody is left to drive the browser; the caller's close() kills it.
                raise DriverLostDuringLaunch("the Patchright driver died while launching the browser")
            driver.carried[context] = on_lost
            self._owners[context] = driver
        finally:
            driver.launching -= 1
            if driver.idle and (driver.retired or not driver.alive):
                self._stop_later(driver)
        return context

    @property
    def drivers_running(self) -> int:
        """Drivers not stopped yet: the current one and retired ones still carrying sessions."""
        return len({self._driver, *self._owners.values()} - {None})

    async def release(self, context: Any) -> None:
        """Close one context (its browser); the driver keeps running for everybody else."""
        driver = self._owners.pop(context, None)
        if driver is not None:
            driver.carried.pop(context, None)
        try:
            await context.close()
        finally:
            # A dead driver is let go once its last context is released, not before: stopping a
            # connection fails the calls still waiting on it, which a close in progress would
            # leave as an unretrieved error.
            if driver is not None and driver.idle and (not driver.alive or self._closed or driver.retired):
                await self._stop(driver)

    async def aclose(self) -> None:
        """Stop the driver (and so every browser it still carries)."""
        self._closed = True
        for driver in {self._driver, *self._owners.values()} - {None}:
            await self._stop(driver)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    async def _running(self) -> _Driver:
        # Under the lock: sessions starting at once share one new driver instead of racing to start two.
        async with self._lock:
            current = self._driver
            if current is not None and current.alive and current.launches >= self.recycle_after:
                current.retired = True
                self._driver = None
                logger.info("driver.retired", extra={"pid": current.pid, "sessions": len(current.carried)})
                if current.idle:
                    self._stop_later(current)
            if self._driver is None or not self._driver.alive:
                driver = _Driver(await async_playwright().start())
                driver.lost.add_done_callback(lambda _future: self._lost(driver))
                self._driver = driver
                logger.info("driver.started", extra={"pid": driver.pid})
            # Counted under the lock: a driver is never retired and stopped between here and its launch.
            self._driver.launches += 1
            self._driver.launching += 1
            return self._driver

    def _stop_later(self, driver: _Driver) -> None:
        task = asyncio.get_running_loop().create_task(self._stop(driver))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def _lost(self, driver: _Driver) -> None:
        if driver.lost.cancelled() or driver.lost.exception() is None:
            return
        if self._driver is driver:
            self._driver = None
        logger.warning("driver.lost", extra={"sessions": len(driver.carried)})
        for on_lost in list(driver.carried.values()):
            on_lost()
        if driver.idle:
            self._stop_later(driver)

    async def _stop(self, driver: _Driver) -> None:
        if self._driver is driver:
            self._driver = None
        carried, driver.carried = driver.carried, {}
        for context in carried:
            self._owners.pop(context, None)
        alive = driver.alive
        with contextlib.suppress(Exception):
            await asyncio.wait_for(driver.playwright.stop(), STOP_TIMEOUT)
        if alive:
            # Their browsers went down with the driver; their owners have not asked for it.
            for on_lost in carried.values():
                on_lost()
