"""A sandboxed browser's one way out: a SOCKS5 gate on a unix socket that checks every connection.

The browser's network namespace has nothing but its own loopback; Chromium is told to use SOCKS5
(remote name resolution), so each connection it makes arrives here as a host name or address and a
port. The gate resolves the name itself, refuses loopback, link-local (cloud metadata), unspecified and
multicast addresses and `BROWSER_BLOCKED_HOSTS` — except `TIKTOK_URL`'s own origin, which may live on
loopback in tests — and connects to the very address it checked, so a name that resolves differently
a second later (DNS rebinding) gains nothing. With an upstream proxy (`PROXY`) the gate tunnels through
it; the proxy's credentials never enter the sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

logger = logging.getLogger(__name__)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CONNECT_TIMEOUT = 10.0  # seconds to reach a destination (or the upstream proxy)
HANDSHAKE_TIMEOUT = 10.0
CHUNK = 64 * 1024

# SOCKS5 reply codes (RFC 1928 §6).
_OK, _FAILURE, _NOT_ALLOWED, _HOST_UNREACHABLE, _REFUSED, _BAD_COMMAND, _BAD_ADDRESS = 0, 1, 2, 4, 5, 7, 8


@dataclass(frozen=True)
class EgressPolicy:
    """What a session's browser may connect to. `refusal()` is pure."""

    # (host, port) pairs always allowed: TIKTOK_URL's origin by name and by its addresses.
    allowed: frozenset[tuple[str, int]]
    blocked_names: frozenset[str]
    blocked_networks: tuple[IpNetwork, ...]

    def refusal(self, host: str, port: int, address: IpAddress | None = None) -> str | None:
        """Why a connection to `host:port` (resolved to `address`) is refused, or None to allow it."""
        name = host.lower().rstrip(".").strip("[]")
        if (name, port) in self.allowed or (address is not None and (str(address), port) in self.allowed):
            return None
        if any(name == blocked or name.endswith("." + blocked) for blocked in self.blocked_names):
            return "blocked host"
        if address is None:
            with contextlib.suppress(ValueError):
                address = ipaddress.ip_address(name)
        if address is None:
            return "localhost" if name == "localhost" or name.endswith(".localhost") else None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback:
            return "loopback address"
        if address.is_link_local:
            return "link-local address"
        if address.is_unspecified or address.is_multicast:
            return "not a destination address"
        if any(address in network for network in self.blocked_networks):
            return "blocked network"
        return None


