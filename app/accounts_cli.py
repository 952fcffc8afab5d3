"""`python -m app.cli accounts …` (SPEC §12): list, create, set, rotate-identity, remove."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable

from browserforge.fingerprints import Fingerprint

from app.core.config import Settings, check_proxy_url
from app.core.redaction import redact_proxy
from app.services.common.browser import browser_version, find_browser
from app.services.common.fingerprint import FingerprintSource, user_agent_for
from app.services.common.generation import read_generation
from app.services.common.identity import AccountIdentity, read_identity
from app.services.common.profile_lock import ProfileLock
from app.services.common.user_data import UserDataLayout
from app.services.tiktok import accounts

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _sample_once() -> Callable[[], Awaitable[Fingerprint]]:
    """One fingerprint, sampled in a thread, for a command that makes or rotates one identity."""
    source = FingerprintSource()

    async def sample() -> Fingerprint:
        try:
            return await source.sample()
        finally:
            await source.aclose()

    return sample


def _user_agent(settings: Settings) -> str | None:
    try:
        return user_agent_for(asyncio.run(browser_version(find_browser(settings.BROWSER_EXECUTABLE))))
    except Exception:  # noqa: BLE001 - the listing still shows the rest without a browser
        return None


def _row(layout: UserDataLayout, identity: AccountIdentity | None, user_agent: str | None) -> dict:
    summary = identity.summary(user_agent) if identity is not None else None
    return {
        "name": layout.account,
        "generation": read_generation(layout),
        "has_master": (layout.master / "Default").is_dir(),
        "proxy": identity.redacted_proxy if identity is not None else None,
        "identity": summary,
    }


def list_accounts(settings: Settings, args: argparse.Namespace) -> int:
    root = UserDataLayout(settings.USER_DATA_DIR)
    user_agent = _user_agent(settings)
    rows = [
        _row(root.for_account(name), read_identity(root.for_account(name).identity_file), user_agent)
        for name in root.account_names()
    ]
    if args.json:
        print(json.dumps(rows))
        return EXIT_OK
    if not rows:
        print("No accounts yet: `accounts create NAME`, then `profile login --account NAME`.")
    for row in rows:
        identity = row["identity"] or {}
        print(
            f"{row['name']}: master {'yes' if row['has_master'] else 'empty'}, generation "
            f"{row['generation'] or 'none'}, proxy {row['proxy'] or 'PROXY/none'}, "
            f"{identity.get('screen', '?')} {identity.get('timezone', '?')} {identity.get('locale', '?')}"
        )
    return EXIT_OK


def create(settings: Settings, args: argparse.Namespace) -> int:
    layout = UserDataLayout(settings.USER_DATA_DIR, args.name)
    proxy = _checked_proxy(args.proxy)
    try:
        identity = asyncio.run(
            accounts.create_account(
                layout, _sample_once(), proxy=proxy, locale=args.locale, timezone=args.timezone
            )
        )
    except accounts.AccountExists as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Created account {args.name}: {_describe(identity)}.")
    print(f"Log it in: python -m app.cli profile login --account {args.name} (or import-cookies).")
    return EXIT_OK


def _existing(settings: Settings, name: str) -> UserDataLayout | None:
    layout = UserDataLayout(settings.USER_DATA_DIR, name)
    if layout.account_dir.is_dir():
        return layout
    print(f"error: no account named {name}", file=sys.stderr)
    return None


def set_account(settings: Settings, args: argparse.Namespace) -> int:
    layout = _existing(settings, args.name)
    if layout is None:
        return EXIT_FAILED
    proxy = "" if args.no_proxy else _checked_proxy(args.proxy)
    identity = asyncio.run(
        accounts.change_identity(
            layout, _sample_once(), proxy=proxy, locale=args.locale, timezone=args.timezone
        )
    )
    print(f"Account {args.name}: {_describe(identity)}.")
    return EXIT_OK


def rotate_identity(settings: Settings, args: argparse.Namespace) -> int:
    layout = _existing(settings, args.name)
    if layout is None:
        return EXIT_FAILED
    identity = asyncio.run(accounts.change_identity(layout, _sample_once(), rotate=True))
    print(f"Account {args.name} has a new device: {_describe(identity)}.")
    print("Sessions started from now on show it; TikTok may ask the account to log in again.")
    return EXIT_OK


def remove(settings: Settings, args: argparse.Namespace) -> int:
    layout = UserDataLayout(settings.USER_DATA_DIR, args.name)
    if not layout.account_dir.is_dir():
        print(f"No account named {args.name}; nothing to delete.")
        return EXIT_OK
    if not args.yes and not _confirm(f"Delete account {args.name} (its master profile and device)? [y/N] "):
        print("Aborted; the account is unchanged.")
        return EXIT_FAILED

    async def remove_locked() -> bool:
        async with ProfileLock(layout.lock_file).exclusive(settings.LOCK_TIMEOUT):
            return await asyncio.to_thread(accounts.remove_account_sync, layout)

    asyncio.run(remove_locked())
    print(f"Deleted account {args.name}.")
    return EXIT_OK


def _checked_proxy(proxy: str | None) -> str | None:
    if proxy is None:
        return None
    try:
        check_proxy_url(proxy)
    except ValueError as error:
        # The reason, never the value: it holds the proxy's password.
        print(f"error: --proxy {error}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None
    return proxy


def _describe(identity: AccountIdentity) -> str:
    summary = identity.summary()
    proxy = redact_proxy(identity.proxy.get_secret_value()) if identity.proxy else "PROXY/none"
    return (
        f"screen {summary['screen']}, {summary['hardware_concurrency']} cores, WebGL "
        f"{summary['webgl_renderer']}, {summary['locale']}, {summary['timezone']}, proxy {proxy}"
    )


def _confirm(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:
        print()
        return False


ACTIONS = {
    "list": list_accounts,
    "create": create,
    "set": set_account,
    "rotate-identity": rotate_identity,
    "remove": remove,
}
