"""Domain errors. Services raise these; `app.api.errors` is the one place that turns them into HTTP."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An outcome a client must be told about, with a stable machine-readable code."""

    code = "INTERNAL_ERROR"
    http_status = 500
    message = "Internal server error"

    def __init__(self, details: str | None = None, message: str | None = None, **extra: Any):
        self.details = details
        if message is not None:
            self.message = message
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


class ValidationFailed(ServiceError):
    code = "VALIDATION_ERROR"
    http_status = 422
    message = "Request validation failed"


class Unauthorized(ServiceError):
    code = "UNAUTHORIZED"
    http_status = 401
    message = "Missing or invalid API key"


class SessionNotFound(ServiceError):
    code = "SESSION_NOT_FOUND"
    http_status = 404
    message = "Session not found"


class NotLoggedIn(ServiceError):
    code = "NOT_LOGGED_IN"
    http_status = 409
    message = "Not logged in to TikTok"


class MasterProfileMissing(NotLoggedIn):
    """No master profile yet: nothing can be logged in, so it is answered like a logged-out profile."""


class UserDataLocked(ServiceError):
    code = "USER_DATA_LOCKED"
    http_status = 423
    message = "The master profile is locked by another user"


class TooManySessions(ServiceError):
    code = "TOO_MANY_SESSIONS"
    http_status = 429
    message = "Too many live sessions"

    def __init__(self, details: str | None = None, retry_after: int = 5, **extra: Any):
        self.retry_after = retry_after
        super().__init__(details, **extra)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class SessionStartTimeout(ServiceError):
    code = "SESSION_TIMEOUT"
    http_status = 504
    message = "The browser session did not start in time"


class BrowserLaunchFailed(ServiceError):
    """The browser could not be started (binary missing, crashed at start...)."""

    code = "INTERNAL_ERROR"
    http_status = 500
    message = "The browser could not be started"
