"""What /proc says about a process: its parent, its children, and whether a pid is still the same process.

Read by the tests, the bench and the soak alike, so that one parse of /proc/<pid>/stat serves them all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    """A process as seen once: the pid and its start time, so a reused pid is never mistaken for it."""

    pid: int
    started: int  # clock ticks after boot, field 22 of /proc/<pid>/stat
    cmdline: str

    def is_running(self) -> bool:
        """Alive and still this process; a zombie (exited, not yet reaped) counts as gone."""
        fields = _stat_fields(self.pid)
        return fields is not None and fields[0] not in "ZX" and int(fields[19]) == self.started


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces): state, ppid, …"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_info(pid: int) -> Process | None:
    fields = _stat_fields(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if fields is None:
        return None
    return Process(pid=pid, started=int(fields[19]), cmdline=cmdline.strip())


def parent_of(pid: int) -> int | None:
    """The parent pid; None once the process is gone."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None else None


def children_of(pid: int) -> list[Process]:
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    children = (process_info(child) for child in pids if parent_of(child) == pid)
    return [child for child in children if child is not None]


def descendants_of(pid: int) -> list[Process]:
    found, frontier = [], [pid]
    while frontier:
        children = children_of(frontier.pop())
        found.extend(children)
        frontier.extend(child.pid for child in children)
    return found


def command_lines() -> Iterator[tuple[int, list[str]]]:
    """(pid, arguments) of every process whose command line can still be read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        yield int(entry.name), arguments
