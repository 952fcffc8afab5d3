"""Secrets must never reach a log line, an error body or an exception shown to a client."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote, urlsplit

from app.core.config import Settings

# user:password@ in any URL-looking text (proxy URLs, DevTools URLs with credentials...).
# Greedy up to the last "@" before the path: a password may itself contain a raw "@".
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+:[^/\s]*@")
_SECRET_PARAMS = re.compile(
    r"(?i)\b(api[_-]?key|session_token|token|password|sessionid|sessionid_ss|sid_tt|sid_guard)=([^&\s;,]+)"
)
# A password as a quoted value (`'password': 'x'`, `"password":"x"`): how a browser driver's error quotes
# the proxy settings it was given.
_QUOTED_PASSWORD = re.compile(r"""(?i)(\bpassword['"]?\s*[:=]\s*)(['"])(?:\\.|(?!\2).)*\2""")
# Shorter secrets are not searched for as raw text: a 4-character password or a port-like value would
# blank innocent text wherever it occurs (a URL, a number). Credentials inside URLs and `key=value` pairs
# are found by their shape above, whatever their length.
MIN_SECRET_LENGTH = 8


def redact_proxy(url: str | None) -> str | None:
    """`http://user:pass@host:port` → `http://***:***@host:port`."""
    if not url:
        return url
    parts = urlsplit(url)
    # Host and port exactly as written (keeps IPv6 brackets), everything before the last "@" dropped.
    host_and_port = parts.netloc.rpartition("@")[2]
    credentials = "***:***@" if "@" in parts.netloc else ""
    return f"{parts.scheme}://{credentials}{host_and_port}"


def log_secrets(settings: Settings) -> tuple[str, ...]:
    """What the log filter blanks wherever it appears: the configured keys and the passwords in URLs.

    A proxy URL is not a secret as a whole (its host and port are innocent text that also appears in
    other URLs); its credentials are, and are blanked by their shape in any URL and, when long enough,
    as raw text (a driver may quote the password alone), as written and percent-decoded.
    """
    secrets = [key.get_secret_value() for key in settings.API_KEYS]
    for url in (settings.PROXY, settings.REDIS_URL):
        password = urlsplit(url.get_secret_value()).password if url is not None else None
        if password:
            secrets += [password, unquote(password)]
    return tuple(dict.fromkeys(secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH))


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***:***@", text)
    text = _SECRET_PARAMS.sub(r"\1=***", text)
    text = _QUOTED_PASSWORD.sub(r"\1\2***\2", text)
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text


# Attributes of every LogRecord that are not message text.
_EXTRA_SKIP = frozenset(
    {
        "name",
        "levelname",
        "pathname",
        "filename",
        "module",
        "funcName",
        "msg",
        "args",
        "exc_text",
        "stack_info",
        "threadName",
        "processName",
        "taskName",
        "message",
        "asctime",
    }
)


class RedactingFilter(logging.Filter):
    """Installed on the root handler: rewrites every record after formatting its arguments."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self._secrets = tuple(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)

    def filter(self, record: logging.LogRecord) -> bool:
        # The message as it will read, arguments in place: a secret may be an argument, and redacting
        # the format string alone could break its placeholders.
        message = record.getMessage()
        redacted = redact_text(message, self._secrets)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        # Fields given with `extra=` are printed too (the request log passes the path with its query).
        for key, value in list(vars(record).items()):
            if key not in _EXTRA_SKIP and isinstance(value, str | tuple):
                setattr(record, key, self._redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks go to the operator's log, but an exception text may quote a proxy URL.
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info), self._secrets)
            record.exc_info = None
        return True

    def _redact(self, value: object) -> object:
        if isinstance(value, str):
            return redact_text(value, self._secrets)
        if isinstance(value, tuple):
            return tuple(self._redact(item) for item in value)
        return value
