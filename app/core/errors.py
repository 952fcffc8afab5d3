"""Domain errors: the one table of codes, statuses and messages.

Services raise these; `app.api.errors` renders them (envelope + `X-Error-Code`), and the OpenAPI examples
and the mapping of FastAPI's own errors are built from these classes, never typed again elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol


class ServiceError(Exception):
    """An outcome a client must be told about, with a stable machine-readable code."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    http_status: ClassVar[int] = 500
    message: ClassVar[str] = "Internal server error"
    # For the OpenAPI document: when this happens, and what `error_details` then looks like.
    description: ClassVar[str] = "Anything else (browser binary missing, disk full…); details sanitized"
    example: ClassVar[dict[str, Any]] = {"details": "unexpected error; see the service log"}

    def __init__(self, details: str | None = None, **extra: Any):
        self.details = details
        self.extra = extra
        super().__init__(self.message if details is None else f"{self.message}: {details}")

    @property
    def error_details(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code}
        if self.details is not None:
            body["details"] = self.details
        body.update(self.extra)
        return body

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(ServiceError):
    code = "INVALID_REQUEST"
    http_status = 400
    message = "Invalid request"
    description = "Malformed JSON or a body that is not a JSON object"
    example = {"details": "the body is not valid JSON; send nothing or a JSON object such as {}"}


class Unauthorized(ServiceError):
    code = "UNAUTHORIZED"
    http_status = 401
    message = "Missing or invalid API key"
    description = "No or wrong credentials"
    example = {"details": "send a key from API_KEYS as X-API-Key header or session_token cookie"}


class NotFound(ServiceError):
    code = "NOT_FOUND"
    http_status = 404
    message = "Not found"
    description = "No such route"
    example = {"details": "no route for this path"}


class SessionNotFound(NotFound):
    code = "SESSION_NOT_FOUND"
    message = "Session not found"
    description = "Unknown or ended session"
    example = {"details": "no live session with id 3f0c2a9e-5b8e-4f57-9c55-1b2f3e4d5a6b"}


class AccountNotFound(NotFound):
    code = "ACCOUNT_NOT_FOUND"
    message = "Account not found"
    description = "No account of that name (a folder accounts/<name>/ with a master profile)"
    example = {
        "details": "no account named 'alice'; create it with `python -m app.cli accounts create alice`"
    }


class FileNotInSession(NotFound):
    code = "FILE_NOT_FOUND"
    message = "File not found"
    description = "The session has no downloaded file of that name"
    example = {"details": "session 3f0c2a9e-5b8e-4f57-9c55-1b2f3e4d5a6b has no download named 'a.pdf'"}


class Forbidden(ServiceError):
    code = "FORBIDDEN"
    http_status = 403
    message = "Not allowed with this token"
    description = "A view token used where the session's control token or an API key is needed"
    example = {"details": "a view link only opens the live view; use the cdp_url token or an API key"}


class MethodNotAllowed(ServiceError):
    code = "METHOD_NOT_ALLOWED"
    http_status = 405
    message = "Method not allowed"
    description = "The route exists, not with this method"
    example = {}


class NotLoggedIn(ServiceError):
    code = "NOT_LOGGED_IN"
    http_status = 409
    message = "Not logged in to TikTok"
    description = "Logged out, login not confirmed (state uncertain), or no master profile yet"
    example = {
        "details": "the profile copy is not logged in to TikTok (account info error: session_expired)",
        "state": "logged_out",
        "method": "account_api",
        "timeout": 8,
        "retry_count": 0,
        "elapsed_ms": 412,
    }


class MasterProfileMissing(NotLoggedIn):
    """No master profile yet: nothing can be logged in, so it is answered like a logged-out profile."""

    def __init__(self, details: str | None = None, **extra: Any):
        super().__init__(details, **({"state": "logged_out", "method": "no_master"} | extra))


class LoginOutcome(Protocol):
    """What `NotLoggedIn.from_login` needs of a detection result (kept structured until rendered)."""

    state: Any
    method: str
    elapsed_ms: int
    refreshes: int

    def describe(self) -> str: ...


class LoginNotProven(NotLoggedIn):
    """Detection ran and did not prove a login; its signals are turned into text only when rendered."""

    def __init__(self, login: LoginOutcome, timeout: float, **extra: Any):
        self.login = login
        super().__init__(
            None,
            state=str(login.state),
            method=login.method,
            timeout=timeout,
            retry_count=login.refreshes,
            elapsed_ms=login.elapsed_ms,
            **extra,
        )

    @property
    def error_details(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.login.describe(), **self.extra}


class NoAccountAvailable(NotLoggedIn):
    """No account named, and none of them could serve: which were tried and why."""

    message = "No account is logged in and free"
    description = "No account named, and none proven logged in with room (details list each one)"
    example = {
        "details": "tried: alice (logged_out: account info error: session_expired), bob (no room)",
        "accounts": {"alice": "logged_out", "bob": "no room"},
    }


class UserDataLocked(ServiceError):
    code = "USER_DATA_LOCKED"
    http_status = 423
    message = "The master profile is locked by another user"
    description = "The master is held exclusively (write-mode session or a profile command) past LOCK_TIMEOUT"
    example = {"details": "master profile is held exclusively; not free within 30 s", "timeout": 30}


