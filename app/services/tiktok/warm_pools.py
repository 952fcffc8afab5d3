"""One warm pool per account (SPEC §3.7, §12), made and started on the account's first use."""

from __future__ import annotations

import asyncio

from app.services.tiktok.accounts import Account
from app.services.tiktok.login.login_detection import DetectionResult
from app.services.tiktok.opener import SessionOpener
from app.services.tiktok.session import LiveSession
from app.services.tiktok.warm_pool import WarmPool


class WarmPools:
    def __init__(self, size: int, recheck_interval: float, opener: SessionOpener):
        """`size` sessions per account; 0 keeps none (write mode holds no pool)."""
        self._size = size
        self._recheck_interval = recheck_interval
        self._opener = opener
        self._pools: dict[str, WarmPool] = {}
        # Pools fill from the moment the service has started, not while it is still being made.
        self._open = False

    def open(self) -> None:
        self._open = True

    def of(self, account: Account) -> WarmPool | None:
        """The account's pool, made and started now if it has none yet."""
        if not self._size or not self._open:
            return None
        pool = self._pools.get(account.name)
        if pool is None:
            pool = WarmPool(
                size=self._size,
                recheck_interval=self._recheck_interval,
                open_session=lambda: self._opener.open(account),
                reprove=lambda session: self._reprove(account, session),
                current_generation=account.generation,
            )
            self._pools[account.name] = pool
            pool.start()
        return pool

    def get(self, name: str) -> WarmPool | None:
        """The pool of the account `name` if it has one (never makes one)."""
        return self._pools.get(name)

    def names(self) -> list[str]:
        return list(self._pools)

    def ready(self, name: str | None = None) -> int:
        """Sessions ready to hand out: of the account `name`, or of every account."""
        pools = self._pools.values() if name is None else [p for n, p in self._pools.items() if n == name]
        return sum(pool.ready_count for pool in pools)

    async def aclose(self) -> None:
        await asyncio.gather(*(pool.aclose() for pool in self._pools.values()))

    async def _reprove(self, account: Account, session: LiveSession) -> DetectionResult:
        """The pool's re-proof, which also becomes the account's last proof."""
        login = await self._opener.reprove(session)
        account.record(login, await account.generation())
        return login
