"""`make soak`: hours of create → drive over CDP → delete, watching the service for leaks.

The stand-in site and the real service (in this process, as `make bench` runs it) with a real
Chromium. Once a minute, between two cycles (no session live), it samples this process's resident
memory and open file descriptors; at the end it prints the samples and their slopes per hour. A
service that leaks nothing comes back to the same descriptor count after every session, so a clearly
rising count is a leak: the exit status is then 1 (2 if cycles failed).

    SOAK_MINUTES=30 (default)  SOAK_SAMPLE_SECONDS=60  SOAK_FD_SLOPE_LIMIT=12 (descriptors per hour)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets

from tests.fakes.profiles import build_master_profile
from tests.fakes.server import StandinServer
from tests.service_harness import RunningService, browsers_under, running_service

SOAK_MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", "60"))
# One descriptor every five minutes: far below what one leaked session (pipes, sockets) costs per cycle.
FD_SLOPE_LIMIT = float(os.environ.get("SOAK_FD_SLOPE_LIMIT", "12"))
CDP_TIMEOUT = 30.0  # seconds for one DevTools command
EXPRESSIONS = ("1 + 1", "document.title", "location.href", "navigator.userAgent")


@dataclass
class Sample:
    minute: float
    rss_kib: int
    fds: int
    browsers: int


@dataclass
class Soak:
    started: float = field(default_factory=time.monotonic)
    cycles: int = 0
    failures: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    def sample(self, user_data: Path) -> Sample:
        taken = Sample(
            minute=(time.monotonic() - self.started) / 60,
            rss_kib=rss_kib(),
            fds=len(os.listdir("/proc/self/fd")),
            browsers=len(browsers_under(user_data)),
        )
        self.samples.append(taken)
        return taken


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def slope_per_hour(minutes: list[float], values: list[float]) -> float:
    """Least-squares slope, in units per hour."""
    if len(minutes) < 2:
        return 0.0
    mean_x, mean_y = statistics.fmean(minutes), statistics.fmean(values)
    spread = sum((x - mean_x) ** 2 for x in minutes)
    if spread == 0:
        return 0.0
    per_minute = sum((x - mean_x) * (y - mean_y) for x, y in zip(minutes, values, strict=True)) / spread
    return per_minute * 60


class Cdp:
    """Just enough of a DevTools client: numbered commands, answers matched by id, events skipped."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        command: dict[str, Any] = {"id": next(self.ids), "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        await self.socket.send(json.dumps(command))
        async with asyncio.timeout(CDP_TIMEOUT):
            while True:
                message = json.loads(await self.socket.recv())
                if message.get("id") == command["id"]:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message["result"]


async def drive(cdp_url: str) -> None:
    async with websockets.connect(cdp_url, max_size=None) as socket:
        cdp = Cdp(socket)
        targets = (await cdp.call("Target.getTargets"))["targetInfos"]
        page = next(target for target in targets if target["type"] == "page")
        attached = await cdp.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})
        for expression in EXPRESSIONS:
            result = await cdp.call(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}, attached["sessionId"]
            )
            if "exceptionDetails" in result:
                raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        two = await cdp.call("Runtime.evaluate", {"expression": "1 + 1"}, attached["sessionId"])
        if two["result"].get("value") != 2:
            raise RuntimeError(f"1 + 1 evaluated to {two['result']}")


async def cycle(service: RunningService) -> str | None:
    """create → drive → delete; the reason it failed, or None."""
    created = await service.client.post("/tiktok/session")
    if created.status_code != 200:
        return f"create: {created.status_code} {created.text[:200]}"
    body = created.json()
    try:
        await drive(body["cdp_url"])
    except Exception as error:  # a soak reports every failure and goes on
        return f"cdp: {type(error).__name__}: {error}"
    finally:
        deleted = await service.client.delete(f"/tiktok/session/{body['session_id']}")
    if deleted.status_code != 200:
        return f"delete: {deleted.status_code} {deleted.text[:200]}"
    return None


def report(soak: Soak) -> int:
    samples = soak.samples
    minutes = [s.minute for s in samples]
    rss_slope = slope_per_hour(minutes, [s.rss_kib / 1024 for s in samples])
    fd_slope = slope_per_hour(minutes, [float(s.fds) for s in samples])
    elapsed = (time.monotonic() - soak.started) / 60
    print(f"\nsoak: {soak.cycles} cycles in {elapsed:.1f} min, {len(soak.failures)} failed")
    for failure in soak.failures[:20]:
        print(f"  failed: {failure}")
    print(f"\n{'minute':>7}  {'RSS MiB':>8}  {'fds':>5}  {'browsers':>8}")
    for s in samples:
        print(f"{s.minute:7.1f}  {s.rss_kib / 1024:8.1f}  {s.fds:5d}  {s.browsers:8d}")
    print(f"\nRSS slope: {rss_slope:+.1f} MiB/h   fd slope: {fd_slope:+.1f} fds/h (limit {FD_SLOPE_LIMIT:g})")
    # Clearly positive: above the limit, and the count really ended higher than it started.
    leaking = len(samples) >= 3 and fd_slope > FD_SLOPE_LIMIT and samples[-1].fds > samples[0].fds
    stray = [s for s in samples if s.browsers]
    if stray:
        print(f"browsers still running between cycles at minutes {[round(s.minute, 1) for s in stray]}")
    if leaking:
        print("verdict: file descriptors leak")
        return 1
    if soak.failures or stray:
        print("verdict: cycles failed")
        return 2
    print("verdict: no leak")
    return 0


async def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    user_data = work / "user_data"
    try:
        with StandinServer() as site:
            await build_master_profile(user_data / "master", site.url, "soak")
            async with running_service(user_data, site.url, LOG_LEVEL="WARNING") as service:
                soak = Soak()
                # The first session starts the shared driver: sample from the state after it.
                if (failure := await cycle(service)) is not None:
                    soak.failures.append(failure)
                soak.cycles += 1
                soak.started = time.monotonic()
                soak.sample(user_data)
                deadline = soak.started + SOAK_MINUTES * 60
                next_sample = soak.started + SAMPLE_SECONDS
                while time.monotonic() < deadline:
                    if (failure := await cycle(service)) is not None:
                        soak.failures.append(failure)
                    soak.cycles += 1
                    if time.monotonic() >= next_sample:
                        taken = soak.sample(user_data)
                        rss_mib = taken.rss_kib / 1024
                        print(
                            f"minute {taken.minute:5.1f}: {soak.cycles} cycles, RSS {rss_mib:.1f} MiB,"
                            f" {taken.fds} fds, {len(soak.failures)} failed",
                            flush=True,
                        )
                        next_sample += SAMPLE_SECONDS
                if soak.samples[-1].minute < (time.monotonic() - soak.started) / 60 - 0.5:
                    soak.sample(user_data)
        return report(soak)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
