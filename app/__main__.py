"""`python -m app`: start the service for real use (what `make run` does)."""

from __future__ import annotations

import argparse
import contextlib

import uvicorn

from app.main import create_app
from app.server import Server, load_service_settings, uvicorn_options

USAGE = """\
Serves the TikTok Session Service on HOST:PORT (default 127.0.0.1:5681) until SIGTERM or Ctrl-C.

It takes no arguments: every setting is an environment variable, also read from ./.env
(API_KEYS, USER_DATA_DIR, TIKTOK_URL, PROXY, MAX_SESSIONS, HOST, PORT, LOG_LEVEL, ...; .env.example
lists them all, README.md says what each does). A bad value stops it with one line naming the
variable, exit code 2.

`make run` installs everything, then runs this. Master profiles: python -m app.cli profile --help.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m app", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)
    settings = load_service_settings()
    config = uvicorn.Config(create_app(settings), host=settings.HOST, port=settings.PORT, **uvicorn_options())
    # Ctrl-C: uvicorn has stopped in order and re-raises it; a traceback would only alarm.
    with contextlib.suppress(KeyboardInterrupt):
        Server(config).run()


if __name__ == "__main__":
    main()
