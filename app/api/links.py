"""The URLs a client uses to reach a session: built on PUBLIC_URL, else on the request's own base URL.

Everything needed to reach a session is in its URLs (base + session id + token), so a router in front
of several instances can send each session's requests to the instance that owns it.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from starlette.requests import HTTPConnection

from app.api.state import app_state
from app.schemas.tiktok import SessionInfo, SessionLinks
from app.services.cluster.registry import SessionRecord
from app.services.tiktok.session import LiveSession


def public_base(connection: HTTPConnection) -> str:
    configured = app_state(connection.app).settings.PUBLIC_URL
    return configured or str(connection.base_url).rstrip("/")


def for_session(session: LiveSession | SessionRecord, connection: HTTPConnection) -> SessionLinks:
    if session.state != "live":
        return SessionLinks()
    base = urlsplit(public_base(connection))
    path = f"{base.path.rstrip('/')}/tiktok/session/{session.id}"
    ws_scheme = "wss" if base.scheme == "https" else "ws"
    return SessionLinks(
        # The control token drives the browser; the view_url's token only watches it (SPEC §11).
        cdp_url=urlunsplit((ws_scheme, base.netloc, f"{path}/cdp", f"token={session.token}", "")),
        view_url=view_url(session, connection, session.view_token),
    )


def view_url(session: LiveSession | SessionRecord, connection: HTTPConnection, token: str) -> str:
    base = urlsplit(public_base(connection))
    path = f"{base.path.rstrip('/')}/tiktok/session/{session.id}/view"
    return urlunsplit((base.scheme, base.netloc, path, f"token={token}", ""))


def describe(session: LiveSession | SessionRecord, connection: HTTPConnection) -> SessionInfo:
    return session.info().model_copy(update=for_session(session, connection).model_dump())
