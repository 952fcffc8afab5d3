"""Named dependencies: a route's signature reads like a sentence (`session: SessionWithToken`)."""

from __future__ import annotations

import hmac
import json
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader, APIKeyQuery
from pydantic import ValidationError
from starlette.requests import HTTPConnection

from app.api.errors import validation_error
from app.core.errors import InvalidRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from app.core.security import key_matches
from app.schemas.tiktok import TikTokSessionRequest
from app.services.tiktok.service import TiktokService
from app.services.tiktok.session import LiveSession

_header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader")
_cookie_scheme = APIKeyCookie(name="session_token", auto_error=False, scheme_name="SessionTokenCookie")
_token_scheme = APIKeyQuery(name="token", auto_error=False, scheme_name="SessionToken")

MAX_BODY_BYTES = 64 * 1024

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


async def get_live_session(session_id: str, sessions: Sessions) -> LiveSession:
    """The session named in the path, live; every API call for it counts as activity."""
    session = sessions.get(session_id)
    session.touch()
    return session


def authorize_session(
    connection: HTTPConnection,
    sessions: TiktokService,
    session_id: str,
    header_key: str | None,
    cookie_key: str | None,
    token: str | None,
) -> LiveSession:
    """A session's own routes: an API key, or that session's token (useless for any other session)."""
    key_ok = has_api_key(connection, header_key, cookie_key)
    if not key_ok and not token:
        raise Unauthorized("send an API key, or this session's token as ?token=")
    session = sessions.find(session_id)
    token_ok = session is not None and token is not None and hmac.compare_digest(token, session.token)
    if not (key_ok or token_ok):
        # The same answer whether the session exists or not: a token must not probe for ids.
        raise Unauthorized("the token is not this session's (or the session has ended)")
    session = sessions.get(session_id)
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
    return authorize_session(connection, sessions, session_id, header_key, cookie_key, token)


LiveSessionDep = Annotated[LiveSession, Depends(get_live_session)]
SessionWithToken = Annotated[LiveSession, Depends(get_session_with_token)]


async def read_session_request(request: Request) -> TikTokSessionRequest:
    """The body is optional, so it is read by hand: empty → defaults; otherwise a JSON object."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
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
