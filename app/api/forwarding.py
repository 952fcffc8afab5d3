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

The signature (SPEC §10) covers the method, the path, the query as sent, a SHA-256 of the body and a
one-time nonce, inside a window of SIGNATURE_WINDOW seconds. The owner claims the nonce in Redis (SET NX,
shared by every instance), so a captured signature is refused when sent again, to any instance, and is
worth nothing for another request. A body travels with the request (the JSON of /view-links, a small file
for /files) up to MAX_FORWARDED_BODY: the owner checks its digest before any route reads it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import FastAPI, Request
from starlette.requests import HTTPConnection
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket

from app.api.bodies import read_bounded
from app.api.errors import error_response
from app.api.state import app_state
from app.core.config import Settings
from app.core.errors import (
    InstanceUnreachable,
    PayloadTooLarge,
    ServiceError,
    Unauthorized,
)
from app.core.logging import current_request_id
from app.services.cluster.registry import SessionRecord
from app.services.common.cdp_relay import RelayHub

PEER_HEADER = "X-Cluster-Peer"
# A signature is accepted from SIGNATURE_AHEAD s before its time stamp (the signer's clock may be ahead of
# the owner's) to SIGNATURE_MAX_AGE s after it: a window of SIGNATURE_WINDOW s. Instances keep their clocks
# in step (NTP) far better than this, and a forwarded request reaches its owner in milliseconds.
SIGNATURE_AHEAD = 5
SIGNATURE_MAX_AGE = 25
SIGNATURE_WINDOW = SIGNATURE_AHEAD + SIGNATURE_MAX_AGE
# A used nonce is remembered while any instance could still accept its signature: the window, and as
# much again for instances whose clocks differ from the first one's by up to SIGNATURE_AHEAD either way.
NONCE_TTL = SIGNATURE_WINDOW + 2 * SIGNATURE_AHEAD
# Strict forms (ASCII only): `str.isdigit` takes "²", and `hmac.compare_digest` raises on non-ASCII text.
_STAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[0-9a-f]{32}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
# The largest body sent on to an owner: the JSON bodies' own limit. The owner checks a body's digest before
# a route reads it, so a forwarded body is held in memory on both sides; a larger upload goes to the owner
# directly (413 here).
MAX_FORWARDED_BODY = 64 * 1024

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


class NonceStore(Protocol):
    """Where the cluster remembers the nonces it has accepted (the registry, in Redis)."""

    async def claim_nonce(self, nonce: str, ttl: float) -> bool: ...


