"""Run the TikTok stand-in site as a real subprocess, the way the service under test will see it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tests.support import REPO_ROOT, free_port

STANDIN_MODULE = "tests.support.standin.tiktok_site"
STARTUP_DEADLINE = 15.0
STOP_GRACE = 3.0


class StandinServer:
    """Context manager around `python -m tests.support.standin.tiktok_site`.

    A separate process (not an in-process thread) so a test browser sees real network behaviour and
    a "hanging" request in the site cannot block the test's own event loop.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, mode: str = "normal") -> None:
        self.host, self.port, self.mode = host, port or free_port(), mode
        self.url = f"http://{host}:{self.port}/"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._control = httpx.Client(base_url=self.url, timeout=5.0)

    def start(self) -> StandinServer:
        cmd = [sys.executable, "-m", STANDIN_MODULE, "--host", self.host, "--port", str(self.port)]
        # A file, not a pipe: nobody drains a pipe while tests run, and a full pipe would stall the site.
        log_fd, log_name = tempfile.mkstemp(prefix="standin-", suffix=".log")
        self._log_path = Path(log_name)
        try:
            self._proc = subprocess.Popen(
                [*cmd, "--mode", self.mode], cwd=REPO_ROOT, stdout=log_fd, stderr=subprocess.STDOUT
            )
        finally:
            os.close(log_fd)
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if (code := self._proc.poll()) is not None:
                log = self.log_text()
                self.stop()
                raise RuntimeError(f"stand-in site exited with {code}:\n{log}")
            try:
                if self._control.get("__standin/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        log = self.log_text()
        self.stop()
        raise RuntimeError(f"stand-in site not healthy after {STARTUP_DEADLINE}s:\n{log}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        self._control.close()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def url_for(self, path: str) -> str:
        return self.url + path.lstrip("/")

    def set_mode(self, mode: str, delay: float | None = None) -> None:
        response = self._control.post("__standin/mode", json={"mode": mode, "delay": delay})
        response.raise_for_status()

    def get_mode(self) -> dict[str, object]:
        return self._control.get("__standin/mode").raise_for_status().json()

    def revoke(self, user: str) -> int:
        """End all of `user`'s sessions server-side; returns how many were revoked."""
        response = self._control.post("__standin/revoke", params={"user": user})
        return response.raise_for_status().json()["revoked"]

    def request_counts(self) -> dict[str, int]:
        return self._control.get("__standin/requests").raise_for_status().json()

    def reset_request_counts(self) -> None:
        self._control.delete("__standin/requests").raise_for_status()

    def log_text(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return self._log_path.read_text(errors="replace")[-4000:]
