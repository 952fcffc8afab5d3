"""Runs the real app (uvicorn, real HTTP on a free port) with settings chosen by the test."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.core.config import Settings
from app.main import create_app
from app.services.common.browser import browser_pids_using
from app.services.tiktok.service import TiktokService
from tests.fakes.server import free_port

API_KEY = "test-key-0123456789"


@dataclass
class RunningService:
    client: httpx.AsyncClient
    settings: Settings
    app: Any

    @property
    def service(self) -> TiktokService:
        return self.app.state.tiktok_service

    @property
    def clones_dir(self) -> Path:
        return self.settings.clones_dir

    def clone_dirs(self) -> list[Path]:
        return sorted(p for p in self.clones_dir.iterdir() if p.is_dir()) if self.clones_dir.exists() else []


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
    settings = Settings(_env_file=None, **values)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or serving.done(), timeout=20, what="the service to start")
    if serving.done():
        serving.result()
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": API_KEY}, timeout=60
    )
    try:
        yield RunningService(client=client, settings=settings, app=app)
    finally:
        await client.aclose()
        server.should_exit = True
        await serving


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


def browsers_on(profile_dir: Path) -> list[int]:
    return browser_pids_using(profile_dir)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["message"]
    assert body["error_details"]["code"] == code
    assert response.headers["X-Error-Code"] == code
    assert "Traceback" not in response.text
    return body
