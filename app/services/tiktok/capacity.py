"""How many sessions may live at once (MAX_SESSIONS, MAX_SESSIONS_PER_ACCOUNT), and the 429 that says so."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import datetime

from app.core.errors import TooManySessions
from app.services.tiktok.accounts import Account


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
            raise TooManySessions.cap_reached(self.max_sessions, "MAX_SESSIONS", expiries)
        if not self._account_has_room(account):
            raise TooManySessions.cap_reached(
                self.per_account,
                "MAX_SESSIONS_PER_ACCOUNT",
                expiries,
                f" for account {account.name}",
                account=account.name,
            )
