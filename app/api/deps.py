"""Named dependencies: a route's signature reads like a sentence (`session: SessionWithToken`)."""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, APIKeyQuery
from pydantic import ValidationError
from starlette.requests import HTTPConnection

from app.api import forwarding
from app.api.errors import validation_error
from app.core.errors import (
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    SessionNotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from app.core.security import key_matches
from app.schemas.tiktok import TikTokSessionRequest
from app.services.cluster.registry import SessionRecord
from app.services.tiktok.service import TiktokService
from app.services.tiktok.session import LiveSession

_header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader")
_cookie_scheme = APIKeyCookie(name="session_token", auto_error=False, scheme_name="SessionTokenCookie")
_token_scheme = APIKeyQuery(name="token", auto_error=False, scheme_name="SessionToken")

MAX_BODY_BYTES = 64 * 1024
# A client trickling its body must not hold a request open for ever (a session start never needs one).
BODY_TIMEOUT = 10.0

HeaderKey = Annotated[str | None, Security(_header_scheme)]
CookieKey = Annotated[str | None, Security(_cookie_scheme)]
SessionTokenParam = Annotated[str | None, Security(_token_scheme)]


def has_api_key(connection: HTTPConnection, header_key: str | None, cookie_key: str | None) -> bool:
    accepted: tuple[str, ...] | None = connection.app.state.api_keys
    if accepted is None:  # AUTH_DISABLED=true, warned about at start
        return True
    return any(key_matches(candidate, accepted) for candidate in (header_key, cookie_key))


async def require_api_key(connection: HTTPConnection, header_key: HeaderKey, cookie_key: CookieKey) -> None:
    if not has_api_key(connection, header_key, cookie_key):
        raise Unauthorized("send a key from API_KEYS as X-API-Key header or session_token cookie")


async def get_tiktok_service(connection: HTTPConnection) -> TiktokService:
    return connection.app.state.tiktok_service


Sessions = Annotated[TiktokService, Depends(get_tiktok_service)]


async def get_live_session(session_id: str, connection: HTTPConnection, sessions: Sessions) -> LiveSession:
    """The session named in the path, live; every API call for it counts as activity.

    Cluster mode: another instance's session is forwarded to its owner, which answers the request.
    """
    session = await sessions.locate(session_id, here_only=forwarding.from_peer(connection))
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


async def authorize_session(
    connection: HTTPConnection,
    sessions: TiktokService,
    session_id: str,
    header_key: str | None,
    cookie_key: str | None,
    token: str | None,
) -> LiveSession | SessionRecord:
    """A session's own routes: an API key, or that session's token (useless for any other session).

    Another instance's session (a record) is checked the same way here, so a refused WebSocket is
    refused before its upgrade, and again by the owner the request is forwarded to.
    """
    key_ok = has_api_key(connection, header_key, cookie_key)
    if not key_ok and not token:
        raise Unauthorized("send an API key, or this session's token as ?token=")
    session = await sessions.find_anywhere(session_id, here_only=forwarding.from_peer(connection))
    # Bytes: compare_digest refuses non-ASCII text, and a client may send any characters.
    token_ok = (
        session is not None
        and token is not None
        and hmac.compare_digest(token.encode(), session.token.encode())
    )
    if not (key_ok or token_ok):
        # The same answer whether the session exists or not: a token must not probe for ids.
        raise Unauthorized("the token is not this session's (or the session has ended)")
    if session is None:
        raise SessionNotFound(f"no live session with id {session_id}")
    if isinstance(session, LiveSession):
        session.touch()
    return session


async def get_session_with_token(
    session_id: str,
    connection: HTTPConnection,
    sessions: Sessions,
    header_key: HeaderKey,
    cookie_key: CookieKey,
    token: SessionTokenParam,
) -> LiveSession:
    session = await authorize_session(connection, sessions, session_id, header_key, cookie_key, token)
    if isinstance(session, SessionRecord):
        raise forwarding.ForeignSession(session)
    return session


LiveSessionDep = Annotated[LiveSession, Depends(get_live_session)]
AnySession = Annotated[LiveSession | SessionRecord, Depends(get_any_session)]
SessionWithToken = Annotated[LiveSession, Depends(get_session_with_token)]


async def _read_body_bounded(request: Request) -> bytes:
    """The body, refused as soon as it is known to be too large or too slow: never buffered unbounded."""
    too_large = PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {BODY_TIMEOUT:g} s") from None
    return b"".join(chunks)


async def read_session_request(request: Request) -> TikTokSessionRequest:
    """The body is optional, so it is read by hand: empty → defaults; otherwise a JSON object."""
    raw = await _read_body_bounded(request)
    if not raw.strip():
        return TikTokSessionRequest()
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
        return TikTokSessionRequest.model_validate(payload)
    except ValidationError as error:
        raise validation_error(list(error.errors())) from None


SessionRequest = Annotated[TikTokSessionRequest, Depends(read_session_request)]
