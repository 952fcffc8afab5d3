"""Named dependencies: a route's signature reads like a sentence (`session: SessionWithToken`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request, Security, WebSocket
from fastapi.security import APIKeyCookie, APIKeyHeader, APIKeyQuery
from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection

from app.api import forwarding
from app.api.bodies import read_bounded
from app.api.errors import error_response, validation_error
from app.api.state import app_state
from app.core.errors import (
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    ServiceError,
    SessionNotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from app.core.security import key_matches
from app.schemas.tiktok import TikTokSessionRequest
from app.services.cluster.registry import SessionRecord
from app.services.common.access import Scope
from app.services.tiktok.service import TiktokService
from app.services.tiktok.session import LiveSession

logger = logging.getLogger(__name__)

_header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader")
_cookie_scheme = APIKeyCookie(name="session_token", auto_error=False, scheme_name="SessionTokenCookie")
_token_scheme = APIKeyQuery(name="token", auto_error=False, scheme_name="SessionToken")

MAX_BODY_BYTES = 64 * 1024
HeaderKey = Annotated[str | None, Security(_header_scheme)]
CookieKey = Annotated[str | None, Security(_cookie_scheme)]
SessionTokenParam = Annotated[str | None, Security(_token_scheme)]


def has_api_key(connection: HTTPConnection, header_key: str | None, cookie_key: str | None) -> bool:
    accepted = app_state(connection.app).api_keys
    if accepted is None:  # AUTH_DISABLED=true, warned about at start
        return True
    return any(key_matches(candidate, accepted) for candidate in (header_key, cookie_key))


async def require_api_key(connection: HTTPConnection, header_key: HeaderKey, cookie_key: CookieKey) -> None:
    if not has_api_key(connection, header_key, cookie_key):
        raise Unauthorized("send a key from API_KEYS as X-API-Key header or session_token cookie")


async def get_tiktok_service(connection: HTTPConnection) -> TiktokService:
    return app_state(connection.app).tiktok_service


Sessions = Annotated[TiktokService, Depends(get_tiktok_service)]


async def get_live_session(session_id: str, connection: HTTPConnection, sessions: Sessions) -> LiveSession:
    """The session named in the path, live; every API call for it counts as activity.

    Cluster mode: another instance's session is forwarded to its owner, which answers the request.
    """
    session = await sessions.locate(session_id, here_only=await forwarding.from_peer(connection))
    if isinstance(session, SessionRecord):
        raise forwarding.ForeignSession(session)
    session.touch()
    return session


async def get_any_session(session_id: str, sessions: Sessions) -> LiveSession | SessionRecord:
    """GET of one session: this instance's, or (cluster mode) the registry's record of another's."""
    session = await sessions.locate(session_id)
    if isinstance(session, LiveSession):
        session.touch()
    return session


@dataclass(frozen=True)
class Access:
    """What one caller may do with one session, as `authorize` decided it."""

    session: LiveSession | SessionRecord
    scope: Scope
    # The session token it was granted by; None for an API key.
    token: str | None

    def still_granted(self) -> bool:
        """Whether the credential still works: a view link expires, or is revoked, while its view is open."""
        return self.token is None or self.session.scope_of(self.token) is not None


async def authorize(
    connection: HTTPConnection,
    sessions: TiktokService,
    session_id: str,
    header_key: str | None,
    cookie_key: str | None,
    token: str | None,
    needed: Scope = Scope.CONTROL,
) -> Access:
    """A session's own routes: what this caller may do with the session, checked against `needed`.

    An API key may do everything; the session's control token everything with this session; a view
    token only watch it (SPEC §11). Another instance's session (a record) is checked here with the
    tokens the registry holds, so a refused WebSocket is refused before its upgrade, and again by the
    owner the request is forwarded to. Watching (`needed` VIEW) is not activity for the idle timeout.
    """
    key_ok = has_api_key(connection, header_key, cookie_key)
    if not key_ok and not token:
        raise Unauthorized("send an API key, or this session's token as ?token=")
    session: LiveSession | SessionRecord | None
    try:
        session = await sessions.locate(session_id, here_only=await forwarding.from_peer(connection))
    except SessionNotFound:
        session = None  # answered below, after the token check
    scope = Scope.CONTROL if key_ok else None
    if scope is None and session is not None:
        scope = session.scope_of(token)
    if scope is None:
        # The same answer whether the session exists or not: a token must not probe for ids.
        raise Unauthorized("the token is not this session's (or the session has ended)")
    if session is None:
        raise SessionNotFound(f"no live session with id {session_id}")
    if not scope.allows(needed):
        raise Forbidden("a view link only opens the live view; use the cdp_url token or an API key")
    if isinstance(session, LiveSession) and needed is not Scope.VIEW:
        session.touch()
    return Access(session=session, scope=scope, token=None if key_ok else token)


