"""`python -m app`: start the service for real use (what `make run` does)."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from app.core.config import Settings


def load_settings() -> Settings:
    """Bad configuration stops the service with one clear line naming the variable."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        name = ".".join(str(part) for part in first.get("loc", ())) or "configuration"
        print(f"configuration error: {name}: {first.get('msg')}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    settings = load_settings()
    from app.main import create_app

    uvicorn.run(create_app(settings), host=settings.HOST, port=settings.PORT, log_config=None)


if __name__ == "__main__":
    main()