def build_policy(tiktok_url: str, blocked_hosts: Iterable[str]) -> EgressPolicy:
    """TIKTOK_URL's origin allowed; BROWSER_BLOCKED_HOSTS as names, addresses or networks (CIDR)."""
    parts = urlsplit(tiktok_url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allowed = {(host, port)}
    with contextlib.suppress(OSError):
        for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            allowed.add((str(sockaddr[0]), port))
    names: set[str] = set()
    networks: list[IpNetwork] = []
    for entry in blocked_hosts:
        entry = entry.strip().lower()
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if entry:
                names.add(entry.lstrip("*.").rstrip("."))
    return EgressPolicy(frozenset(allowed), frozenset(names), tuple(networks))


@dataclass
class EgressTally:
    """What every gate of a service refused, for the metrics."""

    refused: int = 0


class EgressRefused(Exception):
    def __init__(self, reason: str, reply: int = _NOT_ALLOWED):
        super().__init__(reason)
        self.reply = reply


class EgressGate:
    """One browser's SOCKS5 gate, listening on `socket_path` until `aclose()`."""

    def __init__(
        self,
        socket_path: Path,
        policy: EgressPolicy,
        upstream: str | None = None,
        tally: EgressTally | None = None,
    ):
        self.socket_path = socket_path
        self.policy = policy
        self.upstream = urlsplit(upstream) if upstream else None
        self.tally = tally or EgressTally()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        # Why the last connection failed ("127.0.0.1:8123: connection refused"): the browser only learns
        # "SOCKS connection failed", the service can tell its client more.
        self.last_failure: str | None = None

    async def start(self, uid: int | None = None) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket_path))
        # The browser's uid must be able to connect; the box around it is private to that uid.
        self.socket_path.chmod(0o666)
        if uid is not None:
            os.chown(self.socket_path, uid, uid)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                host, port = await _socks_request(reader, writer)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    upstream_reader, upstream_writer = await self._connect(host, port)
            except EgressRefused as refused:
                self.tally.refused += 1
                logger.info("egress.refused", extra={"host": host, "port": port, "reason": str(refused)})
                await _reply(writer, refused.reply)
                return
            except (OSError, TimeoutError) as error:
                self.last_failure = f"{host}:{port}: {_describe(error)}"
                logger.debug("egress.unreachable", extra={"host": host, "port": port, "error": str(error)})
                await _reply(
                    writer, _REFUSED if isinstance(error, ConnectionRefusedError) else _HOST_UNREACHABLE
                )
                return
            await _reply(writer, _OK)
            await _pipe_both(reader, writer, upstream_reader, upstream_writer)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, _SocksError):
            pass
        finally:
            for stream in (writer, upstream_writer):
                if stream is not None:
                    stream.close()
            self._connections.discard(task)

    async def _connect(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.upstream is not None:
            # The proxy resolves names; what can be refused by name or literal address is refused here.
            reason = self.policy.refusal(host, port)
            if reason:
                raise EgressRefused(reason)
            return await _through_proxy(self.upstream, host, port)
        reason = self.policy.refusal(host, port)
        if reason:
            raise EgressRefused(reason)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        last_reason = "no address"
        for family, _type, proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(sockaddr[0])
            reason = self.policy.refusal(host, port, address)
            if reason:
                last_reason = reason
                continue
            return await asyncio.open_connection(str(address), port, family=family, proto=proto)
        raise EgressRefused(last_reason)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "connection timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "name not resolved"
    return (getattr(error, "strerror", None) or type(error).__name__).lower()


class _SocksError(Exception):
    pass


async def _socks_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[str, int]:
    version, count = await reader.readexactly(2)
    methods = await reader.readexactly(count)
    if version != 5 or 0 not in methods:
        writer.write(b"\x05\xff")
        raise _SocksError("no acceptable method")
    writer.write(b"\x05\x00")
    version, command, _reserved, kind = await reader.readexactly(4)
    if kind == 1:
        host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
    elif kind == 4:
        host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
    elif kind == 3:
        (length,) = await reader.readexactly(1)
        host = (await reader.readexactly(length)).decode("idna", errors="strict")
    else:
        await _reply(writer, _BAD_ADDRESS)
        raise _SocksError("address type")
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    if version != 5 or command != 1:  # CONNECT only: no BIND, no UDP
        await _reply(writer, _BAD_COMMAND)
        raise _SocksError("command")
    return host, port


async def _reply(writer: asyncio.StreamWriter, code: int) -> None:
    writer.write(bytes((5, code, 0, 1, 0, 0, 0, 0, 0, 0)))
    with contextlib.suppress(ConnectionError):
        await writer.drain()


async def _through_proxy(
    proxy: SplitResult, host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    scheme, proxy_host, proxy_port = proxy.scheme, proxy.hostname, proxy.port
    username, password = unquote(proxy.username or ""), unquote(proxy.password or "")
    if scheme == "socks5":
        reader, writer = await asyncio.open_connection(proxy_host, proxy_port or 1080)
        await _socks5_client(reader, writer, host, port, username, password)
        return reader, writer
    reader, writer = await asyncio.open_connection(
        proxy_host, proxy_port or (443 if scheme == "https" else 80), ssl=scheme == "https" or None
    )
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if username or password:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        head += f"Proxy-Authorization: Basic {token}\r\n"
    writer.write((head + "\r\n").encode())
    response = await reader.readuntil(b"\r\n\r\n")
    status = response.split(b" ", 2)[1:2]
    if status != [b"200"]:
        writer.close()
        raise EgressRefused(f"upstream proxy answered {status[0].decode() if status else '?'}", _REFUSED)
    return reader, writer


async def _socks5_client(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int, user: str, password: str
) -> None:
    writer.write(b"\x05\x02\x00\x02" if user else b"\x05\x01\x00")
    _version, method = await reader.readexactly(2)
    if method == 2:
        credentials = user.encode(), password.encode()
        writer.write(bytes((1, len(credentials[0]))) + credentials[0] + bytes((len(credentials[1]),)))
        writer.write(credentials[1])
        _version, status = await reader.readexactly(2)
        if status != 0:
            raise EgressRefused("upstream proxy refused the credentials", _REFUSED)
    elif method != 0:
        raise EgressRefused("upstream proxy offers no usable method", _REFUSED)
    encoded = host.encode("idna")
    writer.write(b"\x05\x01\x00\x03" + bytes((len(encoded),)) + encoded + struct.pack("!H", port))
    _version, code, _reserved, kind = await reader.readexactly(4)
    skip = {1: 4, 4: 16}.get(kind)
    if skip is None:
        (skip,) = await reader.readexactly(1)
    await reader.readexactly(skip + 2)
    if code != 0:
        raise EgressRefused(f"upstream proxy could not connect (SOCKS reply {code})", code)


async def _pipe_both(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    remote_reader: asyncio.StreamReader,
    remote_writer: asyncio.StreamWriter,
) -> None:
    await asyncio.gather(
        _pipe(client_reader, remote_writer), _pipe(remote_reader, client_writer), return_exceptions=True
    )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()  # back pressure: read no more than the other side takes
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
