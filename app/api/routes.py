"""HTTP routes. Each stays a few lines: auth and services come from `deps`, errors from `errors`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.api.deps import ApiKey, SessionRequest, Sessions
from app.schemas.tiktok import (
    ErrorResponse,
    HealthResponse,
    SessionClosedResponse,
    SessionInfoResponse,
    SessionListResponse,
    TikTokSessionResponse,
)

router = APIRouter()
tiktok = APIRouter(prefix="/tiktok", tags=["tiktok"])


def _error(description: str, message: str, code: str, **details: Any) -> dict[str, Any]:
    example = ErrorResponse.example(message, code, **details)
    return {
        "model": ErrorResponse,
        "description": description,
        "headers": {
            "X-Error-Code": {"description": "equals error_details.code", "schema": {"type": "string"}}
        },
        "content": {"application/json": {"example": example}},
    }


_UNAUTHORIZED = _error(
    "No or wrong API key", "Missing or invalid API key", "UNAUTHORIZED", details="send X-API-Key"
)
_NOT_FOUND = _error(
    "Unknown or ended session", "Session not found", "SESSION_NOT_FOUND", details="no live session"
)

CREATE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Logged in; the session stays alive after the response",
        "headers": {"X-Session-Id": {"description": "the new session's id", "schema": {"type": "string"}}},
    },
    400: _error(
        "Malformed JSON or a non-object body", "Invalid request", "INVALID_REQUEST", details="not JSON"
    ),
    401: _UNAUTHORIZED,
    409: _error(
        "Logged out, login not confirmed, or no master profile",
        "Not logged in to TikTok",
        "NOT_LOGGED_IN",
        details="the profile copy is not logged in to TikTok [account_api]",
        state="logged_out",
        method="account_api",
        timeout=8,
        retry_count=0,
    ),
    422: _error("Unknown field", "Request validation failed", "VALIDATION_ERROR", details="x: Extra inputs"),
    423: _error(
        "The master profile is held exclusively",
        "The master profile is locked by another user",
        "USER_DATA_LOCKED",
        details="not free within 30 s",
        timeout=30,
    ),
    429: {
        **_error("MAX_SESSIONS reached", "Too many live sessions", "TOO_MANY_SESSIONS", limit=4),
        "headers": {
            "Retry-After": {"description": "seconds", "schema": {"type": "integer"}},
            "X-Error-Code": {"schema": {"type": "string"}},
        },
    },
    500: _error("Anything else", "Internal server error", "INTERNAL_ERROR", details="see the service log"),
    504: _error(
        "Not started, loaded and decided in time",
        "The browser session did not start in time",
        "SESSION_TIMEOUT",
        details="TikTok page did not load",
        timeout=30,
    ),
}

_OPTIONAL_JSON_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "additionalProperties": False},
                "example": {},
            }
        },
    }
}


@router.get("/health", response_model=HealthResponse, tags=["health"])
async def health() -> HealthResponse:
    return HealthResponse()


@tiktok.post(
    "/session",
    response_model=TikTokSessionResponse,
    responses=CREATE_RESPONSES,
    openapi_extra=_OPTIONAL_JSON_BODY,
    summary="Create a session on a copy of the master profile, proven logged in",
)
async def create_session(
    _key: ApiKey, _body: SessionRequest, sessions: Sessions, request: Request, response: Response
) -> TikTokSessionResponse:
    session = await sessions.create()
    if await request.is_disconnected():
        # Nobody will ever learn this id: without this the session would hold a slot until it expires.
        await sessions.end(session.id, reason="client_gone")
    response.headers["X-Session-Id"] = session.id
    return TikTokSessionResponse(session_id=session.id)


@tiktok.get(
    "/session/{session_id}",
    response_model=SessionInfoResponse,
    responses={401: _UNAUTHORIZED, 404: _NOT_FOUND},
)
async def get_session(session_id: str, _key: ApiKey, sessions: Sessions) -> SessionInfoResponse:
    info = sessions.get(session_id).info()
    return SessionInfoResponse(**info.model_dump())


@tiktok.get("/sessions", response_model=SessionListResponse, responses={401: _UNAUTHORIZED})
async def list_sessions(_key: ApiKey, sessions: Sessions) -> SessionListResponse:
    return SessionListResponse(sessions=[session.info() for session in sessions.live()])


@tiktok.delete(
    "/session/{session_id}",
    response_model=SessionClosedResponse,
    responses={401: _UNAUTHORIZED, 404: _NOT_FOUND},
)
async def delete_session(session_id: str, _key: ApiKey, sessions: Sessions) -> SessionClosedResponse:
    await sessions.end(session_id)
    return SessionClosedResponse(session_id=session_id)


router.include_router(tiktok)
