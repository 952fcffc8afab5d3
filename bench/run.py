"""`make bench`: the SPEC §7 targets measured in one run, printed as a table and kept in bench/results.json.

Everything runs against the bundled stand-in on this machine: a real Chromium, the real app over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from app.services.common.browser import browser_pids_using, chromium_flags, find_browser
from app.services.common.profile_lock import ProfileLock
from app.services.common.user_data import UserDataLayout, clone_master
from tests.fakes.profiles import build_master_profile
from tests.fakes.server import StandinServer
from tests.service_harness import running_service

RESULTS = Path(__file__).with_name("results.json")
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "7"))
ERROR_RUNS = int(os.environ.get("BENCH_ERROR_RUNS", "300"))
CLONE_RUNS = 15


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def descendants(roots: list[int]) -> set[int]:
    """Renderers, GPU and utility processes do not carry --user-data-dir: find them by parentage."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(parent_of(int(entry.name)), []).append(int(entry.name))
    found, frontier = set(roots), list(roots)
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def session_memory_mib(clone: Path) -> dict[str, float]:
    """Browser tree on the clone, plus the driver process that launched it (one per session today)."""
    flagged = browser_pids_using(clone)
    roots = [pid for pid in flagged if parent_of(pid) not in flagged]
    drivers = {parent_of(pid) for pid in roots} - {os.getpid(), 0}
    browser = descendants(roots)
    browser_mib = sum(pss_kib(pid) for pid in browser) / 1024
    driver_mib = sum(pss_kib(pid) for pid in drivers) / 1024
    return {
        "browser_mib": browser_mib,
        "driver_mib": driver_mib,
        "total_mib": browser_mib + driver_mib,
        "processes": len(browser) + len(drivers),
    }


async def memory_of_sessions(service: Any, first_id: str) -> dict[str, float]:
    """One session alone, then what a second one adds to the total (shared pages split by PSS)."""
    one = session_memory_mib(service.clones_dir / first_id)
    response = await service.client.post("/tiktok/session")
    response.raise_for_status()
    second_id = response.json()["session_id"]
    both = session_memory_mib(service.clones_dir / first_id)["total_mib"]
    both += session_memory_mib(service.clones_dir / second_id)["total_mib"]
    await service.client.delete(f"/tiktok/session/{second_id}")
    return {**one, "additional_mib": both - one["total_mib"]}


async def bare_playwright(master: Path, url: str) -> list[float]:
    """The yardstick: plain Playwright launch_persistent_context + goto of the same page."""
    timings = []
    executable = find_browser(None)
    async with async_playwright() as playwright:
        for _ in range(COLD_RUNS):
            profile = Path(tempfile.mkdtemp(prefix="bench-bare-"))
            shutil.copytree(master, profile, dirs_exist_ok=True, ignore=shutil.ignore_patterns("Singleton*"))
            started = time.perf_counter()
            context = await playwright.chromium.launch_persistent_context(
                profile, executable_path=str(executable), headless=True, args=list(chromium_flags())
            )
            page = context.pages[0] if context.pages else await context.new_page()
            await page.goto(url)
            timings.append(time.perf_counter() - started)
            await context.close()
            shutil.rmtree(profile, ignore_errors=True)
    return timings


async def cold_sessions(user_data: Path, url: str) -> tuple[list[float], dict[str, float], list[str]]:
    timings, methods, memory = [], [], {}
    async with running_service(user_data, url) as service:
        for run in range(COLD_RUNS):
            started = time.perf_counter()
            response = await service.client.post("/tiktok/session")
            timings.append(time.perf_counter() - started)
            response.raise_for_status()
            session_id = response.json()["session_id"]
            methods.append(service.service.get(session_id).login.method)
            if run == 0:
                memory = await memory_of_sessions(service, session_id)
            await service.client.delete(f"/tiktok/session/{session_id}")
    return timings, memory, methods


async def logged_out_answers(user_data: Path, url: str) -> list[float]:
    """409 for a master that never logged in: answered from the copy's cookie database."""
    timings = []
    async with running_service(user_data, url) as service:
        for _ in range(COLD_RUNS):
            started = time.perf_counter()
            response = await service.client.post("/tiktok/session")
            timings.append(time.perf_counter() - started)
            assert response.status_code == 409, response.text
    return timings


async def error_latencies(user_data: Path, url: str) -> dict[str, list[float]]:
    cases = {
        "401": ("POST", "/tiktok/session", {"X-API-Key": "wrong"}, b""),
        "400": ("POST", "/tiktok/session", {"Content-Type": "application/json"}, b"{nope"),
        "422": ("POST", "/tiktok/session", {"Content-Type": "application/json"}, b'{"unknown": 1}'),
    }
    latencies: dict[str, list[float]] = {}
    async with running_service(user_data, url) as service:
        for status, (method, path, headers, body) in cases.items():
            samples = []
            for _ in range(ERROR_RUNS):
                started = time.perf_counter()
                response = await service.client.request(method, path, headers=headers, content=body)
                samples.append(time.perf_counter() - started)
                assert response.status_code == int(status), response.text
            latencies[status] = samples
    return latencies


