"""`python -m app.cli profile login | import-cookies FILE | status`: manage the master profile."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from app.__main__ import load_settings
from app.core.errors import ServiceError
from app.core.logging import configure_logging
from app.services.tiktok import profile
from app.services.tiktok.cookie_import import CookieFileError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__)
    commands = parser.add_subparsers(dest="group", required=True)
    profile_parser = commands.add_parser("profile", help="manage the master profile (exclusive lock)")
    actions = profile_parser.add_subparsers(dest="action", required=True)
    actions.add_parser("login", help="open a visible Chromium on the master; log in, then close it")
    importer = actions.add_parser("import-cookies", help="load exported cookies (JSON array or cookies.txt)")
    importer.add_argument("file", type=Path)
    actions.add_parser("status", help="run the login detection on a throw-away clone")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging("WARNING", settings.LOG_FORMAT)
    try:
        if args.action == "login":
            print(
                f"Opening Chromium on {settings.master_dir} at {settings.TIKTOK_URL}: log in, then close it."
            )
            asyncio.run(profile.login_interactively(settings))
            print("Window closed; the master profile is saved.")
        elif args.action == "import-cookies":
            count = asyncio.run(profile.import_cookies(settings, args.file))
            print(f"Imported {count} TikTok cookies into {settings.master_dir}.")
        else:
            status = asyncio.run(profile.profile_status(settings))
            print(f"{status.state} (method: {status.method}, {status.elapsed_ms} ms) {status.details}")
            return 0 if status.state == "logged_in" else 1
    except CookieFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ServiceError as error:
        print(f"error: {error.message}: {error.details or ''}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
