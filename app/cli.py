"""Manage the accounts and their master profiles (SPEC §6, §12).

Run as `python -m app.cli profile ACTION [--account NAME]` or `python -m app.cli accounts ACTION`, or,
once installed, `tiktok-sessions …`. Every profile command works on one account (default: `default`).

Exit codes: 0 done (status: logged in), 1 failed or aborted, 2 bad usage, configuration or cookie file,
3 logged out or no master profile, 4 login uncertain (status), 5 master locked past LOCK_TIMEOUT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from app import accounts_cli
from app.core.config import Settings, load_settings
from app.core.errors import MasterProfileMissing, ServiceError, UserDataLocked
from app.core.logging import configure_logging
from app.core.redaction import log_secrets
from app.remote_login import login_remotely
from app.services.common.files import replace_atomically
from app.services.common.user_data import DEFAULT_ACCOUNT, UserDataLayout, is_account_name
from app.services.tiktok import profile
from app.services.tiktok.cookie_export import FORMATS, render_cookies
from app.services.tiktok.cookie_import import CookieFileError, DomainMap, parse_domain_map
from app.services.tiktok.login.cookie_rules import has_live_session_cookie
from app.services.tiktok.login.login_signals import LoginState

EXIT_OK = 0
EXIT_FAILED = 1  # anything else, and a reset the person declined
EXIT_USAGE = 2  # argparse and load_settings() exit with 2 themselves
EXIT_LOGGED_OUT = 3
EXIT_UNCERTAIN = 4
EXIT_LOCKED = 5

_STATUS_EXIT = {
    LoginState.LOGGED_IN: EXIT_OK,
    LoginState.LOGGED_OUT: EXIT_LOGGED_OUT,
    LoginState.UNCERTAIN: EXIT_UNCERTAIN,
}

_EPILOG = (
    "exit codes: 0 ok / logged in, 1 failed or aborted, 2 bad usage or configuration, "
    "3 logged out or no master, 4 uncertain, 5 master locked past LOCK_TIMEOUT"
)


def _domain_map(spec: str) -> DomainMap:
    try:
        return parse_domain_map(spec)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _prog() -> str:
    name = Path(sys.argv[0]).name
    # `python -m app.cli` runs this file as __main__: argv[0] is its path, not a command to type.
    return "python -m app.cli" if name in ("cli.py", "__main__.py", "-c", "") else name


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=_prog(), description=__doc__.splitlines()[0], epilog=_EPILOG)
    commands = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    profile_parser = commands.add_parser(
        "profile", help="manage the master profile", description="Manage the master profile.", epilog=_EPILOG
    )
    actions = profile_parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=summary, description=summary, epilog=_EPILOG)
        parser.add_argument(
            "--account", type=_account_name, default=DEFAULT_ACCOUNT, metavar="NAME", help="default: default"
        )
        return parser

    login = action("login", "open a visible Chromium on the master at TikTok; log in, then close the window")
    login.add_argument(
        "--remote",
        action="store_true",
        help="no display here: print a link to log in through your own browser (the live view), "
        "via the running service or one served for the login",
    )
    importer = action("import-cookies", "load cookies exported from a desktop browser into the master")
    importer.add_argument(
        "file", type=Path, metavar="FILE", help="JSON array (export extension) or cookies.txt"
    )
    importer.add_argument(
        "--domain-map",
        type=_domain_map,
        action="append",
        default=[],
        metavar="FROM=TO",
        help="rewrite cookie domain FROM (and its subdomains) to TO before matching the TikTok host, "
        "e.g. .tiktok.com=127.0.0.1; repeatable, the first matching rule wins",
    )
    exporter = action("export-cookies", "write the master's TikTok cookies in an import format")
    exporter.add_argument("--format", choices=FORMATS, default="json", help="default: json")
    exporter.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write to FILE (created 0600: it holds the account's login) instead of stdout",
    )
    status = action("status", "run the service's login detection on a throw-away copy of the master")
    status.add_argument(
        "--json", action="store_true", help="one JSON object: state, method, elapsed_ms, details, generation"
    )
    status.add_argument("--all", action="store_true", help="check every account (exit code: the worst)")
    reset = action("reset", "delete the master profile")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    _accounts_parser(commands)
    return parser


def _accounts_parser(commands: argparse._SubParsersAction) -> None:
    summary = "list, create, change and remove accounts (each a master profile and a steady device)"
    group = commands.add_parser("accounts", help=summary, description=summary)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the accounts, their login and device")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    for name, summary in (
        ("create", "make an account: its folder, an empty master and its identity (device)"),
        ("set", "change an account's proxy, locale or time zone (the device stays)"),
    ):
        parser = actions.add_parser(name, help=summary, description=summary)
        parser.add_argument("name", type=_account_name, metavar="NAME")
        parser.add_argument(
            "--proxy", metavar="URL", help="scheme://user:pass@host:port (http, https, socks5)"
        )
        parser.add_argument("--locale", metavar="L", help="e.g. en-US (default: the fingerprint's)")
        parser.add_argument("--timezone", metavar="TZ", help="IANA name, e.g. Europe/Berlin")
        if name == "set":
            parser.add_argument("--no-proxy", action="store_true", help="use PROXY (or none) again")
    rotate = actions.add_parser("rotate-identity", help="give the account a new device (fingerprint)")
    rotate.add_argument("name", type=_account_name, metavar="NAME")
    remove = actions.add_parser("remove", help="delete the account: its master, identity and marker")
    remove.add_argument("name", type=_account_name, metavar="NAME")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _account_name(value: str) -> str:
    if not is_account_name(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an account name ([a-z0-9][a-z0-9_-]{{0,62}})")
    return value


def _login(settings: Settings, args: argparse.Namespace) -> int:
    if args.remote:
        return asyncio.run(login_remotely(settings, args.account))
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print(
            "error: no display here (DISPLAY is unset): `profile login` opens a window. Use "
            "`profile login --remote` to log in through a browser on your own machine.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(
        f"Opening Chromium on the master of account {args.account} at {settings.TIKTOK_URL}: "
        "log in, then close the window."
    )
    generation = asyncio.run(profile.login_interactively(settings, args.account))
    print(f"Window closed; the master profile is saved (generation {generation}).")
    return EXIT_OK


def _import_cookies(settings: Settings, args: argparse.Namespace) -> int:
    count = asyncio.run(profile.import_cookies(settings, args.file, args.domain_map, args.account))
    print(
        f"Imported {count} TikTok cookies for {settings.tiktok_host} into the master profile "
        f"of account {args.account}."
    )
    return EXIT_OK


def _export_cookies(settings: Settings, args: argparse.Namespace) -> int:
    cookies = asyncio.run(profile.export_cookies(settings, args.account))
    # The same test the import applies: an expired session cookie counts as none.
    if not has_live_session_cookie(cookies, settings.detection.SESSION_COOKIES, time.time()):
        print(
            f"warning: the master has no TikTok session cookie for {settings.tiktok_host}; "
            "importing this export will be refused",
            file=sys.stderr,
        )
    text = render_cookies(cookies, args.format)
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        replace_atomically(args.output, text)
    except OSError as error:
        print(f"error: cannot write {args.output}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    print(f"Exported {len(cookies)} TikTok cookies for {settings.tiktok_host} to {args.output} (mode 0600).")
    return EXIT_OK


def _status(settings: Settings, args: argparse.Namespace) -> int:
    names = UserDataLayout(settings.USER_DATA_DIR).account_names() if args.all else [args.account]
    codes = []
    for name in names or [DEFAULT_ACCOUNT]:
        status = asyncio.run(profile.profile_status(settings, name))
        prefix = f"{name}: " if args.all else ""
        if args.json:
            print(json.dumps({"account": name} | status.as_json()))
        elif status.locked:
            print(f"{prefix}locked (nothing checked, {status.elapsed_ms} ms) {status.details}")
        else:
            generation = status.generation or "none"
            user = f", user: {status.username}" if status.username else ""
            print(
                f"{prefix}{status.state} (method: {status.method}, {status.elapsed_ms} ms, "
                f"generation: {generation}{user}) {status.details}"
            )
        codes.append(EXIT_LOCKED if status.locked else _STATUS_EXIT[status.state])
    return max(codes)


def _reset(settings: Settings, args: argparse.Namespace) -> int:
    master = UserDataLayout(settings.USER_DATA_DIR, args.account).master
    if not master.exists():
        print(f"No master profile at {master}; nothing to delete.")
        return EXIT_OK
    # Asked before the lock is taken: a person thinking it over must not hold up the service's sessions.
    if not args.yes and not _confirm(f"Delete the master profile at {master}? [y/N] "):
        print("Aborted; the master profile is unchanged.")
        return EXIT_FAILED
    if asyncio.run(profile.reset_master(settings, args.account)):
        print(f"Deleted the master profile at {master}.")
    else:
        print(f"No master profile at {master}; nothing to delete.")
    return EXIT_OK


def _confirm(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        print()
        return False
    return answer.strip().lower() in ("y", "yes")


_ACTIONS = {
    "login": _login,
    "import-cookies": _import_cookies,
    "export-cookies": _export_cookies,
    "status": _status,
    "reset": _reset,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging("WARNING", settings.LOG_FORMAT, secrets=log_secrets(settings))
    handler = accounts_cli.ACTIONS[args.action] if args.group == "accounts" else _ACTIONS[args.action]
    try:
        return handler(settings, args)
    except KeyboardInterrupt:
        return 130
    except UserDataLocked as error:
        print(
            f"error: {error.message}: {profile.locked_details(error, settings.LOCK_TIMEOUT)}", file=sys.stderr
        )
        return EXIT_LOCKED
    except MasterProfileMissing as error:
        print(f"error: {error.details}", file=sys.stderr)
        return EXIT_LOGGED_OUT
    except CookieFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
