"""Runs the real app (uvicorn, real HTTP on a free port) with settings chosen by the test."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from app.api.state import app_state
from app.core.config import DetectionSettings, Settings
from app.main import create_app
from app.server import Server, uvicorn_options
from app.services.common.user_data import UserDataLayout
from app.services.tiktok.service import TiktokService
from tests.support.processes import command_lines

API_KEY = "test-key-0123456789"

# Every variable the service reads: a test decides them all, the developer's shell none of them.
SERVICE_VARIABLES = frozenset(
    {name.upper() for name in Settings.model_fields}
    | {f"TIKTOK_{name}" for name in DetectionSettings.model_fields}
)


@contextmanager
def clean_environment() -> Iterator[None]:
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.upper() in SERVICE_VARIABLES}
    try:
        yield
    finally:
        os.environ.update(saved)


def settings_for_test(**values: Any) -> Settings:
    with clean_environment():
        return Settings(_env_file=None, detection=DetectionSettings(_env_file=None), **values)


@dataclass
class RunningService:
    client: httpx.AsyncClient
    settings: Settings
    app: Any
    base_url: str

    @property
    def service(self) -> TiktokService:
        return app_state(self.app).tiktok_service

    @property
    def layout(self) -> UserDataLayout:
        return UserDataLayout(self.settings.USER_DATA_DIR)

    @property
    def clones_dir(self) -> Path:
        return self.layout.clones

    def clone_dirs(self) -> list[Path]:
        return sorted(p for p in self.clones_dir.iterdir() if p.is_dir()) if self.clones_dir.exists() else []


def bound_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port, handed to uvicorn: no check-then-bind race."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by accepted connections: without it a reply written in two sends waits ~40 ms for a
    # delayed ACK (Nagle), and every request through the harness would measure that.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def running_service(
    user_data_dir: Path, site_url: str, **overrides: Any
) -> AsyncIterator[RunningService]:
    values: dict[str, Any] = {
        "USER_DATA_DIR": user_data_dir,
        "TIKTOK_URL": site_url,
        "API_KEYS": [API_KEY],
        "LOGIN_DETECTION_TIMEOUT": 8,
        "SESSION_START_TIMEOUT": 30,
    }
    values.update(overrides)
    settings = settings_for_test(**values)
    async with serving(create_app(settings), settings, bound_socket()) as running:
        yield running


@asynccontextmanager
async def serving(
    app: FastAPI, settings: Settings, sock: socket.socket, asgi: ASGIApp | None = None
) -> AsyncIterator[RunningService]:
    """`app` served by uvicorn (as `python -m app` serves it) on `sock`, in this process, until the
    block ends; `asgi`, when given, is what uvicorn serves instead (the app wrapped by the test)."""
    server = Server(uvicorn.Config(asgi or app, lifespan="on", **uvicorn_options()))
    served = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: server.started or served.done(), timeout=20, what="the service to start")
    if served.done():
        served.result()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": API_KEY}, timeout=60)
    try:
        yield RunningService(client=client, settings=settings, app=app, base_url=base_url)
    finally:
        await client.aclose()
        server.should_exit = True
        await served
        sock.close()


async def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll a condition with a deadline: waiting for something to happen, never sleeping to let it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def tree_digest(root: Path) -> dict[str, str]:
    """Path → sha256 of every file under root (symlinks by target), to prove a tree was not written."""
    digest = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if path.is_symlink():
            digest[relative] = "link:" + str(path.readlink())
        elif path.is_file():
            digest[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def browsers_under(root: Path) -> list[int]:
    """Processes whose `--user-data-dir` is `root` or any folder below it (master, clones, anything)."""
    root = root.resolve()
    pids = []
    for pid, arguments in command_lines():
        for argument in arguments:
            if argument.startswith("--user-data-dir="):
                profile = Path(argument.removeprefix("--user-data-dir="))
                if profile == root or profile.is_relative_to(root):
                    pids.append(pid)
                break
    return pids


def main_browser_pids(root: Path) -> list[int]:
    """Chromium's browser processes under `root`: not their helpers (`--type=…`), not the sandbox's
    bubblewrap, whose command line names the profile too."""
    found = []
    for pid in browsers_under(root):
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name in ("chromium", "chrome") and not any(a.startswith(b"--type=") for a in arguments):
            found.append(pid)
    return found


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["message"]
    assert body["error_details"]["code"] == code
    assert response.headers["X-Error-Code"] == code
    assert "Traceback" not in response.text
    return body
