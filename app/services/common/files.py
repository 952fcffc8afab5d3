"""Small private files written in one step: readers see the old content or the new, never a part."""

from __future__ import annotations

import contextlib
import os
import tempfile
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