def pad_profile(profile: Path) -> int:
    """Turn a fresh profile into a 'used' one: ~120 MB of caches and ~15 MB of site storage."""
    chunk = os.urandom(1 << 20)
    for folder, count in (("Default/Cache/Cache_Data", 90), ("Default/Code Cache/js", 30)):
        target = profile / folder
        target.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            (target / f"f_{index:04d}").write_bytes(chunk)
    storage = profile / "Default/IndexedDB/http_www.tiktok.com_0.indexeddb.leveldb"
    storage.mkdir(parents=True, exist_ok=True)
    for index in range(15):
        (storage / f"{index:06d}.ldb").write_bytes(chunk)
    return sum(p.stat().st_size for p in profile.rglob("*") if p.is_file())


async def clone_times(master: Path) -> tuple[list[float], int]:
    root = Path(tempfile.mkdtemp(prefix="bench-clone-"))
    shutil.copytree(master, root / "master", ignore=shutil.ignore_patterns("Singleton*"))
    size = pad_profile(root / "master")
    os.sync()  # a profile at rest: the freshly written padding must not be competing writeback
    layout = UserDataLayout(root)
    layout.ensure()
    lock = ProfileLock(layout.lock_file)
    timings = []
    for _ in range(CLONE_RUNS):
        started = time.perf_counter()
        clone = await clone_master(layout, lock, 5, str(uuid.uuid4()))
        timings.append(time.perf_counter() - started)
        await clone.remove()
    shutil.rmtree(root, ignore_errors=True)
    return timings, size


def row(name: str, value: str, target: str, met: bool | None) -> dict[str, Any]:
    return {"metric": name, "value": value, "target": target, "met": met}


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    with StandinServer() as site:
        master = work / "master-src"
        await build_master_profile(master, site.url, "bench")
        bare = await bare_playwright(master, site.url)

        user_data = work / "user_data"
        shutil.copytree(master, user_data / "master")
        cold, memory, methods = await cold_sessions(user_data, site.url)
        errors = await error_latencies(work / "errors", site.url)
        guest = work / "guest"
        await build_master_profile(guest / "master", site.url, None)
        logged_out = await logged_out_answers(guest, site.url)
        clones, clone_size = await clone_times(master)
    shutil.rmtree(work, ignore_errors=True)

    bare_median, cold_median = statistics.median(bare), statistics.median(cold)
    ratio = cold_median / bare_median
    rows = [
        row("bare Playwright launch+goto, median", f"{bare_median * 1000:.0f} ms", "yardstick", None),
        row("cold POST /tiktok/session, median", f"{cold_median * 1000:.0f} ms", "", None),
        row("cold POST / bare, ratio of medians", f"{ratio:.2f}x", "<= 1.25x", ratio <= 1.25),
        row("cold POST p95", f"{percentile(cold, 0.95) * 1000:.0f} ms", "", None),
        row("login method (cold runs)", ",".join(sorted(set(methods))), "", None),
        row(
            "409 for a never-logged-in master, median",
            f"{statistics.median(logged_out) * 1000:.0f} ms",
            "< 2 s",
            statistics.median(logged_out) < 2,
        ),
        row(
            "memory of one session (browser tree + driver PSS)",
            f"{memory['total_mib']:.0f} MiB ({memory['browser_mib']:.0f} + {memory['driver_mib']:.0f})",
            "",
            None,
        ),
        row(
            "memory a second live session adds (PSS)",
            f"{memory['additional_mib']:.0f} MiB",
            "<= 300 MiB",
            memory["additional_mib"] <= 300,
        ),
    ]
    for status, samples in errors.items():
        p99 = percentile(samples, 0.99) * 1000
        rows.append(
            row(f"{status} answer p99 ({len(samples)} requests)", f"{p99:.1f} ms", "<= 20 ms", p99 <= 20)
        )
    clone_median = statistics.median(clones) * 1000
    rows.append(
        row(
            f"clone of a {clone_size / 1e6:.0f} MB used profile, median",
            f"{clone_median:.0f} ms",
            "<= 100 ms",
            clone_median <= 100,
        )
    )
    results = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": {"cold": COLD_RUNS, "errors": ERROR_RUNS, "clone": CLONE_RUNS},
        "rows": rows,
        "raw_seconds": {"bare": bare, "cold": cold, "logged_out": logged_out, "clone": clones},
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    width = max(len(r["metric"]) for r in rows)
    print(f"\n{'metric'.ljust(width)}  {'value':>24}  {'target':>10}  met")
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(f"{r['metric'].ljust(width)}  {r['value']:>24}  {r['target']:>10}  {met}")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