async def authorize_websocket(websocket: WebSocket, session_id: str, needed: Scope) -> Access | None:
    """A session's WebSocket (CDP, the live view's stream): the caller's access, or None once refused.

    Refused before the upgrade, with the service's error envelope as the HTTP answer: a refused client
    never reaches the browser. Every such connection counts against MAX_RELAYS_PER_SESSION.
    """
    try:
        access = await authorize(
            websocket,
            app_state(websocket.app).tiktok_service,
            session_id,
            websocket.headers.get("x-api-key"),
            websocket.cookies.get("session_token"),
            websocket.query_params.get("token"),
            needed,
        )
        if isinstance(access.session, LiveSession):
            access.session.check_relay_room()
    except ServiceError as refused:
        await websocket.send_denial_response(error_response(refused))
        return None
    except Exception:
        # The HTTP error handlers do not cover a WebSocket before its upgrade: answer the envelope here.
        logger.exception(
            "websocket.refused_by_error", extra={"session_id": session_id, "path": websocket.url.path}
        )
        unexpected = ServiceError("unexpected error; see the service log")
        await websocket.send_denial_response(error_response(unexpected))
        return None
    return access


def access_with(needed: Scope) -> Callable[..., Awaitable[Access]]:
    """A dependency: the caller's access to the session in the path, which must allow `needed`."""

    async def dependency(
        session_id: str,
        connection: HTTPConnection,
        sessions: Sessions,
        header_key: HeaderKey,
        cookie_key: CookieKey,
        token: SessionTokenParam,
    ) -> Access:
        access = await authorize(connection, sessions, session_id, header_key, cookie_key, token, needed)
        if isinstance(access.session, SessionRecord):
            raise forwarding.ForeignSession(access.session)
        return access

    return dependency


def session_with(needed: Scope) -> Callable[..., Awaitable[LiveSession]]:
    """A dependency: the session in the path, for a caller allowed `needed` on it."""

    # `Depends` as the default, not in `Annotated`: this module's annotations are strings (the
    # `__future__` import), resolved in its globals, where a dependency made here has no name.
    async def dependency(access: Access = Depends(access_with(needed))) -> LiveSession:
        assert isinstance(access.session, LiveSession), "access_with forwards another instance's session"
        return access.session

    return dependency


LiveSessionDep = Annotated[LiveSession, Depends(get_live_session)]
AnySession = Annotated[LiveSession | SessionRecord, Depends(get_any_session)]
# The control token or an API key: CDP, screenshot, downloads, files, keepalive, view links.
SessionWithToken = Annotated[LiveSession, Depends(session_with(Scope.CONTROL))]
# Any of the session's tokens: the live view and its pictures.
ViewedSession = Annotated[LiveSession, Depends(session_with(Scope.VIEW))]
# An interactive view token (or better): what the person logging an account in holds.
InteractiveSession = Annotated[LiveSession, Depends(session_with(Scope.INTERACTIVE_VIEW))]
# …and what the caller may do there (watch, or also drive).
ViewAccess = Annotated[Access, Depends(access_with(Scope.VIEW))]


async def _read_body_bounded(request: Request) -> bytes:
    return await read_bounded(
        request, MAX_BODY_BYTES, PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    )


Body = TypeVar("Body", bound=BaseModel)


async def read_json_body(request: Request, model: type[Body]) -> Body:
    """An optional JSON object body: empty → the model's defaults; otherwise validated against it."""
    raw = await _read_body_bounded(request)
    if not raw.strip():
        return model()
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"the body is {media_type}; send application/json (or no body)")
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidRequest("the body is not valid JSON; send nothing or a JSON object such as {}") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object such as {}")
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise validation_error(list(error.errors())) from None


async def read_session_request(request: Request) -> TikTokSessionRequest:
    """The body is optional, so it is read by hand: empty → defaults; otherwise a JSON object."""
    return await read_json_body(request, TikTokSessionRequest)


SessionRequest = Annotated[TikTokSessionRequest, Depends(read_session_request)]
