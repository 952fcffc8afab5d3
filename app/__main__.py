"""`python -m app`: start the service for real use (what `make run` does)."""

from __future__ import annotations

import uvicorn

from app.core.config import load_settings
from app.main import Server, create_app, uvicorn_options


def main() -> None:
    settings = load_settings()
    config = uvicorn.Config(create_app(settings), host=settings.HOST, port=settings.PORT, **uvicorn_options())
    Server(config).run()


if __name__ == "__main__":
    main()