@dataclass(frozen=True)
class PeerSignature:
    """`X-Cluster-Peer: <time stamp>.<nonce>.<body sha256>.<hmac>`."""

    stamp: int
    nonce: str
    body_digest: str
    mac: str

    @classmethod
    def parse(cls, header: str) -> PeerSignature | None:
        parts = header.split(".")
        if len(parts) != 4:
            return None
        stamp, nonce, body_digest, mac = parts
        if not (
            _STAMP.fullmatch(stamp)
            and _NONCE.fullmatch(nonce)
            and _DIGEST.fullmatch(body_digest)
            and _DIGEST.fullmatch(mac)
        ):
            return None
        return cls(int(stamp), nonce, body_digest, mac)

    def __str__(self) -> str:
        return f"{self.stamp}.{self.nonce}.{self.body_digest}.{self.mac}"


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
    """Sends requests for another instance's sessions to it, and checks the ones peers send here; one per
    instance, for the app's life."""

    def __init__(self, settings: Settings, nonces: NonceStore) -> None:
        self._key = _peer_key(settings)
        self._nonces = nonces
        # trust_env=False: instances talk directly, never through an HTTP(S)_PROXY from the environment.
        self._http = httpx.AsyncClient(timeout=_TIMEOUT, trust_env=False, follow_redirects=False)
        self.relays = RelayHub()

    async def aclose(self) -> None:
        await self.relays.close_all()
        await self._http.aclose()

    def _mac(self, stamp: int, nonce: str, method: str, path: str, query: str, body_digest: str) -> str:
        signed = "\n".join(["tiktok-cluster-peer/2", str(stamp), nonce, method, path, query, body_digest])
        return hmac.new(self._key, signed.encode(), hashlib.sha256).hexdigest()

    def sign(self, method: str, path: str, query: str, body: bytes, now: float | None = None) -> str:
        """A one-time signature of this request: `query` exactly as sent (no leading "?")."""
        stamp = int(time.time() if now is None else now)
        nonce = secrets.token_hex(16)
        body_digest = hashlib.sha256(body).hexdigest()
        mac = self._mac(stamp, nonce, method, path, query, body_digest)
        return str(PeerSignature(stamp, nonce, body_digest, mac))

    async def verify(
        self,
        header: str,
        method: str,
        path: str,
        query: str,
        body: Callable[[], Awaitable[bytes]],
        now: float | None = None,
    ) -> None:
        """Unauthorized unless the header signs this very request, inside its window, for the first time.

        The cheap checks first; the body is read only for a signature that holds, and the nonce is claimed
        (a write to Redis) only for a request that is entirely what was signed.
        """
        signature = PeerSignature.parse(header)
        if signature is None:
            raise Unauthorized(f"the {PEER_HEADER} signature is not valid")
        age = (time.time() if now is None else now) - signature.stamp
        if not -SIGNATURE_AHEAD <= age <= SIGNATURE_MAX_AGE:
            raise Unauthorized(f"the {PEER_HEADER} signature is outside its {SIGNATURE_WINDOW} s window")
        expected = self._mac(signature.stamp, signature.nonce, method, path, query, signature.body_digest)
        if not hmac.compare_digest(signature.mac, expected):
            raise Unauthorized(f"the {PEER_HEADER} signature does not sign this request")
        if not hmac.compare_digest(hashlib.sha256(await body()).hexdigest(), signature.body_digest):
            raise Unauthorized(f"the {PEER_HEADER} signature does not sign this body")
        if not await self._nonces.claim_nonce(signature.nonce, NONCE_TTL):
            raise Unauthorized(f"the {PEER_HEADER} signature was used already")

    async def http(self, request: Request, record: SessionRecord) -> Response:
        path = request.url.path
        body = await _client_body(request)
        headers = [(name, value) for name, value in request.headers.items() if name not in _HOP_BY_HOP]
        headers.append(("x-request-id", _request_id()))
        upstream_request = self._http.build_request(
            request.method, _owner_url(record, path, request.url.query), headers=headers, content=body
        )
        # Signed over the query as httpx puts it on the wire, which is what the owner reads.
        sent_query = upstream_request.url.query.decode("ascii")
        upstream_request.headers[PEER_HEADER] = self.sign(request.method, path, sent_query, body)
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
        headers[PEER_HEADER] = self.sign("GET", path, client.url.query, b"")
        headers["x-request-id"] = _request_id()
        await self.relays.relay(
            client, _owner_url(record, path, client.url.query, ws=True), upstream_headers=headers
        )


async def _client_body(request: Request) -> bytes:
    """The client's body, to send on; refused as soon as it is known to be too large or too slow."""
    return await read_bounded(
        request,
        MAX_FORWARDED_BODY,
        PayloadTooLarge(
            f"a body for a session of another instance is sent on up to {MAX_FORWARDED_BODY} bytes; "
            "send a larger one to the instance that owns the session"
        ),
    )


async def _peer_body(connection: HTTPConnection) -> bytes:
    """The body a peer sent, for its digest: a WebSocket has none; a forwarded HTTP body comes whole (with
    a Content-Length, never over MAX_FORWARDED_BODY). Read once, it is what the route reads after."""
    if not isinstance(connection, Request):
        return b""
    declared = connection.headers.get("content-length", "0")
    if "transfer-encoding" in connection.headers or not declared.isascii() or not declared.isdigit():
        raise Unauthorized(f"a request signed with {PEER_HEADER} carries a Content-Length")
    if int(declared) > MAX_FORWARDED_BODY:
        raise Unauthorized(
            f"a request signed with {PEER_HEADER} has a body of {MAX_FORWARDED_BODY} bytes at most"
        )
    return await connection.body()


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


# Where a request's verified signature is remembered: its nonce is spent at the first check.
_VERIFIED = "tiktok.cluster_peer_verified"


async def from_peer(connection: HTTPConnection) -> bool:
    """True when another instance forwarded this request (then it is answered here, never sent on).

    A request that claims to come from a peer with a signature that does not verify is refused.
    """
    signature = connection.headers.get(PEER_HEADER)
    forwarder = app_state(connection.app).forwarder
    if signature is None or forwarder is None:  # a single instance has no peers: the header means nothing
        return False
    if connection.scope.get(_VERIFIED):
        return True
    await forwarder.verify(
        signature,
        connection.scope.get("method", "GET"),
        connection.url.path,
        connection.scope["query_string"].decode("latin-1"),
        lambda: _peer_body(connection),
    )
    connection.scope[_VERIFIED] = True
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
