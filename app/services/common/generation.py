"""The master's generation: a marker beside `master/` that changes whenever the master changes.

Login, cookie import, reset and the end of a write-mode session bump it; `profile status --json` and
`GET /ready` show it, and the warm pool compares it to tell a session cloned from an older master.

The content is `<counter>-<random>`, e.g. `7-3f9c2a1b5e8d4c06`. The counter makes the history readable
for a person; the random part is what guarantees a change: two writers that bump at the same moment
(a race the exclusive lock normally rules out) can reach the same counter, never the same token.

Readers take no lock: the file is only ever replaced whole (`os.replace` of a finished temporary file
in the same directory), so a reader sees the old marker or the new one, never a partial write.
"""

from __future__ import annotations

import secrets

from app.services.common.files import replace_atomically
from app.services.common.user_data import UserDataLayout


def read_generation(layout: UserDataLayout) -> str | None:
    """The current marker, or None when the master has never had one. Blocking (one small read)."""
    try:
        marker = layout.generation_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return marker or None


def bump_generation(layout: UserDataLayout) -> str:
    """Write a new marker atomically and return it. Blocking, a few small syscalls."""
    marker = f"{_counter(read_generation(layout)) + 1}-{secrets.token_hex(8)}"
    target = layout.generation_file
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    replace_atomically(target, marker + "\n", encoding="ascii")
    return marker


def _counter(marker: str | None) -> int:
    head = (marker or "").partition("-")[0]
    return int(head) if head.isdigit() else 0
