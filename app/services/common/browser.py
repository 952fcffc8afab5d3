"""Which Chromium to run and with which flags. No Playwright here: plain facts about the binary."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import SecretStr

from app.core.errors import BrowserLaunchFailed

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
    # Also listen for DevTools on a free port of 127.0.0.1 (beside Playwright's pipe), so the
    # session can later be handed to a remote client. Off unless asked for.
    devtools_port: bool = False

    def launch_flags(self) -> tuple[str, ...]:
        if not self.devtools_port:
            return self.flags
        return self.flags + ("--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0")


def chromium_flags() -> tuple[str, ...]:
    # Chromium's sandbox cannot start as root; as any other user it stays on.
    return REQUIRED_FLAGS + (("--no-sandbox",) if os.geteuid() == 0 else ())


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
