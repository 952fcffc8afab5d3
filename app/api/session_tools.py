"""A session's own tools (SPEC §11, §13): the live view, view links, downloads and uploads.

Every route here is reached with an API key or one of the session's tokens; what a token may do is
decided by `deps.authorize` (control token: everything; view token: the view alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, WebSocket
from fastapi.responses import FileResponse, HTMLResponse

from app.api import forwarding, links
from app.api.deps import (
    SessionWithToken,
    ViewAccess,
    ViewedSession,
    authorize_websocket,
    read_json_body,
)
from app.api.errors import openapi_errors
from app.api.live_view import render_view
from app.core.errors import (
    FileNotInSession,
    Forbidden,
    InstanceUnreachable,
    InvalidFileName,
    PayloadTooLarge,
    RequestTimeout,
    SessionNotFound,
    Unauthorized,
    ValidationFailed,
)
from app.schemas.tiktok import (
    DownloadItem,
    DownloadListResponse,
    UploadResponse,
    ViewLinkRequest,
    ViewLinkResponse,
    ViewLinksRevokedResponse,
)
from app.services.cluster.registry import SessionRecord
from app.services.common.access import Scope
from app.services.common.files import UploadTooLarge, is_plain_name
from app.services.tiktok.session import SessionPurpose

router = APIRouter(prefix="/tiktok/session/{session_id}", tags=["session tools"])

_ERRORS = openapi_errors(Unauthorized, Forbidden, SessionNotFound, ValidationFailed, InstanceUnreachable)
# A client that stops sending an upload must not hold it open for ever; a chunk may take this long.
UPLOAD_CHUNK_TIMEOUT = 30.0


@router.get("/view", response_class=HTMLResponse, responses=_ERRORS, summary="The live view (people)")
async def live_view(access: ViewAccess, request: Request) -> HTMLResponse:
    # An API key (header or cookie) opens everything; a token opens what its scope allows.
    session = access.session
    # A remote login (SPEC §13) ends with the person's Done: relative to this page, like its stream.
    done_url = "done" if session.purpose is SessionPurpose.LOGIN else None
    page = render_view(
        links.describe(session, request), token=access.token, scope=access.scope, done_url=done_url
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@router.websocket("/view/stream")
async def view_stream(websocket: WebSocket, session_id: str) -> None:
    """The live view's stream (SPEC §13): the page's screencast out, a person's input in.

    Any of the session's tokens (or an API key) watches; input needs an interactive link or more.
    Counted with the CDP connections against MAX_RELAYS_PER_SESSION; refused before the upgrade.
    """
    access = await authorize_websocket(websocket, session_id, needed=Scope.VIEW)
    if access is None:
        return
    if isinstance(access.session, SessionRecord):
        await forwarding.to_owner(websocket, access.session)
    else:
        await access.session.watch(websocket, access.scope, access.still_granted)


@router.get(
    "/view/frame",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The active page now"}, **_ERRORS},
    summary="The live view's picture (any of the session's tokens)",
)
async def view_frame(session: ViewedSession) -> Response:
    # Watching is not activity: only input through an interactive view keeps an idle session alive.
    png = await session.screenshot()
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post(
    "/view-links",
    response_model=ViewLinkResponse,
    responses=_ERRORS,
    summary="Mint a view link (view-only or interactive) with its own expiry",
)
async def create_view_link(session: SessionWithToken, request: Request) -> ViewLinkResponse:
    body = await read_json_body(request, ViewLinkRequest)
    # The default ttl (600 s, SPEC §11) outlasts the default MAX_SESSION_DURATION (300 s): a ttl the
    # client did not name is cut to fit; one it named too long is refused.
    ttl = body.ttl if "ttl" in body.model_fields_set else min(body.ttl, session.max_duration)
    if ttl > session.max_duration:
        raise ValidationFailed(f"ttl: at most MAX_SESSION_DURATION ({session.max_duration:g} s)")
    link = session.tokens.mint(interactive=body.interactive, ttl=ttl)
    return ViewLinkResponse(
        url=links.view_url(session, request, link.token),
        interactive=link.interactive,
        expires_at=link.expires_at,
    )


@router.delete(
    "/view-links",
    response_model=ViewLinksRevokedResponse,
    responses=_ERRORS,
    summary="Revoke every view link of the session (open views close)",
)
async def revoke_view_links(session: SessionWithToken, request: Request) -> ViewLinksRevokedResponse:
    session.tokens.revoke_views()
    return ViewLinksRevokedResponse(
        session_id=session.id, view_url=links.view_url(session, request, session.view_token)
    )


@router.get("/downloads", response_model=DownloadListResponse, responses=_ERRORS)
async def list_downloads(session: SessionWithToken) -> DownloadListResponse:
    found = await session.downloads()
    return DownloadListResponse(
        downloads=[DownloadItem(name=d.name, size=d.size, created_at=d.created_at) for d in found]
    )


@router.get(
    "/downloads/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        **openapi_errors(FileNotInSession),
        **_ERRORS,
    },
)
async def get_download(session: SessionWithToken, name: str) -> FileResponse:
    path = session.download_path(name)
    return FileResponse(path, filename=name, media_type="application/octet-stream")


@router.post(
    "/files",
    response_model=UploadResponse,
    responses=openapi_errors(
        PayloadTooLarge, RequestTimeout, InvalidFileName, Unauthorized, Forbidden, SessionNotFound
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    summary="Put a file where the session's browser can upload it",
)
async def upload_file(
    session: SessionWithToken,
    request: Request,
    # No min_length: an empty name is refused by the one name check below, with INVALID_FILE_NAME.
    name: Annotated[str, Query(description="the file's name, e.g. video.mp4")],
) -> UploadResponse:
    if not is_plain_name(name):
        raise InvalidFileName(f"{name!r} is not a plain file name")
    limit = session.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the file is larger than {limit} bytes (MAX_UPLOAD_BYTES)", limit=limit)
    try:
        path, size = await session.store_upload(name, _chunks(request))
    except UploadTooLarge:
        raise PayloadTooLarge(
            f"the file is larger than {limit} bytes (MAX_UPLOAD_BYTES)", limit=limit
        ) from None
    except TimeoutError:
        raise RequestTimeout(f"no part of the file arrived for {UPLOAD_CHUNK_TIMEOUT:g} s") from None
    session.touch()
    return UploadResponse(path=path, size=size)


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(UPLOAD_CHUNK_TIMEOUT):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        yield chunk
