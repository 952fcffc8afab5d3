"""HTTP routes. Each stays a few lines: auth and services come from `deps`, errors from `errors`."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, WebSocket

from app.api import accounts, forwarding, links, session_tools
from app.api.deps import (
    AnySession,
    LiveSessionDep,
    SessionRequest,
    Sessions,
    SessionWithToken,
    authorize_websocket,
    require_api_key,
)
from app.api.errors import openapi_errors
from app.api.state import app_state
from app.core import metrics
from app.core.errors import (
    AccountNotFound,
    InstanceUnreachable,
    InvalidRequest,
    NotLoggedIn,
    NotReady,
    PayloadTooLarge,
    RegistryUnavailable,
    RequestTimeout,
    ServiceError,
    SessionEndedByTimeout,
    SessionNotFound,
    SessionStartTimeout,
    TooManySessions,
    Unauthorized,
    UnsupportedMediaType,
    UserDataLocked,
    ValidationFailed,
)
from app.schemas.tiktok import (
    HealthResponse,
    ReadyResponse,
    SessionClosedResponse,
    SessionInfoResponse,
    SessionListResponse,
    TikTokSessionResponse,
)
from app.services.cluster.registry import SessionRecord
from app.services.common.access import Scope
from app.services.tiktok.session import EndReason, LiveSession

logger = logging.getLogger(__name__)

router = APIRouter()
# Every /tiktok route needs an API key; a session's own routes (below) also take that session's token.
tiktok = APIRouter(prefix="/tiktok", tags=["tiktok"], dependencies=[Depends(require_api_key)])
session_access = APIRouter(prefix="/tiktok", tags=["tiktok"])

_SESSION_ERRORS = openapi_errors(
    Unauthorized, SessionNotFound, ValidationFailed, RegistryUnavailable, InstanceUnreachable
)
_SESSION_PATH = "/tiktok/session/{session_id}"
# A screenshot answers a PNG: the id its links pass on is the one in its own path.
_FROM_PATH = "$request.path.session_id"


def _link(path: str, method: str, description: str, session_id: str = "$response.body#/session_id") -> dict:
    """An OpenAPI link: how a client (and a stateful fuzzer) goes on from this answer."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {
        "operationRef": f"#/paths/{pointer}/{method}",
        "parameters": {"session_id": session_id},
        "description": description,
    }


_OPTIONAL_JSON_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "account": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
                    },
                },
                "example": {},
            }
        },
    }
}


@router.get("/health", response_model=HealthResponse, tags=["health"])
async def health() -> HealthResponse:
    return HealthResponse()


@router.get("/ready", response_model=ReadyResponse, tags=["health"], responses=openapi_errors(NotReady))
async def ready(sessions: Sessions) -> ReadyResponse:
    checks = await sessions.readiness()
    if any(state != "ok" for state in checks.values()):
        problems = "; ".join(f"{name}: {state}" for name, state in checks.items() if state != "ok")
        raise NotReady(problems, checks=checks)
    return ReadyResponse(
        checks=checks,
        generation=await sessions.generation(),
        warm_sessions=sessions.warm_ready(),
        isolation=sessions.browsers.isolation.value,
    )


@router.get(
    "/metrics",
    tags=["health"],
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "Prometheus text format"}},
)
async def prometheus_metrics(request: Request) -> Response:
    return Response(app_state(request.app).metrics.render(), media_type=metrics.CONTENT_TYPE)


@tiktok.post(
    "/session",
    response_model=TikTokSessionResponse,
    response_model_exclude_none=True,
    responses={
        200: {
            "description": "Logged in; the session stays alive after the response (wait mode: it has ended)",
            "headers": {
                "X-Session-Id": {"description": "the new session's id", "schema": {"type": "string"}}
            },
            "links": {
                "GetSession": _link(_SESSION_PATH, "get", "The new session's info"),
                "Screenshot": _link(f"{_SESSION_PATH}/screenshot", "get", "The new session's page"),
                "DeleteSession": _link(_SESSION_PATH, "delete", "End the new session"),
            },
        },
        **openapi_errors(
            InvalidRequest,
            Unauthorized,
            AccountNotFound,
            NotLoggedIn,
            RequestTimeout,
            PayloadTooLarge,
            UnsupportedMediaType,
            ValidationFailed,
            UserDataLocked,
            TooManySessions,
            ServiceError,
            SessionStartTimeout,
            SessionEndedByTimeout,
            RegistryUnavailable,
        ),
    },
    openapi_extra=_OPTIONAL_JSON_BODY,
    summary="Create a session on a copy of the master profile, proven logged in",
)
async def create_session(
    body: SessionRequest,
    sessions: Sessions,
    request: Request,
    response: Response,
    wait: Annotated[bool, Query(description="hold the response while the session lives")] = False,
) -> TikTokSessionResponse:
    session = await sessions.create(body.account)
    response.headers["X-Session-Id"] = session.id
    if await request.is_disconnected():
        # Nobody will ever learn this id: without this the session would hold a slot until it expires.
        await session.close(EndReason.CLIENT_GONE)
    elif wait:
        await _wait_for_end(session, request)
    return TikTokSessionResponse(
        session_id=session.id,
        end_reason=session.end_reason,
        **links.for_session(session, request).model_dump(),
    )


