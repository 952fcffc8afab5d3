"""Named dependencies: a route's signature reads like a sentence (`_: ApiKey, sessions: Sessions`)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader
from pydantic import ValidationError

from app.api.errors import validation_error
from app.core.errors import InvalidRequest, Unauthorized
from app.core.security import key_matches
from app.schemas.tiktok import TikTokSessionRequest
from app.services.tiktok.service import TiktokService

_header_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKeyHeader")
_cookie_scheme = APIKeyCookie(name="session_token", auto_error=False, scheme_name="SessionTokenCookie")

MAX_BODY_BYTES = 64 * 1024


def require_api_key(
    request: Request,
    header_key: Annotated[str | None, Security(_header_scheme)],
    cookie_key: Annotated[str | None, Security(_cookie_scheme)],
) -> str:
    accepted: tuple[str, ...] | None = request.app.state.api_keys
    if accepted is None:  # AUTH_DISABLED=true, warned about at start
        return "anonymous"
    for candidate in (header_key, cookie_key):
        if key_matches(candidate, accepted):
            return "client"
    raise Unauthorized("send a key from API_KEYS as X-API-Key header or session_token cookie")


def get_tiktok_service(request: Request) -> TiktokService:
    return request.app.state.tiktok_service


async def read_session_request(request: Request) -> TikTokSessionRequest:
    """The body is optional, so it is read by hand: empty → defaults; otherwise a JSON object."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return TikTokSessionRequest()
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


ApiKey = Annotated[str, Depends(require_api_key)]
Sessions = Annotated[TiktokService, Depends(get_tiktok_service)]
SessionRequest = Annotated[TikTokSessionRequest, Depends(read_session_request)]
