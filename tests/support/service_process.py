"""Run the service as `python -m app` in a real subprocess, so a test can kill or signal it for real.

The environment is the test's alone: every variable the service reads is removed and then set from
the test's arguments, and the working directory is a scratch folder, so no developer's `.env` is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import free_port
from tests.support.harness import API_KEY, SERVICE_VARIABLES
from tests.support.processes import Process, children_of, descendants_of

START_DEADLINE = 60.0  # python start, imports, lifespan (orphan sweep) on a loaded 2-core machine
STOP_DEADLINE = 30.0


@dataclass
class ServiceProcess:
    process: asyncio.subprocess.Process
    base_url: str
    log_path: Path
    client: httpx.AsyncClient
    # Every process seen below the service: what the teardown kills if the service left it behind.
    seen: set[Process] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    def descendants(self) -> list[Process]:
        found = descendants_of(self.pid)
        self.seen.update(found)
        return found

    def drivers(self) -> list[Process]:
        """The service's Patchright drivers: its children running `… cli.js run-driver`."""
        drivers = [child for child in children_of(self.pid) if "run-driver" in child.cmdline.split()]
        self.seen.update(drivers)
        return drivers

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_exit(self, timeout: float) -> int:
        """The exit status (negative: killed by that signal); AssertionError past the deadline."""
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"service pid {self.pid} still running {timeout:g} s later") from None

    async def kill_leftovers(self) -> list[Process]:
        """SIGKILL the service and whatever it left running; returns what was still running."""
        leftovers = [p for p in self.seen | set(descendants_of(self.pid)) if p.is_running()]
        if not self.exited:
            self.process.kill()
            await self.process.wait()
        for leftover in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover.pid, signal.SIGKILL)
        return leftovers


def service_environment(
    user_data_dir: Path, site_url: str, port: int, settings: dict[str, str]
) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name.upper() not in SERVICE_VARIABLES}
    env.update(
        USER_DATA_DIR=str(user_data_dir),
        TIKTOK_URL=site_url,
        API_KEYS=API_KEY,
        HOST="127.0.0.1",
        PORT=str(port),
        LOG_LEVEL="INFO",
        # The log file is read after a SIGKILL: nothing may be left in a buffer.
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


@asynccontextmanager
async def service_process(
    workdir: Path,
    user_data_dir: Path,
    site_url: str,
    command_prefix: Sequence[str] = (),
    **settings: str,
) -> AsyncIterator[ServiceProcess]:
    """`python -m app` in `workdir` (its cwd and log), up once /health answers; stopped and reaped after.

    `command_prefix`: a command that execs the rest (so the pid stays the service's), such as `setpriv …`.
    `settings`: environment variables on top of the ones every test sets.
    """
    port = free_port()
    log_path = workdir / f"service-{port}.log"
    # A file, not a pipe: nobody drains a pipe while the test runs, and it must survive a SIGKILL.
    log_fd = await asyncio.to_thread(_open_log, log_path)
    try:
        process = await asyncio.create_subprocess_exec(
            *command_prefix,
            sys.executable,
            "-m",
            "app",
            cwd=workdir,
            env=service_environment(user_data_dir, site_url, port, settings),
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
        )
    finally:
        os.close(log_fd)
    base_url = f"http://127.0.0.1:{port}"
    client = httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": API_KEY}, timeout=90)
    running = ServiceProcess(process=process, base_url=base_url, log_path=log_path, client=client)
    try:
        await _wait_healthy(running)
        yield running
    finally:
        await client.aclose()
        if not running.exited:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(AssertionError):
                await running.wait_exit(STOP_DEADLINE)
        await running.kill_leftovers()


def _open_log(log_path: Path) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)


async def _wait_healthy(running: ServiceProcess) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if running.exited:
            code = running.process.returncode
            raise AssertionError(f"the service exited with {code} at start:\n{running.log_text()[-4000:]}")
        with contextlib.suppress(httpx.TransportError):
            if (await running.client.get("/health", timeout=2)).status_code == 200:
                return
        await asyncio.sleep(0.05)  # poll interval, as in `wait_until`
    raise AssertionError(
        f"the service was not healthy after {START_DEADLINE:g} s:\n{running.log_text()[-4000:]}"
    )