async def _wait_for_end(session: LiveSession, request: Request) -> None:
    """Wait mode: the answer is held until the session ends; a client that hangs up ends it."""
    client_gone = asyncio.create_task(_until_disconnected(request))
    ended = asyncio.create_task(session.ended.wait())
    try:
        await asyncio.wait([client_gone, ended], return_when=asyncio.FIRST_COMPLETED)
    finally:
        client_gone.cancel()
        ended.cancel()
    if not session.ended.is_set():
        await session.close(EndReason.CLIENT_GONE)
    timeouts = {EndReason.MAX_DURATION: session.max_duration, EndReason.IDLE: session.idle_timeout}
    if session.end_reason in timeouts:
        raise SessionEndedByTimeout(
            f"session {session.id} ended: {session.end_reason}",
            timeout=timeouts[session.end_reason],
            end_reason=session.end_reason,
            session_id=session.id,
        )


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@tiktok.get(
    "/session/{session_id}",
    response_model=SessionInfoResponse,
    responses={
        200: {
            "description": "The session's info",
            "links": {
                "Screenshot": _link(f"{_SESSION_PATH}/screenshot", "get", "The session's page"),
                "DeleteSession": _link(_SESSION_PATH, "delete", "End the session"),
            },
        },
        **_SESSION_ERRORS,
    },
)
async def get_session(session: AnySession, request: Request) -> SessionInfoResponse:
    return SessionInfoResponse(**links.describe(session, request).model_dump())


@tiktok.get(
    "/sessions",
    response_model=SessionListResponse,
    responses=openapi_errors(Unauthorized, RegistryUnavailable),
)
async def list_sessions(sessions: Sessions, request: Request) -> SessionListResponse:
    listed = await sessions.list_sessions()
    return SessionListResponse(sessions=[links.describe(session, request) for session in listed])


@tiktok.delete(
    "/session/{session_id}",
    response_model=SessionClosedResponse,
    responses={
        200: {
            "description": "Ended: browser closed, clone deleted",
            "links": {"GetSession": _link(_SESSION_PATH, "get", "An ended session: 404")},
        },
        **_SESSION_ERRORS,
    },
)
async def delete_session(session: LiveSessionDep) -> SessionClosedResponse:
    await session.close(EndReason.DELETED)
    return SessionClosedResponse(session_id=session.id)


@session_access.post(
    "/session/{session_id}/keepalive", response_model=SessionInfoResponse, responses=_SESSION_ERRORS
)
async def keep_alive(session: SessionWithToken, request: Request) -> SessionInfoResponse:
    return SessionInfoResponse(**links.describe(session, request).model_dump(), message="Idle timer reset")


@session_access.get(
    "/session/{session_id}/screenshot",
    response_class=Response,
    responses={
        200: {
            "content": {"image/png": {}},
            "description": "PNG of the active page",
            "links": {
                "GetSession": _link(_SESSION_PATH, "get", "The session's info", session_id=_FROM_PATH),
                "DeleteSession": _link(_SESSION_PATH, "delete", "End the session", session_id=_FROM_PATH),
            },
        },
        **_SESSION_ERRORS,
    },
)
async def screenshot(
    session: SessionWithToken,
    full_page: Annotated[bool, Query(description="the whole page, not only the viewport")] = False,
) -> Response:
    png = await session.screenshot(full_page=full_page)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@session_access.websocket("/session/{session_id}/cdp")
async def cdp(websocket: WebSocket, session_id: str) -> None:
    """The session's Chrome DevTools Protocol, relayed byte for byte (SPEC §8)."""
    access = await authorize_websocket(websocket, session_id, needed=Scope.CONTROL)
    if access is None:
        return
    if isinstance(access.session, SessionRecord):
        # Cluster mode: the owner's relay, through this instance's, byte for byte.
        await forwarding.to_owner(websocket, access.session)
    else:
        await access.session.attach(websocket)


router.include_router(tiktok)
router.include_router(session_access)
router.include_router(session_tools.router)
router.include_router(accounts.router)
router.include_router(accounts.login_done)
