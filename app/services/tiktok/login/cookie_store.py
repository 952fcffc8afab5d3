"""A look at the profile's cookie database before any browser starts.

A profile with no TikTok session cookie at all can be answered "logged out" in milliseconds, without
launching Chromium. Cookie names, hosts and expiry dates are stored in plain columns; the values are
encrypted, so this look can only ever say "no session cookie". Anything it cannot read (no
database, a schema change) is no answer, and the in-browser check decides as usual.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from app.services.tiktok.login.cookie_rules import domain_matches
from app.services.tiktok.login.login_signals import Signal, Source, Verdict

# Chromium stores times as microseconds since 1601-01-01.
_WINDOWS_EPOCH_OFFSET_S = 11_644_473_600

_QUERY = "SELECT host_key, name, has_expires, expires_utc FROM cookies"


def read_cookie_rows(profile_dir: Path) -> list[tuple[str, str, int, int]] | None:
    """Rows of `Default/Cookies`, or None when there is nothing readable. Blocking: run in a thread."""
    database = profile_dir / "Default" / "Cookies"
    if not database.is_file():
        return []
    # immutable=1: read the copy as a plain file, take no locks, write no journal.
    uri = f"file:{database}?mode=ro&immutable=1"
    with contextlib.suppress(sqlite3.Error):
        connection = sqlite3.connect(uri, uri=True)
        try:
            return [tuple(row) for row in connection.execute(_QUERY)]
        finally:
            connection.close()
    return None


def stored_cookie_signal(
    rows: Iterable[tuple[str, str, int, int]] | None, host: str, session_names: Iterable[str], now: float
) -> Signal:
    """LOGGED_OUT when no unexpired session cookie for `host` is stored; otherwise no answer."""
    if rows is None:
        return Signal(Source.COOKIES, Verdict.NONE, "cookie store unreadable")
    wanted = set(session_names)
    for host_key, name, has_expires, expires_utc in rows:
        # Chromium marks a domain cookie by the leading dot of its host_key; without one it is host-only.
        if name not in wanted or not domain_matches(host_key, host, host_only=not host_key.startswith(".")):
            continue
        if has_expires and expires_utc / 1_000_000 - _WINDOWS_EPOCH_OFFSET_S <= now:
            continue
        return Signal(Source.COOKIES, Verdict.NONE, "session cookie stored")
    return Signal(Source.COOKIES, Verdict.LOGGED_OUT, "no session cookie in the profile's cookie store")
