"""The accounts one service serves (SPEC §12): each a master profile, a lock, a generation, a device.

`AccountBook` finds the accounts on disk (`accounts/<name>/master/`), keeps one `Account` object per
name for the service's life (its lock, its last login proof, when it was last handed out, its live
sessions and warm pool), and makes each account's identity once, on first use.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from browserforge.fingerprints import Fingerprint
from pydantic import SecretStr

from app.core.errors import AccountNotFound
from app.services.common.generation import read_generation
from app.services.common.identity import AccountIdentity, host_timezone, read_identity, write_identity
from app.services.common.profile_lock import ProfileLock
from app.services.common.user_data import DEFAULT_ACCOUNT, UserDataLayout, is_account_name
from app.services.tiktok.login.login_detection import DetectionResult
from app.services.tiktok.login.login_signals import LoginState

FingerprintSampler = Callable[[], Awaitable[Fingerprint]]


@dataclass(frozen=True)
class LoginProof:
    """An account's last login answer, and the master generation it was about."""

    state: LoginState
    method: str
    verified_at: datetime
    generation: str | None
    username: str | None = None
    details: str = ""


class Account:
    def __init__(self, layout: UserDataLayout):
        self.name = layout.account
        self.layout = layout
        self.lock = ProfileLock(layout.lock_file)
        self.proof: LoginProof | None = None
        self.last_handed_out = 0.0  # monotonic; 0: never
        self.live = 0
        self.starting = 0

    async def generation(self) -> str | None:
        return await asyncio.to_thread(read_generation, self.layout)

    def record(self, login: DetectionResult, generation: str | None) -> None:
        self.proof = LoginProof(
            state=login.state,
            method=login.method,
            verified_at=login.verified_at,
            generation=generation,
            username=login.username,
            details=login.describe() if not login.proven else "",
        )

    def record_missing_master(self, generation: str | None) -> None:
        self.proof = LoginProof(LoginState.LOGGED_OUT, "no_master", datetime.now(UTC), generation)

    def handed_out(self) -> None:
        self.last_handed_out = time.monotonic()

    def proven_for(self, generation: str | None) -> LoginState | None:
        """The last proof's state if it is about this generation of the master, else None (unknown)."""
        if self.proof is None or self.proof.generation != generation:
            return None
        return self.proof.state


class AccountBook:
    def __init__(self, root_layout: UserDataLayout, sample_fingerprint: FingerprintSampler):
        self._root = root_layout
        self._sample = sample_fingerprint
        self._accounts: dict[str, Account] = {}
        self._identity_lock = asyncio.Lock()
        self._identities: dict[str, AccountIdentity] = {}

    async def names(self) -> list[str]:
        return await asyncio.to_thread(self._root.account_names)

    async def with_generations(self) -> list[tuple[Account, str | None]]:
        """Every account (the default one when there are none yet) with its master's generation, read
        in one trip to a thread: a burst of POSTs waits on each trip behind the others."""

        def read() -> list[tuple[str, str | None]]:
            names = self._root.account_names() or [DEFAULT_ACCOUNT]
            return [(name, read_generation(self._root.for_account(name))) for name in names]

        return [(self.account(name), generation) for name, generation in await asyncio.to_thread(read)]

    def account(self, name: str) -> Account:
        """The account object for `name`, whether or not its master exists yet."""
        if name not in self._accounts:
            self._accounts[name] = Account(self._root.for_account(name))
        return self._accounts[name]

    async def get(self, name: str) -> Account:
        """An existing account; `AccountNotFound` otherwise (the name is assumed valid)."""
        if not is_account_name(name) or name not in await self.names():
            raise AccountNotFound(
                f"no account named {name!r}; create it with `python -m app.cli accounts create {name}` "
                "and log it in (`profile login --account`) or import its cookies"
            )
        return self.account(name)

    def known(self) -> list[Account]:
        return list(self._accounts.values())

    async def identity(self, account: Account) -> AccountIdentity:
        """The account's device: stored, else made now (once, whatever runs at the same time)."""
        cached = self._identities.get(account.name)
        if cached is not None:
            return cached
        async with self._identity_lock:
            identity = await asyncio.to_thread(read_identity, account.layout.identity_file)
            if identity is None:
                identity = await asyncio.to_thread(
                    write_identity,
                    account.layout.identity_file,
                    new_identity(await self._sample()),
                    replace=False,
                )
            self._identities[account.name] = identity
            return identity

    def forget_identity(self, name: str) -> None:
        """After `accounts set` or `rotate-identity` by another process: read it again next time."""
        self._identities.pop(name, None)


def new_identity(
    fingerprint: Fingerprint,
    *,
    locale: str | None = None,
    timezone: str | None = None,
    proxy: str | None = None,
) -> AccountIdentity:
    return AccountIdentity(
        fingerprint=fingerprint,
        locale=locale or fingerprint.navigator.language or "en-US",
        timezone=timezone or host_timezone(),
        proxy=SecretStr(proxy) if proxy else None,
    )


def remove_account_sync(layout: UserDataLayout) -> bool:
    """Delete the account's folder (master, identity, marker). Blocking; the caller holds its lock."""
    if not layout.account_dir.exists():
        return False
    shutil.rmtree(layout.account_dir)
    return True


async def create_account(
    layout: UserDataLayout,
    sample_fingerprint: FingerprintSampler,
    *,
    proxy: str | None = None,
    locale: str | None = None,
    timezone: str | None = None,
) -> AccountIdentity:
    """Make the account's folder, empty master and identity. `AccountExists` if it has an identity."""
    if await asyncio.to_thread(layout.identity_file.exists):
        raise AccountExists(f"account {layout.account} exists already")
    await asyncio.to_thread(layout.ensure)
    await asyncio.to_thread(layout.master.mkdir, mode=0o700, exist_ok=True)
    identity = new_identity(await sample_fingerprint(), locale=locale, timezone=timezone, proxy=proxy)
    return await asyncio.to_thread(write_identity, layout.identity_file, identity, replace=False)


async def change_identity(
    layout: UserDataLayout,
    sample_fingerprint: FingerprintSampler,
    *,
    rotate: bool = False,
    **changes: object,
) -> AccountIdentity:
    """`accounts set` (proxy, locale, timezone) or `accounts rotate-identity` (a new device)."""
    current = await asyncio.to_thread(read_identity, layout.identity_file)
    if current is None or rotate:
        base = new_identity(await sample_fingerprint())
        if current is not None:  # a new device; the account's chosen locale, zone and proxy stay
            base = base.with_changes(locale=current.locale, timezone=current.timezone, proxy=current.proxy)
        current = base
    updates = {key: value for key, value in changes.items() if value is not None}
    if "proxy" in updates:
        updates["proxy"] = SecretStr(str(updates["proxy"])) if updates["proxy"] else None
    identity = current.with_changes(**updates)
    return await asyncio.to_thread(write_identity, layout.identity_file, identity, replace=True)


class AccountExists(ValueError):
    pass