class RequestTimeout(ServiceError):
    code = "REQUEST_TIMEOUT"
    http_status = 408
    message = "The request body did not arrive in time"
    description = "A body trickled in more slowly than the service waits for"
    example = {"details": "the body did not arrive within 10 s"}


class PayloadTooLarge(ServiceError):
    code = "PAYLOAD_TOO_LARGE"
    http_status = 413
    message = "Request body too large"
    description = "A body over 64 KiB"
    example = {"details": "the body is larger than 65536 bytes"}


class UnsupportedMediaType(ServiceError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    http_status = 415
    message = "Unsupported media type"
    description = "A body whose content type is not JSON"
    example = {"details": "send application/json"}


class ValidationFailed(ServiceError):
    code = "VALIDATION_ERROR"
    http_status = 422
    message = "Request validation failed"
    description = "A well-formed body or query that breaks the schema (e.g. an unknown field)"
    example = {"details": "x: Extra inputs are not permitted"}


class TooManySessions(ServiceError):
    code = "TOO_MANY_SESSIONS"
    http_status = 429
    message = "Too many live sessions"
    description = "MAX_SESSIONS live sessions already; Retry-After says when a slot frees"
    example = {"details": "4 sessions are live or starting (MAX_SESSIONS)", "limit": 4}

    def __init__(self, details: str | None = None, retry_after: int = 5, **extra: Any):
        self.retry_after = retry_after
        super().__init__(details, **extra)

    @classmethod
    def cap_reached(
        cls, limit: int, setting: str, expiries: Iterable[datetime], where: str = "", **extra: Any
    ) -> TooManySessions:
        """The cap `setting` is reached: `limit` sessions are live or starting `where`.

        Retry-After: until the first of `expiries` (when these sessions end by themselves), the latest a
        slot frees without a DELETE; 5 s when none is known.
        """
        now = datetime.now(UTC)
        remaining = [(expires_at - now).total_seconds() for expires_at in expiries]
        return cls(
            f"{limit} sessions are live or starting{where} ({setting}); "
            "end one with DELETE /tiktok/session/{id} or retry later",
            retry_after=max(1, math.ceil(min(remaining))) if remaining else 5,
            limit=limit,
            **extra,
        )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyRelays(ServiceError):
    code = "TOO_MANY_RELAYS"
    http_status = 429
    message = "Too many connections to this session"
    description = "MAX_RELAYS_PER_SESSION CDP and view connections to the session are open already"
    example = {"details": "session … already has 8 CDP and view connections", "limit": 8}


class InvalidFileName(ServiceError):
    code = "INVALID_FILE_NAME"
    http_status = 422
    message = "Invalid file name"
    description = "`name` must be a plain file name (no path, no leading dot, at most 200 bytes)"
    example = {"details": "'../x' is not a plain file name"}


class SessionStartTimeout(ServiceError):
    code = "SESSION_TIMEOUT"
    http_status = 504
    message = "The browser session did not start in time"
    description = "The browser did not start, load TikTok and decide within SESSION_START_TIMEOUT"
    example = {"details": "TikTok page did not load: net::ERR_CONNECTION_REFUSED", "timeout": 30}


class SessionEndedByTimeout(SessionStartTimeout):
    """Wait mode: the session lived, then MAX_SESSION_DURATION or the idle timeout ended it."""

    message = "The session ended by timeout"
    description = "Wait mode: MAX_SESSION_DURATION or SESSION_IDLE_TIMEOUT ended the session"
    example = {"details": "session ended: max_duration", "timeout": 300, "end_reason": "max_duration"}


class NotReady(ServiceError):
    code = "NOT_READY"
    http_status = 503
    message = "The service is not ready"
    description = "The browser binary, the master profile or the clones directory is not usable"
    example = {
        "details": "master profile: master profile ./user_data/master does not exist; create one with …",
        "checks": {"browser": "ok", "master": "missing", "clones": "ok"},
    }


class RegistryUnavailable(ServiceError):
    code = "REGISTRY_UNAVAILABLE"
    http_status = 503
    message = "The cluster registry is unavailable"
    description = (
        "Cluster mode: Redis is unreachable, so new sessions and sessions of other instances cannot be "
        "served (this instance's own sessions still are)"
    )
    example = {"details": "redis at redis:6379 is unreachable (ConnectionError)"}


class InstanceUnreachable(ServiceError):
    code = "INSTANCE_UNREACHABLE"
    http_status = 502
    message = "The instance that owns the session did not answer"
    description = "Cluster mode: the session's owner could not be reached (it may just have died)"
    example = {"details": "http://10.0.0.12:5681 did not answer (ConnectError)"}


class BrowserLaunchFailed(ServiceError):
    """The browser could not be started, or ended while the session was starting: 'anything else'."""

    message = "The browser could not be started"


# FastAPI's and Starlette's own HTTP errors, rendered with the same envelope.
BY_HTTP_STATUS: dict[int, type[ServiceError]] = {
    error.http_status: error
    for error in (
        InvalidRequest,
        Unauthorized,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        UnsupportedMediaType,
    )
}
