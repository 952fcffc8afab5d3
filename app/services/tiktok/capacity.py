"""How many sessions may live at once (MAX_SESSIONS, MAX_SESSIONS_PER_ACCOUNT), and the 429 that says so."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from app.core.errors import TooManySessions
from app.services.tiktok.accounts import Account


def retry_after(expiries: Iterable[datetime]) -> int:
    """Seconds until the first of these sessions ends by itself (5 when none is known)."""
    now = datetime.now(UTC)
    remaining = [(expires_at - now).total_seconds() for expires_at in expiries]
    return max(1, math.ceil(min(remaining))) if remaining else 5


class Capacity:
    def __init__(self, max_sessions: int, per_account: int | None):
        self.max_sessions = max_sessions
        self.per_account = per_account
        self.starting = 0

    def has_room(self, account: Account, live: int) -> bool:
        return live + self.starting < self.max_sessions and self._account_has_room(account)

    def _account_has_room(self, account: Account) -> bool:
        return self.per_account is None or account.live + account.starting < self.per_account

    @contextlib.contextmanager
    def slot(self, account: Account, live: int, expiries: Iterable[datetime]) -> Iterator[None]:
        """A place for one more session of `account` while it starts; TooManySessions when there is none.

        No await between the check and the count: concurrent requests cannot both pass.
        """
        self.check(account, live, expiries)
        self.starting += 1
        account.starting += 1
        try:
            yield
        finally:
            self.starting -= 1
            account.starting -= 1

    def check(self, account: Account, live: int, expiries: Iterable[datetime]) -> None:
        """TooManySessions when one more session of `account` would be over a limit."""
        if live + self.starting >= self.max_sessions:
            raise TooManySessions(
                f"{self.max_sessions} sessions are live or starting (MAX_SESSIONS); "
                "end one with DELETE /tiktok/session/{id} or retry later",
                retry_after=retry_after(expiries),
                limit=self.max_sessions,
            )
        if not self._account_has_room(account):
            raise TooManySessions(
                f"account {account.name} has {self.per_account} sessions live or starting "
                "(MAX_SESSIONS_PER_ACCOUNT); end one or retry later",
                retry_after=retry_after(expiries),
                limit=self.per_account,
                account=account.name,
            )
