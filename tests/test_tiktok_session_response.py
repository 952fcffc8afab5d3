"""Response bodies: the success shape, the one error envelope, and what must never appear in either."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from app.api.errors import error_response, openapi_errors, validation_error
from app.core.errors import (
    BrowserLaunchFailed,
    InvalidRequest,
    MasterProfileMissing,
    NotLoggedIn,
    ServiceError,
    SessionNotFound,
    SessionStartTimeout,
    TooManySessions,
    Unauthorized,
    UserDataLocked,
    ValidationFailed,
)
from app.core.redaction import redact_proxy, redact_text
from app.core.security import key_matches
from app.schemas.tiktok import (
    ErrorResponse,
    LoginInfo,
    SessionClosedResponse,
    SessionInfo,
    SessionInfoResponse,
    SessionListResponse,
    TikTokSessionResponse,
)

SESSION_ID = str(uuid.uuid4())
CREATED = datetime(2026, 1, 30, 11, 10, 5, tzinfo=UTC)


def session_info(**overrides: Any) -> SessionInfo:
    fields: dict[str, Any] = {
        "session_id": SESSION_ID,
        "created_at": CREATED,
        "expires_at": CREATED + timedelta(seconds=300),
        "login": LoginInfo(state="logged_in", method="account_api", elapsed_ms=412),
        "mode": "read",
    }
    return SessionInfo(**(fields | overrides))


def rendered(error: ServiceError) -> tuple[int, dict[str, str], dict[str, Any]]:
    response = error_response(error)
    return response.status_code, dict(response.headers), json.loads(response.body)


# --- success bodies ----------------------------------------------------------------------------------------


def test_session_created_body() -> None:
    # What the route sends: unset links and end_reason (wait mode only) are left out.
    body = json.loads(TikTokSessionResponse(session_id=SESSION_ID).model_dump_json(exclude_none=True))
    assert body == {
        "status": "success",
        "message": "TikTok session established successfully",
        "session_id": SESSION_ID,
    }


def test_success_message_cannot_be_empty() -> None:
    with pytest.raises(ValidationError):
        TikTokSessionResponse(session_id=SESSION_ID, message="")


@pytest.mark.parametrize(
    "response",
    [
        TikTokSessionResponse(session_id=SESSION_ID),
        SessionInfoResponse(**session_info().model_dump()),
        SessionListResponse(sessions=[session_info()]),
        SessionClosedResponse(session_id=SESSION_ID),
    ],
    ids=["created", "info", "list", "closed"],
)
def test_success_bodies_have_status_and_message_and_no_error_details(response: Any) -> None:
    body = json.loads(response.model_dump_json())
    assert body["status"] == "success"
    assert isinstance(body["message"], str) and body["message"]
    assert "error_details" not in body


def test_session_info_fields() -> None:
    body = json.loads(session_info().model_dump_json())
    assert body == {
        "session_id": SESSION_ID,
        "state": "live",
        "created_at": "2026-01-30T11:10:05Z",
        "expires_at": "2026-01-30T11:15:05Z",
        "idle_expires_at": None,
        "login": {"state": "logged_in", "method": "account_api", "elapsed_ms": 412, "verified_at": None},
        "mode": "read",
        "account": None,
        "cdp_url": None,
        "view_url": None,
    }


def test_session_info_refuses_unknown_mode_and_login_state() -> None:
    with pytest.raises(ValidationError):
        session_info(mode="readonly")
    with pytest.raises(ValidationError):
        LoginInfo(state="probably", method="header", elapsed_ms=1)
    with pytest.raises(ValidationError):
        LoginInfo(state="logged_in", method="header", elapsed_ms=-1)


# --- the error envelope ------------------------------------------------------------------------------------

ALL_ERRORS = [
    (ServiceError, "INTERNAL_ERROR", 500),
    (InvalidRequest, "INVALID_REQUEST", 400),
    (ValidationFailed, "VALIDATION_ERROR", 422),
    (Unauthorized, "UNAUTHORIZED", 401),
    (SessionNotFound, "SESSION_NOT_FOUND", 404),
    (NotLoggedIn, "NOT_LOGGED_IN", 409),
    (MasterProfileMissing, "NOT_LOGGED_IN", 409),
    (UserDataLocked, "USER_DATA_LOCKED", 423),
    (TooManySessions, "TOO_MANY_SESSIONS", 429),
    (SessionStartTimeout, "SESSION_TIMEOUT", 504),
    (BrowserLaunchFailed, "INTERNAL_ERROR", 500),
]


@pytest.mark.parametrize(("error_class", "code", "status"), ALL_ERRORS, ids=[e[1] for e in ALL_ERRORS])
def test_every_error_renders_the_one_envelope(
    error_class: type[ServiceError], code: str, status: int
) -> None:
    http_status, headers, body = rendered(error_class("what happened"))
    assert (error_class.code, error_class.http_status) == (code, status)
    assert http_status == status
    assert headers["x-error-code"] == code == body["error_details"]["code"]
    assert body["status"] == "error"
    assert body["message"] == error_class.message and body["message"]
    assert body["error_details"]["details"] == "what happened"
    ErrorResponse.model_validate(body)


def test_error_extra_fields_appear_in_error_details() -> None:
    error = NotLoggedIn(
        "could not confirm login", state="uncertain", method="pending", timeout=8, retry_count=1
    )
    _, _, body = rendered(error)
    assert body == {
        "status": "error",
        "message": "Not logged in to TikTok",
        "error_details": {
            "code": "NOT_LOGGED_IN",
            "details": "could not confirm login",
            "state": "uncertain",
            "method": "pending",
            "timeout": 8,
            "retry_count": 1,
        },
    }
    assert ErrorResponse.model_validate(body).error_details.model_dump()["retry_count"] == 1


def test_error_without_details_omits_them() -> None:
    _, _, body = rendered(SessionNotFound())
    assert body["error_details"] == {"code": "SESSION_NOT_FOUND"}


def test_too_many_sessions_sends_retry_after() -> None:
    status, headers, body = rendered(TooManySessions("4 sessions live", retry_after=7))
    assert (status, headers["retry-after"], headers["x-error-code"]) == (429, "7", "TOO_MANY_SESSIONS")
    assert body["error_details"]["code"] == "TOO_MANY_SESSIONS"


def test_other_errors_send_no_retry_after() -> None:
    _, headers, _ = rendered(UserDataLocked("held by a write session"))
    assert "retry-after" not in headers


@pytest.mark.parametrize("error", [error for error, _, _ in ALL_ERRORS], ids=lambda e: e.__name__)
def test_openapi_examples_come_from_the_error_classes(error: type[ServiceError]) -> None:
    (response,) = openapi_errors(error).values()
    (example,) = response["content"]["application/json"]["examples"].values()
    parsed = ErrorResponse.model_validate(example["value"])
    assert (parsed.status, parsed.message, parsed.error_details.code) == ("error", error.message, error.code)


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        ([{"type": "json_invalid", "loc": ("body", 1), "msg": "JSON decode error"}], InvalidRequest),
        ([{"type": "model_attributes_type", "loc": ("body",), "msg": "Input should be"}], InvalidRequest),
        (
            [{"type": "dict_type", "loc": ("body",), "msg": "Input should be a valid dictionary"}],
            InvalidRequest,
        ),
        ([{"type": "extra_forbidden", "loc": ("body", "x"), "msg": "Extra inputs"}], ValidationFailed),
    ],
    ids=["bad-json", "not-an-object", "not-a-dict", "unknown-field"],
)
def test_validation_errors_map_to_400_or_422(errors: list[dict[str, Any]], expected: type) -> None:
    assert type(validation_error(errors)) is expected


def test_validation_error_names_the_field_without_the_body_prefix() -> None:
    error = validation_error([{"type": "extra_forbidden", "loc": ("body", "x"), "msg": "Extra inputs"}])
    assert error.details == "x: Extra inputs"


# --- redaction ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pass@host:8080", "http://***:***@host:8080"),
        ("socks5://u:p%40ss@10.0.0.1:1080", "socks5://***:***@10.0.0.1:1080"),
        ("http://user:p@ss@proxy.example:3128", "http://***:***@proxy.example:3128"),
        ("https://proxy.example:3128", "https://proxy.example:3128"),
        ("http://user:pass@[2001:db8::1]:8080", "http://***:***@[2001:db8::1]:8080"),
        (None, None),
        ("", ""),
    ],
    ids=["user-pass", "encoded-password", "raw-at-in-password", "no-credentials", "ipv6", "none", "empty"],
)
def test_redact_proxy(url: str | None, expected: str | None) -> None:
    assert redact_proxy(url) == expected


def test_redact_text_removes_url_credentials() -> None:
    text = "proxy http://user:s3cret@proxy.example:3128 refused; ws://a:b@127.0.0.1:9222/devtools"
    assert (
        redact_text(text)
        == "proxy http://***:***@proxy.example:3128 refused; ws://***:***@127.0.0.1:9222/devtools"
    )


def test_redact_text_removes_a_password_containing_an_at_sign() -> None:
    proxy = "http://user:p@ss@proxy.example:3128"
    redacted = redact_text(f"launch failed with proxy {proxy}", secrets=(proxy,))
    assert "p@ss" not in redacted and "ss@proxy" not in redacted
    assert "proxy.example:3128" in redacted


@pytest.mark.parametrize(
    ("text", "secret_value"),
    [
        ("GET /x?api_key=k3y-value&page=2", "k3y-value"),
        ("api-key=k3y-value", "k3y-value"),
        ("Cookie: sessionid=abc123; sid_tt=def456", "abc123"),
        ("Cookie: sessionid=abc123; sid_tt=def456", "def456"),
        ("set session_token=tok3n", "tok3n"),
        ("password=hunter2 rejected", "hunter2"),
        ("sid_guard=abc%7C1700000000%7C5184000", "abc%7C1700000000"),
    ],
    ids=["api_key", "api-key", "sessionid", "sid_tt", "session_token", "password", "sid_guard"],
)
def test_redact_text_removes_secret_parameters(text: str, secret_value: str) -> None:
    redacted = redact_text(text)
    assert secret_value not in redacted
    assert "***" in redacted


def test_redact_text_removes_listed_secrets_and_keeps_the_rest() -> None:
    redacted = redact_text("key Zx9-generated-key used by client 7", secrets=("Zx9-generated-key", ""))
    assert redacted == "key *** used by client 7"


def test_redact_text_leaves_clean_text_alone() -> None:
    text = "session.created id=3f0c2a9e https://www.tiktok.com/@alice"
    assert redact_text(text, secrets=("unused",)) == text


# --- key comparison ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "accepted", "matches"),
    [
        ("k1", ("k1",), True),
        ("k2", ("k1", "k2"), True),
        ("k1", ("k1", "k1"), True),
        ("k3", ("k1", "k2"), False),
        ("k1 ", ("k1",), False),
        ("K1", ("k1",), False),
        ("k", ("k1",), False),
        ("", ("k1", ""), False),
        (None, ("k1",), False),
        ("k1", (), False),
        ("clé-ü", ("clé-ü",), True),
    ],
    ids=[
        "only-key",
        "second-key",
        "duplicate-keys",
        "wrong-key",
        "trailing-space",
        "case-differs",
        "prefix",
        "empty-candidate",
        "missing-candidate",
        "no-keys",
        "non-ascii",
    ],
)
def test_key_matches(candidate: str | None, accepted: tuple[str, ...], matches: bool) -> None:
    assert key_matches(candidate, accepted) is matches
