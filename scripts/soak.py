"""`make soak`: create → drive over CDP → delete, for SOAK_MINUTES, judging memory and descriptors.

The stand-in site and the real service (in this process, as `make bench` runs it) with real Chromiums,
each in its sandbox. Every SOAK_SAMPLE_SECONDS, between two cycles (no session live), it reads:

- the service (this process) and its Patchright driver(s), every `run-driver` child of the service,
  a retired one not stopped yet included: RSS, PSS and anonymous memory, from /proc/PID/smaps_rollup;
- the whole process tree below the service (drivers, and whatever a session might leave behind:
  browsers, bwrap, socat), the stand-in site excluded; and, during the cycle the sample follows, the
  same tree while that cycle's session is live (its Chromium and helpers, bwrap, socat), for information;
- open descriptors, and browsers still running on the soak's profiles.

Each figure is the median of SOAK_READINGS readings a moment apart (the machine is shared), taken after
a `gc.collect()`. Once warm (the longer of SOAK_WARMUP_MINUTES and a tenth of the run, at most a third
of it) the least-squares slope of the service + drivers' RSS against sessions completed must stay under
SOAK_MEMORY_LIMIT MiB per 1,000 sessions (SPEC §9 "Staying power"). As for descriptors, a failure also
needs the run to end clearly higher: the median of the last quarter of those samples above the first
quarter's by more than the limit allows. A driver's RSS is a sawtooth (a fresh driver every 100 launches
warms up by ~30 MiB in its first sessions), and V8's heap sizing moves it by tens of MiB at a time: over a
short run the slope alone mostly says where those steps fell (its standard error is printed with it).
RSS, not PSS, is judged: PSS splits shared pages (Node's and Python's code) with every other process
mapping them, other engineers' test runs on this machine included, and so moves by tens of MiB when they
start or stop; PSS is printed too. A service that leaks nothing also comes back to the same descriptor
count after every session.

Exit status 1: memory or descriptors grow; 2: cycles failed or processes stayed behind. The figures
(every sample, each driver's first and last reading) go to bench/soak.json.

    SOAK_MINUTES=30  SOAK_SAMPLE_SECONDS=15  SOAK_WARMUP_MINUTES=2  SOAK_READINGS=3
    SOAK_MEMORY_LIMIT=10 (MiB per 1,000 sessions)  SOAK_FD_SLOPE_LIMIT=12 (descriptors per hour)
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import websockets

from bench import processes
from tests.support.harness import RunningService, browsers_under, running_service
from tests.support.profiles import build_master_profile
from tests.support.standin.server import STANDIN_MODULE, StandinServer

SOAK_MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
SAMPLE_SECONDS = float(os.environ.get("SOAK_SAMPLE_SECONDS", "15"))
WARMUP_MINUTES = float(os.environ.get("SOAK_WARMUP_MINUTES", "2"))
READINGS = max(1, int(os.environ.get("SOAK_READINGS", "3")))
READING_GAP = 0.15  # seconds between two readings of one sample
# SPEC §9: the tree grows by less than 10 MiB per 1,000 sessions once warm.
MEMORY_LIMIT = float(os.environ.get("SOAK_MEMORY_LIMIT", "10"))
# One descriptor every five minutes: far below what one leaked session (pipes, sockets) costs per cycle.
FD_SLOPE_LIMIT = float(os.environ.get("SOAK_FD_SLOPE_LIMIT", "12"))
CDP_TIMEOUT = 30.0  # seconds for one DevTools command
SETTLE_SECONDS = 10.0  # at the end, how long what a last session started may take to go away
EXPRESSIONS = ("1 + 1", "document.title", "location.href", "navigator.userAgent")
RESULTS = Path(__file__).resolve().parents[1] / "bench" / "soak.json"
MIB = 1024.0


def warmup_minutes(run_minutes: float) -> float:
    return min(max(WARMUP_MINUTES, run_minutes / 10), run_minutes / 3)


@dataclass
class TreeReading:
    """Memory of this process's tree (the stand-in site left out), in KiB, by kind of process."""

    service: dict[str, int]
    drivers: dict[int, dict[str, int]]  # pid -> rss/pss/anon/uss
    rss: int
    pss: int
    processes: int
    by_kind: dict[str, dict[str, int]]  # kind -> count, rss, pss

    def service_drivers(self, key: str) -> int:
        return self.service[key] + sum(memory[key] for memory in self.drivers.values())

    @property
    def others(self) -> dict[str, int]:
        """Processes in the tree that are neither the service nor a driver: kind -> count."""
        return {kind: v["count"] for kind, v in self.by_kind.items() if kind not in ("service", "driver")}


