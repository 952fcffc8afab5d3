"""The URLs a client uses to reach a session: built on PUBLIC_URL, else on the request's own base URL.

Everything needed to reach a session is in its URLs (base + session id + token), so a router in front
of several instances can send each session's requests to the instance that owns it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.requests import HTTPConnection

from app.schemas.tiktok import SessionInfo, SessionLinks
from app.services.cluster.registry import SessionRecord
from app.services.tiktok.session import LiveSession


def public_base(connection: HTTPConnection) -> str:
    configured: str | None = connection.app.state.settings.PUBLIC_URL
    return configured or str(connection.base_url).rstrip("/")


def for_session(session: LiveSession | SessionRecord, connection: HTTPConnection) -> SessionLinks:
    if session.state != "live":
        return SessionLinks()
    base = urlsplit(public_base(connection))
    path = f"{base.path.rstrip('/')}/tiktok/session/{session.id}"
    query = f"token={session.token}"
    ws_scheme = "wss" if base.scheme == "https" else "ws"
    return SessionLinks(
        cdp_url=urlunsplit((ws_scheme, base.netloc, f"{path}/cdp", query, "")),
        view_url=urlunsplit((base.scheme, base.netloc, f"{path}/view", query, "")),
    )


def describe(session: LiveSession | SessionRecord, connection: HTTPConnection) -> SessionInfo:
    return session.info().model_copy(update=for_session(session, connection).model_dump())
