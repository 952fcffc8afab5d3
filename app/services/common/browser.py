"""Which Chromium to run and with which flags. No Playwright here: plain facts about the binary."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import SecretStr

from app.core.errors import BrowserLaunchFailed

SANDBOX_DEVTOOLS_PORT = 9222  # inside a sandbox's own network namespace

# Without these Chromium keeps calling Google services; on a closed network that is a flood of
# refused connections at every start. Scrapling strips a plain `--disable-component-update`
# through its ignore_default_args, so the `=1` form is the one that survives.
REQUIRED_FLAGS = (
    "--disable-background-networking",
    "--disable-component-update=1",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-dev-shm-usage",
)

_CANDIDATES = (
    "/usr/lib/chromium/chromium",  # Debian's real ELF: skips the wrapper script's shell start-up
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
    "/opt/google/chrome/chrome",
)


@dataclass(frozen=True)
class BrowserOptions:
    executable: Path
    headless: bool
    proxy: SecretStr | None
    flags: tuple[str, ...]
    # Also listen for DevTools on 127.0.0.1 (beside Playwright's pipe), so the session can later be
    # handed to a remote client. Off unless asked for. A sandboxed browser has a loopback of its own,
    # where a fixed port cannot collide; otherwise Chromium picks a free one.
    devtools_port: bool = False
    sandboxed: bool = False

    def launch_flags(self) -> tuple[str, ...]:
        if not self.devtools_port:
            return self.flags
        port = SANDBOX_DEVTOOLS_PORT if self.sandboxed else 0
        return self.flags + ("--remote-debugging-address=127.0.0.1", f"--remote-debugging-port={port}")


def chromium_flags(sandboxed: bool = False) -> tuple[str, ...]:
    # Chromium's own sandbox cannot start as root. In our sandbox it runs as an unprivileged uid and
    # stays on; unsandboxed (SESSION_ISOLATION=none) as root it has to be switched off.
    return REQUIRED_FLAGS + (("--no-sandbox",) if os.geteuid() == 0 and not sandboxed else ())


# Variables the driver and the browsers may see: nothing of the service's configuration (API keys, proxy
# credentials, Redis URL) reaches a process a session's client drives.
_BROWSER_ENV_KEPT = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "DISPLAY", "XAUTHORITY", "TMPDIR")


def browser_environment() -> dict[str, str]:
    """The environment the Patchright driver and unsandboxed browsers start with."""
    kept = {name: os.environ[name] for name in _BROWSER_ENV_KEPT if name in os.environ}
    kept.update({name: value for name, value in os.environ.items() if name.startswith("LC_")})
    return kept


def find_browser(configured: Path | None) -> Path:
    if configured is not None:
        if configured.is_file() and os.access(configured, os.X_OK):
            return configured
        raise BrowserLaunchFailed(f"BROWSER_EXECUTABLE {configured} is not an executable file")
    for candidate in _CANDIDATES:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return Path(found)
    bundled = sorted(Path.home().glob(".cache/ms-playwright/chromium-*/chrome-linux*/chrome"))
    if bundled:
        return bundled[-1]
    raise BrowserLaunchFailed(
        "no Chromium found: install Debian's chromium (apt-get install chromium) or set BROWSER_EXECUTABLE"
    )


@cache
def _version_cache() -> dict[Path, str]:
    return {}


async def browser_version(executable: Path) -> str:
    """`156.0.8078.114`: the real version, so the fingerprint never claims another browser."""
    cache = _version_cache()
    if executable not in cache:
        process = await asyncio.create_subprocess_exec(
            str(executable),
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        output, _ = await process.communicate()
        words = output.decode(errors="replace").split()
        version = next((w for w in words if w[:1].isdigit() and w.count(".") == 3), "")
        if not version:
            raise BrowserLaunchFailed(f"could not read the version of {executable}")
        cache[executable] = version
    return cache[executable]


def browser_pids_using(profile_dir: Path) -> list[int]:
    """Processes started with `--user-data-dir=<profile_dir>`: the browser and its helpers."""
    needle = f"--user-data-dir={profile_dir.resolve()}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def devtools_endpoint(profile_dir: Path) -> str | None:
    """`ws://127.0.0.1:<port>/devtools/browser/<id>` from the file Chromium writes once it listens."""
    try:
        port, path = (profile_dir / "DevToolsActivePort").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return f"ws://127.0.0.1:{port}{path}"


async def devtools_endpoint_via(socket_path: Path, timeout: float = 2.0) -> str | None:
    """`ws://127.0.0.1/devtools/browser/<id>` of a sandboxed browser, asked through its DevTools socket.

    The bridge inside the sandbox starts beside Chromium, so the first attempts may find nobody yet.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            reader, writer = await asyncio.open_unix_connection(str(socket_path))
            try:
                writer.write(b"GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                # Chromium keeps the connection open: read the head, then exactly the body it announces.
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await asyncio.wait_for(reader.readexactly(length), timeout)
            finally:
                writer.close()
            url = json.loads(body).get("webSocketDebuggerUrl")
            if isinstance(url, str) and url:
                return url
        except (OSError, ValueError, TimeoutError, StopIteration, asyncio.IncompleteReadError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            return None
        await asyncio.sleep(0.02)


def kill_browsers_using(profile_dir: Path) -> int:
    """Safety net after close: SIGKILL any Chromium process still running on this profile directory."""
    killed = 0
    for pid in browser_pids_using(profile_dir):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed
