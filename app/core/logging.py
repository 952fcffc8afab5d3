"""Logging set-up: the standard library, one redaction filter on the root handler, console or JSON.

Events are logged with stable names and their fields as `extra=` (`logger.info("session.closed",
extra={"session_id": sid, "reason": r})`): the console formatter prints the fields as `key=value`, the
JSON formatter as keys of one object per line.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from app.core.redaction import RedactingFilter

# Everything a LogRecord carries by itself; any other attribute came in through `extra=`.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD_ATTRIBUTES}


# Set by the request middleware for the time a request runs; every record written meanwhile carries it.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds the running request's id to every record that does not carry one already."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's own name
        line = super().formatMessage(record)
        fields = " ".join(f"{key}={value}" for key, value in event_fields(record).items())
        return f"{line} {fields}" if fields else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(event_fields(record))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it), never a closed old one."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str, fmt: str, secrets: tuple[str, ...] = ()) -> None:
    handler = _CurrentStderr()
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    redacting = RedactingFilter(secrets)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi_cli"):
        server_logger = logging.getLogger(name)
        server_logger.handlers[:] = []
        server_logger.propagate = True
        # Also on the logger itself: a launcher (`fastapi run`) may add handlers of its own later.
        server_logger.filters[:] = [redacting]
    # `app.api.request_log` writes one line per request (with its id); uvicorn's own access line would
    # be a second, printing the query string that carries session tokens.
    logging.getLogger("uvicorn.access").disabled = True
