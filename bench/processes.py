"""What /proc says about the service's browsers: the shared driver, its process tree, their PSS."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import patchright

from tests.support.processes import parent_of

# Patchright's Node driver: `…/patchright/driver/node …/patchright/driver/package/cli.js run-driver`.
# The bench's own yardstick runs plain Playwright, whose driver says `run-driver` too but lives elsewhere.
PATCHRIGHT_DRIVER = str(Path(patchright.__file__).parent / "driver")


def memory_kib(pid: int) -> tuple[int, int]:
    """(PSS, USS) in KiB. PSS splits each shared page among the processes mapping it, other
    engineers' Chromiums on this machine included; USS (private pages only) does not depend on them."""
    fields: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("Pss", "Private_Clean", "Private_Dirty"):
                fields[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return 0, 0
    return fields.get("Pss", 0), fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def smaps(pid: int) -> dict[str, int] | None:
    """RSS, PSS, anonymous and private (USS) memory in KiB, from one read of smaps_rollup; None when
    the process is gone by now (listed, then exited before the read: a zombie's rollup reads empty)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    fields: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        value = rest.split()
        if value and value[0].isdigit():
            fields[name] = int(value[0])
    if "Rss" not in fields or "Pss" not in fields:
        return None
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "anon": fields.get("Anonymous", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0),
    }


def arguments(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def descendants(roots: list[int]) -> set[int]:
    """Renderers, zygotes and utility processes do not carry --user-data-dir: find them by parentage."""
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


def is_patchright_driver(args: list[str]) -> bool:
    return "run-driver" in args and args[0].startswith(PATCHRIGHT_DRIVER)


def patchright_drivers(root: int | None = None) -> list[int]:
    """Every Patchright driver below `root` (default: this process): the current one and any retired
    one that still carries sessions (the service recycles its driver after so many launches)."""
    return sorted(
        pid
        for pid in descendants([os.getpid() if root is None else root])
        if is_patchright_driver(arguments(pid))
    )


def shared_driver() -> int:
    """The service's one Patchright driver: a child of this process (the service runs in it)."""
    drivers = patchright_drivers()
    if len(drivers) != 1:
        raise RuntimeError(f"expected one Patchright driver under the bench, found {drivers}")
    return drivers[0]


def kind_of(pid: int) -> str:
    """driver, browser, or Chromium's --type of a helper (renderer, zygote, gpu-process, utility, …)."""
    args = arguments(pid)
    if "run-driver" in args:
        return "driver"
    # Chromium's helpers rewrite their title: the whole command line is one space-separated string.
    found = re.search(r"--type=(\S+)", " ".join(args))
    if found:
        return found.group(1)
    return "browser" if args and "chromium" in args[0] else (Path(args[0]).name if args and args[0] else "?")


def tree_memory(driver: int) -> dict[str, object]:
    """PSS and USS of the driver and every process below it (each Chromium and all its helpers)."""
    tree = descendants([driver])
    pss: Counter[str] = Counter()
    uss: Counter[str] = Counter()
    count: Counter[str] = Counter()
    for pid in tree:
        kind = kind_of(pid)
        proportional, private = memory_kib(pid)
        pss[kind] += proportional
        uss[kind] += private
        count[kind] += 1
    return {
        "total_mib": sum(pss.values()) / 1024,
        "uss_mib": sum(uss.values()) / 1024,
        "processes": len(tree),
        "mib_by_kind": {kind: round(kib / 1024, 1) for kind, kib in sorted(pss.items())},
        "uss_mib_by_kind": {kind: round(kib / 1024, 1) for kind, kib in sorted(uss.items())},
        "processes_by_kind": dict(sorted(count.items())),
        "other_chromium_processes": len(chromium_processes() - tree),
    }


def chromium_processes() -> set[int]:
    """Every Chromium process on the machine: they all share the binary's pages, and so its PSS."""
    return {
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and "chromium" in (arguments(int(entry.name)) or [""])[0]
    }


def browser_processes_outside(tree: set[int], profile_root: Path) -> list[int]:
    """Processes on a profile under `profile_root` that parentage did not reach (a re-parented helper)."""
    root = str(profile_root.resolve())
    outside = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in tree:
            continue
        if "--user-data-dir=" + root in " ".join(arguments(int(entry.name))):
            outside.append(int(entry.name))
    return outside