def standin_pids() -> list[int]:
    """The stand-in site's processes: children of this process, not of the service."""
    return [pid for pid in processes.descendants([os.getpid()]) if STANDIN_MODULE in processes.arguments(pid)]


def tree_below(root: int, excluded: set[int]) -> set[int]:
    """`root` and its descendants, not descending into `excluded`: one walk of /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(processes.parent_of(int(entry.name)), []).append(int(entry.name))
    found, frontier = {root}, [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found and child not in excluded:
                found.add(child)
                frontier.append(child)
    return found


def read_tree(excluded: list[int]) -> TreeReading:
    """One reading; a process that exits between the listing and its read is left out (it is gone)."""
    me = os.getpid()
    tree = tree_below(me, set(excluded))
    service: dict[str, int] | None = None
    drivers: dict[int, dict[str, int]] = {}
    by_kind: dict[str, dict[str, int]] = {}
    for pid in sorted(tree):
        memory = processes.smaps(pid)
        if memory is None:
            continue
        if pid == me:
            kind, service = "service", memory
        elif processes.is_patchright_driver(processes.arguments(pid)):
            kind, drivers[pid] = "driver", memory
        else:
            kind = processes.kind_of(pid)
        totals = by_kind.setdefault(kind, {"count": 0, "rss": 0, "pss": 0})
        totals["count"] += 1
        totals["rss"] += memory["rss"]
        totals["pss"] += memory["pss"]
    if service is None:
        raise RuntimeError("cannot read this process's own smaps_rollup")
    return TreeReading(
        service=service,
        drivers=drivers,
        rss=sum(v["rss"] for v in by_kind.values()),
        pss=sum(v["pss"] for v in by_kind.values()),
        processes=sum(v["count"] for v in by_kind.values()),
        by_kind=by_kind,
    )


async def median_reading(excluded: list[int]) -> dict[str, Any]:
    """READINGS readings a moment apart: the service + drivers figures of the reading whose RSS is the
    median (one consistent set of drivers), the tree's figures each the median of its own."""
    readings = []
    for index in range(READINGS):
        if index:
            await asyncio.sleep(READING_GAP)
        readings.append(read_tree(excluded))
    middle = sorted(readings, key=lambda r: r.service_drivers("rss"))[len(readings) // 2]
    fullest = max(readings, key=lambda r: r.processes)
    return {
        "service": middle.service,
        "drivers": {str(pid): memory for pid, memory in middle.drivers.items()},
        "service_drivers": {key: middle.service_drivers(key) for key in ("rss", "pss", "anon", "uss")},
        "tree": {
            "rss": int(statistics.median(r.rss for r in readings)),
            "pss": int(statistics.median(r.pss for r in readings)),
            "processes": int(statistics.median(r.processes for r in readings)),
            "by_kind": fullest.by_kind,
        },
        "others": fullest.others,
    }


@dataclass
class Sample:
    minute: float
    sessions: int  # cycles completed
    fds: int
    browsers: int  # browsers running on the soak's profiles, between two cycles: should be none
    blocks: int  # sys.getallocatedblocks(): Python objects alive in the service
    threads: int  # the service's threads: each new one may bring a malloc arena of its own
    idle: dict[str, Any]  # median_reading() between two cycles
    live: dict[str, Any] | None  # median_reading() with the sampled cycle's session live

    def kib(self, what: str, key: str) -> int:
        return self.idle[what][key]


@dataclass
class Soak:
    user_data: Path
    excluded: list[int]
    started: float = field(default_factory=time.monotonic)
    cycles: int = 0
    failures: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    census: dict[str, Counter[str]] = field(default_factory=dict)

    async def sample(self, live: dict[str, Any] | None) -> Sample:
        gc.collect()
        idle = await median_reading(self.excluded)
        taken = Sample(
            minute=(time.monotonic() - self.started) / 60,
            sessions=self.cycles,
            fds=len(os.listdir("/proc/self/fd")),
            browsers=len(browsers_under(self.user_data)),
            blocks=sys.getallocatedblocks(),
            threads=len(os.listdir("/proc/self/task")),
            idle=idle,
            live=live,
        )
        self.samples.append(taken)
        return taken


def object_census() -> Counter[str]:
    """Objects the garbage collector tracks in this process, by type: what a service-side leak keeps."""
    return Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys against xs."""
    if len(xs) < 2:
        return None
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def standard_error(xs: list[float], ys: list[float], found: float) -> float | None:
    """Standard error of a least-squares slope: how far the noise alone could have put it."""
    if len(xs) < 3:
        return None
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    residuals = sum((y - mean_y - found * (x - mean_x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return (residuals / (len(xs) - 2) / sum((x - mean_x) ** 2 for x in xs)) ** 0.5


def per_thousand(samples: list[Sample], read: Callable[[Sample], float]) -> float | None:
    """Slope of `read` (KiB) against sessions completed, in MiB per 1,000 sessions."""
    found = slope([float(s.sessions) for s in samples], [read(s) for s in samples])
    return None if found is None else found * 1000 / MIB


def error_per_thousand(samples: list[Sample], read: Callable[[Sample], float]) -> float | None:
    xs, ys = [float(s.sessions) for s in samples], [read(s) for s in samples]
    found = slope(xs, ys)
    error = None if found is None else standard_error(xs, ys, found)
    return None if error is None else error * 1000 / MIB


def quarter_levels(samples: list[Sample], read: Callable[[Sample], float]) -> tuple[float, float, int]:
    """Median of `read` over the first and over the last quarter of the samples (KiB), and the sessions
    between the middles of the two quarters."""
    quarter = max(1, len(samples) // 4)
    first, last = samples[:quarter], samples[-quarter:]
    span = statistics.median(s.sessions for s in last) - statistics.median(s.sessions for s in first)
    return statistics.median(map(read, first)), statistics.median(map(read, last)), int(span)


def figure(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


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


async def cycle(
    service: RunningService, while_live: Callable[[], Awaitable[None]] | None = None
) -> str | None:
    """create → drive → (while_live) → delete; the reason it failed, or None."""
    created = await service.client.post("/tiktok/session")
    if created.status_code != 200:
        return f"create: {created.status_code} {created.text[:200]}"
    body = created.json()
    try:
        await drive(body["cdp_url"])
        if while_live is not None:
            await while_live()
    except Exception as error:  # a soak reports every failure and goes on
        return f"cdp: {type(error).__name__}: {error}"
    finally:
        deleted = await service.client.delete(f"/tiktok/session/{body['session_id']}")
    if deleted.status_code != 200:
        return f"delete: {deleted.status_code} {deleted.text[:200]}"
    return None


def driver_generations(samples: list[Sample]) -> list[dict[str, Any]]:
    """Each driver seen, in order: its first and last reading (sessions completed then, RSS, PSS)."""
    seen: dict[str, dict[str, Any]] = {}
    for s in samples:
        for pid, memory in s.idle["drivers"].items():
            reading = {"minute": round(s.minute, 2), "sessions": s.sessions, **memory}
            entry = seen.setdefault(pid, {"pid": int(pid), "first": reading})
            entry["last"] = reading
            entry["peak_rss"] = max(entry.get("peak_rss", 0), memory["rss"])
            entry["samples"] = entry.get("samples", 0) + 1
    generations = list(seen.values())
    for entry in generations:
        sessions = entry["last"]["sessions"] - entry["first"]["sessions"]
        growth = entry["last"]["rss"] - entry["first"]["rss"]
        entry["rss_growth_kib_per_session"] = round(growth / sessions, 1) if sessions else None
    return generations


def report(soak: Soak, elapsed: float, left_behind: dict[str, int]) -> int:
    samples = soak.samples
    warmup = warmup_minutes(elapsed)
    warm = [s for s in samples if s.minute >= warmup]
    live = [s for s in warm if s.live is not None]

    def judged_read(s: Sample) -> float:
        return s.kib("service_drivers", "rss")

    slopes = {
        "service_drivers_rss": per_thousand(warm, judged_read),
        "service_drivers_pss": per_thousand(warm, lambda s: s.kib("service_drivers", "pss")),
        "service_drivers_anon": per_thousand(warm, lambda s: s.kib("service_drivers", "anon")),
        "service_rss": per_thousand(warm, lambda s: s.kib("service", "rss")),
        "drivers_rss": per_thousand(
            warm, lambda s: s.kib("service_drivers", "rss") - s.kib("service", "rss")
        ),
        "tree_idle_rss": per_thousand(warm, lambda s: s.kib("tree", "rss")),
        "tree_idle_pss": per_thousand(warm, lambda s: s.kib("tree", "pss")),
        "tree_live_pss": per_thousand(live, lambda s: s.live["tree"]["pss"] if s.live else 0),
        "tree_live_rss": per_thousand(live, lambda s: s.live["tree"]["rss"] if s.live else 0),
    }
    blocks_slope = slope([float(s.sessions) for s in warm], [float(s.blocks) for s in warm])
    fd_slope_hour = slope([s.minute for s in samples], [float(s.fds) for s in samples])
    fd_slope_hour = None if fd_slope_hour is None else fd_slope_hour * 60
    generations = driver_generations(samples)
    judged_error = error_per_thousand(warm, judged_read)

    sessions = soak.cycles
    print(
        f"\nsoak: {sessions} sessions in {elapsed:.1f} min ({sessions / max(elapsed, 1e-9):.1f}/min), "
        f"{len(soak.failures)} failed; warm-up {warmup:.1f} min, fit over {len(warm)} samples"
        + (f" (sessions {warm[0].sessions}–{warm[-1].sessions})" if warm else "")
    )
    for failure in soak.failures[:20]:
        print(f"  failed: {failure}")
    print(
        f"\n{'minute':>6} {'sessions':>8} {'service':>8} {'drivers':>10} {'svc+drv':>8} {'svc+drv':>8}"
        f" {'tree':>7} {'tree+1':>7} {'fds':>4} {'others':>6}"
    )
    print(
        f"{'':>6} {'':>8} {'RSS MiB':>8} {'RSS MiB':>10} {'RSS MiB':>8} {'PSS MiB':>8}"
        f" {'PSS MiB':>7} {'PSS MiB':>7} {'':>4} {'':>6}"
    )
    for s in samples:
        drivers = s.idle["drivers"]
        drivers_rss = sum(m["rss"] for m in drivers.values()) / MIB
        live_pss = f"{s.live['tree']['pss'] / MIB:7.1f}" if s.live else f"{'':>7}"
        print(
            f"{s.minute:6.1f} {s.sessions:8d} {s.kib('service', 'rss') / MIB:8.1f}"
            f" {f'{len(drivers)}× {drivers_rss:.1f}':>10} {s.kib('service_drivers', 'rss') / MIB:8.1f}"
            f" {s.kib('service_drivers', 'pss') / MIB:8.1f} {s.kib('tree', 'pss') / MIB:7.1f} {live_pss}"
            f" {s.fds:4d} {sum(s.idle['others'].values()) + s.browsers:6d}"
            + ("   (warm-up)" if s.minute < warmup else "")
        )
    print("\ndrivers (first and last reading of each; a retired one's last is just before it stopped):")
    for g in generations:
        first, last = g["first"], g["last"]
        print(
            f"  pid {g['pid']:>7}: sessions {first['sessions']:>5}–{last['sessions']:<5} RSS"
            f" {first['rss'] / MIB:6.1f} → {last['rss'] / MIB:6.1f} MiB  PSS {first['pss'] / MIB:6.1f} →"
            f" {last['pss'] / MIB:6.1f} MiB  peak RSS {g['peak_rss'] / MIB:6.1f} MiB"
            f"  ({figure(g['rss_growth_kib_per_session'])} KiB a session)"
        )
    growth: list[tuple[str, int]] = []
    if "warm" in soak.census and "end" in soak.census:
        growth = (soak.census["end"] - soak.census["warm"]).most_common(8)
        if growth:
            print("\nservice objects that grew once warm: " + ", ".join(f"{n:+d} {t}" for t, n in growth))
    if blocks_slope is not None:
        print(f"service's allocated Python blocks: {blocks_slope * 1000:+.0f} per 1,000 sessions")

    peak = max(samples, key=lambda s: s.kib("service_drivers", "rss"))
    peak_live = max((s.live["tree"]["pss"] for s in samples if s.live), default=0)
    print(
        f"\nmemory slope, MiB per 1,000 sessions once warm (limit {MEMORY_LIMIT:g}: service + drivers RSS):"
        f"\n  service + drivers  RSS {figure(slopes['service_drivers_rss'])}"
        f" (± {figure(judged_error)[1:]} standard error)  PSS {figure(slopes['service_drivers_pss'])}"
        f"  anonymous {figure(slopes['service_drivers_anon'])}"
        f"\n    service RSS {figure(slopes['service_rss'])}, drivers RSS {figure(slopes['drivers_rss'])}"
        f"\n  whole tree, between sessions  RSS {figure(slopes['tree_idle_rss'])}"
        f"  PSS {figure(slopes['tree_idle_pss'])}"
        f"\n  whole tree, one session live  RSS {figure(slopes['tree_live_rss'])}"
        f"  PSS {figure(slopes['tree_live_pss'])}"
    )
    print(
        f"peak: service + drivers RSS {peak.kib('service_drivers', 'rss') / MIB:.1f} MiB (minute"
        f" {peak.minute:.1f}); whole tree with one session live PSS {peak_live / MIB:.1f} MiB"
    )
    print(
        f"descriptors: {samples[0].fds} → {samples[-1].fds}, slope {figure(fd_slope_hour)} per hour"
        f" (limit {FD_SLOPE_LIMIT:g})"
    )
    judged = slopes["service_drivers_rss"]
    # Each driver's RSS is a sawtooth (a fresh one every RECYCLE_AFTER_LAUNCHES, warming up in its first
    # sessions) on which V8's heap sizing moves it by tens of MiB at a time: over a short run the slope is
    # mostly where those steps fell. Growth is therefore "clear" only when, as for descriptors, the end
    # of the run is also higher than its start: the last quarter's median over the first quarter's.
    start, end, span = quarter_levels(warm, judged_read) if warm else (0.0, 0.0, 0)
    grown_mib, allowed_mib = (end - start) / MIB, MEMORY_LIMIT * span / 1000
    print(
        f"service + drivers RSS, median of the first and of the last quarter once warm: {start / MIB:.1f} →"
        f" {end / MIB:.1f} MiB ({grown_mib:+.1f} MiB over {span} sessions, limit {allowed_mib:.1f})"
    )
    print(
        f"summary: sessions {sessions}, {elapsed:.1f} min, memory slope service+drivers"
        f" {figure(judged)} ± {figure(judged_error)[1:]} MiB/1000 sessions"
        f" (RSS; PSS {figure(slopes['service_drivers_pss'])}),"
        f" whole tree {figure(slopes['tree_idle_pss'])} idle / {figure(slopes['tree_live_pss'])} live"
        f" MiB/1000 (PSS), peak {peak.kib('service_drivers', 'rss') / MIB:.1f} MiB service+drivers RSS,"
        f" descriptors {samples[0].fds}→{samples[-1].fds}"
    )

    verdicts: list[tuple[int, str]] = []
    if judged is None or len(warm) < 3:
        print(f"memory: not judged, {len(warm)} samples once warm (at least 3 needed: run longer)")
    elif judged > MEMORY_LIMIT and grown_mib <= allowed_mib:
        print(
            f"memory: slope {judged:+.1f} above the limit, but the run ended no higher than the limit allows"
            " (a driver's warm-up or V8's heap sizing, not clear growth)"
        )
    elif judged > MEMORY_LIMIT:
        verdicts.append(
            (
                1,
                f"FAIL: service + driver memory grows {judged:+.1f} MiB per 1,000 sessions once warm"
                f" (limit {MEMORY_LIMIT:g}, SPEC §9)",
            )
        )
    # Clearly positive: above the limit, and the count really ended higher than it started.
    if (
        len(samples) >= 3
        and fd_slope_hour is not None
        and fd_slope_hour > FD_SLOPE_LIMIT
        and samples[-1].fds > samples[0].fds
    ):
        verdicts.append((1, f"FAIL: file descriptors leak ({fd_slope_hour:+.1f} per hour)"))
    stray = [s for s in samples if s.browsers]
    if stray:
        at = [round(s.minute, 1) for s in stray]
        verdicts.append((2, f"FAIL: browsers still running between cycles at minutes {at}"))
    if left_behind:
        verdicts.append((2, f"FAIL: processes left once every session ended: {left_behind}"))
    if soak.failures:
        verdicts.append((2, f"FAIL: {len(soak.failures)} cycles failed"))
    status = min((code for code, _ in verdicts), default=0)
    for _, message in verdicts:
        print(message)
    if not verdicts:
        print(f"verdict: no leak (memory {figure(judged)} MiB per 1,000 sessions ≤ {MEMORY_LIMIT:g})")

    write_results(
        {
            "sessions": sessions,
            "minutes": round(elapsed, 2),
            "failed": len(soak.failures),
            "failures": soak.failures[:20],
            "warmup_minutes": round(warmup, 2),
            "samples_fitted": len(warm),
            "memory_limit_mib_per_1000": MEMORY_LIMIT,
            "judged": "service_drivers_rss",
            "judged_standard_error": None if judged_error is None else round(judged_error, 2),
            "service_drivers_rss_quarters_mib": [round(start / MIB, 1), round(end / MIB, 1)],
            "quarters_sessions_apart": span,
            "slopes_mib_per_1000_sessions": {
                k: None if v is None else round(v, 2) for k, v in slopes.items()
            },
            "service_blocks_per_1000_sessions": None if blocks_slope is None else round(blocks_slope * 1000),
            "service_objects_grown": dict(growth),
            "peak_service_drivers_rss_mib": round(peak.kib("service_drivers", "rss") / MIB, 1),
            "peak_tree_live_pss_mib": round(peak_live / MIB, 1),
            "descriptors": {
                "first": samples[0].fds,
                "last": samples[-1].fds,
                "slope_per_hour": fd_slope_hour,
            },
            "left_behind": left_behind,
            "status": status,
            "verdicts": [message for _, message in verdicts],
            "drivers": generations,
            "samples": [asdict(s) for s in samples],
        }
    )
    return status


def write_results(results: dict[str, Any]) -> None:
    temporary = RESULTS.with_name(RESULTS.name + ".tmp")
    temporary.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(temporary, RESULTS)
    print(f"figures written to {RESULTS}")


async def leftovers(soak: Soak) -> dict[str, int]:
    """With every session ended: anything below the service other than its driver(s), after a while."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        others = read_tree(soak.excluded).others
        browsers = len(browsers_under(soak.user_data))
        if browsers:
            others["browser on a soak profile"] = browsers
        if not others or time.monotonic() > deadline:
            return others
        await asyncio.sleep(0.5)


async def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    user_data = work / "user_data"
    try:
        with StandinServer() as site:
            await build_master_profile(user_data / "master", site.url, "soak")
            async with running_service(user_data, site.url, LOG_LEVEL="WARNING") as service:
                soak = Soak(user_data=user_data, excluded=standin_pids())
                # The first session starts the shared driver: sample from the state after it.
                if (failure := await cycle(service)) is not None:
                    soak.failures.append(failure)
                soak.cycles += 1
                soak.started = time.monotonic()
                await soak.sample(None)
                deadline = soak.started + SOAK_MINUTES * 60
                warm_at = soak.started + warmup_minutes(SOAK_MINUTES) * 60
                next_sample = soak.started + SAMPLE_SECONDS
                while time.monotonic() < deadline:
                    live: dict[str, Any] = {}

                    async def read_live(into: dict[str, Any] = live) -> None:
                        into.update(await median_reading(soak.excluded))

                    due = time.monotonic() >= next_sample
                    if (failure := await cycle(service, read_live if due else None)) is not None:
                        soak.failures.append(failure)
                    soak.cycles += 1
                    if due:
                        taken = await soak.sample(live or None)
                        if "warm" not in soak.census and time.monotonic() >= warm_at:
                            soak.census["warm"] = object_census()
                        drivers = taken.idle["drivers"]
                        live_pss = f"{taken.live['tree']['pss'] / MIB:.0f}" if taken.live else "?"
                        print(
                            f"minute {taken.minute:5.1f}: {soak.cycles} sessions, service + {len(drivers)}"
                            f" driver(s) RSS {taken.kib('service_drivers', 'rss') / MIB:.1f} MiB"
                            f" (service {taken.kib('service', 'rss') / MIB:.1f}), tree PSS"
                            f" {taken.kib('tree', 'pss') / MIB:.0f} MiB idle / {live_pss} live,"
                            f" {taken.fds} fds, {taken.threads} threads, {len(soak.failures)} failed",
                            flush=True,
                        )
                        next_sample += SAMPLE_SECONDS * max(
                            1, int((time.monotonic() - next_sample) // SAMPLE_SECONDS) + 1
                        )
                if soak.samples[-1].sessions < soak.cycles:
                    await soak.sample(None)
                soak.census["end"] = object_census()
                elapsed = (time.monotonic() - soak.started) / 60
                left_behind = await leftovers(soak)
        return report(soak, elapsed, left_behind)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
