"""Files written in one step (readers see the old content or the new, never a part), and a session's
downloads and uploads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


def replace_atomically(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` in one step, mode 0600. Blocking (a few small syscalls).

    The bytes go to a new file beside `path` (mkstemp: O_CREAT|O_EXCL, mode 0600, and the same file
    system, where os.replace is atomic), made durable, then put in place. Truncating an existing file
    instead would keep its mode, possibly world-readable, and a reader could see half of it.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as file:
            file.write(text)
            file.flush()
            # Durable before visible: after a power cut the file holds the old or the new content.
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


# A download or upload is named by one plain path component: no directories, nothing hidden, nothing
# Chromium is still writing (`.crdownload`), nothing that could not be a file name on another system.
_MAX_NAME_BYTES = 200
_FORBIDDEN_NAME_CHARACTERS = frozenset('/\\\0:*?"<>|')


def is_plain_name(name: str) -> bool:
    return (
        bool(name)
        and not name.startswith(".")
        and len(name.encode()) <= _MAX_NAME_BYTES
        and not any(character in _FORBIDDEN_NAME_CHARACTERS or ord(character) < 32 for character in name)
    )


@dataclass(frozen=True)
class DownloadInfo:
    name: str
    size: int
    created_at: datetime


def list_downloads(folder: Path) -> list[DownloadInfo]:
    """Finished downloads in `folder`, oldest first. Blocking."""
    found = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name.endswith(".crdownload") or not is_plain_name(entry.name):
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        stat = entry.stat(follow_symlinks=False)
        found.append(DownloadInfo(entry.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
    return sorted(found, key=lambda download: (download.created_at, download.name))


class UploadTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the file is larger than {limit} bytes (MAX_UPLOAD_BYTES)")
        self.limit = limit


async def receive_file(target: Path, chunks: AsyncIterator[bytes], limit: int) -> int:
    """Write the streamed bytes to `target` (replacing it), never more than `limit`; returns the size.

    Written beside the target and renamed at the end: the browser never sees half a file, and a refused
    or broken upload leaves nothing behind. Writes go to a thread, a chunk at a time.
    """
    fd, temporary = tempfile.mkstemp(prefix=".upload-", dir=target.parent)
    size = 0
    try:
        with os.fdopen(fd, "wb") as file:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(limit)
                if chunk:
                    await asyncio.to_thread(file.write, chunk)
        # Readable by the browser's own uid, which is not the service's.
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return size
