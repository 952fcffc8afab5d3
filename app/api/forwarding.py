"""Cluster mode: a request for a session that another instance owns is sent on to that instance (SPEC §10).

HTTP (DELETE, /keepalive, /screenshot, /view) is streamed through httpx, bytes as they come; the
WebSockets (/cdp, /view/stream) go through the same byte-for-byte relay that attaches clients to a
browser, with the owner's same route as its upstream. The client's own credentials (X-API-Key,
cookie, ?token=) travel with the request and the owner checks them as if the client had come to it
directly: the forwarding instance grants nothing. It adds a signature of its own (`X-Cluster-Peer`:
an HMAC of the request under a key every instance derives from the cluster's shared secrets), by
which the owner knows that a peer sent it and answers it itself instead of forwarding it on. The
client's Host header travels too, so the links the owner writes into its answer (keepalive info,
the live view) point at the instance the client reached.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import FastAPI, Request
from starlette.requests import HTTPConnection
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket

from app.api.errors import error_response
from app.api.state import app_state
from app.core.config import Settings
from app.core.errors import InstanceUnreachable, ServiceError, Unauthorized
from app.core.logging import current_request_id
from app.services.cluster.registry import SessionRecord
from app.services.common.cdp_relay import RelayHub

PEER_HEADER = "X-Cluster-Peer"
# A signature older than this is refused: instances keep their clocks in step (NTP) far better than this.
SIGNATURE_MAX_AGE = 60

# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones httpx and the server set themselves.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        PEER_HEADER.lower(),
        # Each instance's request log adds its own; the forwarded request carries the same id.
        "x-request-id",
    }
)
# What an owner's /cdp needs of the client's handshake: its credentials.
_WEBSOCKET_CREDENTIALS = ("x-api-key", "cookie")

# A screenshot of a large page takes seconds (the session allows 10); a DELETE waits for the browser.
_TIMEOUT = httpx.Timeout(60.0, connect=5.0)


class ForeignSession(Exception):
    """Raised by a dependency when the session lives on another instance; answered by forwarding it."""

    def __init__(self, record: SessionRecord):
        super().__init__(record.id)
        self.record = record


def _peer_key(settings: Settings) -> bytes:
    """What every instance of one cluster shares: its API keys and its Redis password."""
    keys = sorted(key.get_secret_value() for key in settings.API_KEYS)
    redis_url = settings.REDIS_URL.get_secret_value() if settings.REDIS_URL else ""
    material = "\0".join(["tiktok-cluster-peer", urlsplit(redis_url).password or "", *keys])
    return hashlib.sha256(material.encode()).digest()


class Forwarder:
    """Sends requests for another instance's sessions to it; one per instance, for the app's life."""

    def __init__(self, settings: Settings) -> None:
        self._key = _peer_key(settings)
        # trust_env=False: instances talk directly, never through an HTTP(S)_PROXY from the environment.
        self._http = httpx.AsyncClient(timeout=_TIMEOUT, trust_env=False, follow_redirects=False)
        self.relays = RelayHub()

    async def aclose(self) -> None:
        await self.relays.close_all()
        await self._http.aclose()

    def sign(self, method: str, path: str, now: int | None = None) -> str:
        stamp = str(int(time.time()) if now is None else now)
        mac = hmac.new(self._key, f"{stamp}\n{method}\n{path}".encode(), hashlib.sha256).hexdigest()
        return f"{stamp}.{mac}"

    def verify(self, signature: str, method: str, path: str) -> bool:
        stamp, _, _mac = signature.partition(".")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > SIGNATURE_MAX_AGE:
            return False
        return hmac.compare_digest(signature, self.sign(method, path, int(stamp)))

    async def http(self, request: Request, record: SessionRecord) -> Response:
        path = request.url.path
        headers = [(name, value) for name, value in request.headers.items() if name not in _HOP_BY_HOP]
        headers += [(PEER_HEADER, self.sign(request.method, path)), ("x-request-id", _request_id())]
        upstream_request = self._http.build_request(
            request.method,
            _owner_url(record, path, request.url.query),
            headers=headers,
            # None of the forwarded routes reads a body: none is buffered here or sent on.
            content=b"",
        )
        try:
            upstream = await self._http.send(upstream_request, stream=True)
        except httpx.TransportError as error:
            raise InstanceUnreachable(f"{record.owner_url} did not answer ({type(error).__name__})") from None
        response = StreamingResponse(_body_of(upstream), status_code=upstream.status_code)
        # As the owner sent them (content-encoding included: the body is relayed undecoded).
        response.raw_headers = [
            (name, value)
            for name, value in upstream.headers.raw
            if name.decode("latin-1").lower() not in _HOP_BY_HOP
        ]
        if "content-length" in upstream.headers:
            response.raw_headers.append((b"content-length", upstream.headers["content-length"].encode()))
        return response

    async def websocket(self, client: WebSocket, record: SessionRecord) -> None:
        """Relay the (authorized, not yet accepted) client to the same route of the session's owner."""
        path = client.url.path
        headers = {name: client.headers[name] for name in _WEBSOCKET_CREDENTIALS if name in client.headers}
        headers[PEER_HEADER] = self.sign("GET", path)
        headers["x-request-id"] = _request_id()
        await self.relays.relay(
            client, _owner_url(record, path, client.url.query, ws=True), upstream_headers=headers
        )


async def _body_of(upstream: httpx.Response) -> AsyncIterator[bytes]:
    # The owner's connection goes back to the pool however the stream ends (a client leaving included).
    try:
        async for chunk in upstream.aiter_raw():
            yield chunk
    finally:
        await upstream.aclose()


def _owner_url(record: SessionRecord, path: str, query: str, ws: bool = False) -> str:
    base = urlsplit(record.owner_url)
    scheme = ("wss" if base.scheme == "https" else "ws") if ws else base.scheme
    return urlunsplit((scheme, base.netloc, base.path.rstrip("/") + path, query, ""))


def _request_id() -> str:
    return current_request_id.get() or ""


def from_peer(connection: HTTPConnection) -> bool:
    """True when another instance forwarded this request (then it is answered here, never sent on).

    A request that claims to come from a peer with a signature that does not verify is refused.
    """
    signature = connection.headers.get(PEER_HEADER)
    forwarder = app_state(connection.app).forwarder
    if signature is None or forwarder is None:  # a single instance has no peers: the header means nothing
        return False
    method = connection.scope.get("method", "GET")
    if not forwarder.verify(signature, method, connection.url.path):
        raise Unauthorized(f"the {PEER_HEADER} signature is not valid")
    return True


async def _forward(request: Request, error: Exception) -> Response:
    assert isinstance(error, ForeignSession)
    forwarder = app_state(request.app).forwarder
    assert forwarder is not None, "a ForeignSession is raised in cluster mode only"
    try:
        return await forwarder.http(request, error.record)
    except ServiceError as failed:
        # Raised inside an exception handler, it would reach no other handler.
        return error_response(failed)


async def to_owner(client: WebSocket, record: SessionRecord) -> None:
    """A WebSocket (CDP, the live view's stream) for another instance's session: relayed to its owner."""
    forwarder = app_state(client.app).forwarder
    assert forwarder is not None, "another instance's session exists in cluster mode only"
    await forwarder.websocket(client, record)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ForeignSession, _forward)
