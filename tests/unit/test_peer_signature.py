"""Signatures between instances (SPEC §10): what they cover, their window, their one use.

The nonce store here is a dict; the registry's, in Redis and shared by every instance, is tested in
test_cluster_registry.py and, end to end, in tests/integration/test_cluster.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from app.api.forwarding import (
    NONCE_TTL,
    PEER_HEADER,
    SIGNATURE_AHEAD,
    SIGNATURE_MAX_AGE,
    SIGNATURE_WINDOW,
    Forwarder,
)
from app.core.errors import Unauthorized
from tests.support.harness import settings_for_test

PATH = "/tiktok/session/1f0c/screenshot"
QUERY = "token=abc&full_page=true"
BODY = b'{"ttl": 60}'


class Nonces:
    def __init__(self) -> None:
        self.claimed: dict[str, float] = {}

    async def claim_nonce(self, nonce: str, ttl: float) -> bool:
        if nonce in self.claimed:
            return False
        self.claimed[nonce] = ttl
        return True


@pytest.fixture
async def nonces() -> Nonces:
    return Nonces()


@pytest.fixture
async def forwarder(nonces: Nonces) -> AsyncIterator[Forwarder]:
    forwarder = Forwarder(settings_for_test(REDIS_URL="redis://:pw@127.0.0.1:6379/0", API_KEYS=["k"]), nonces)
    yield forwarder
    await forwarder.aclose()


def body_of(content: bytes) -> Callable[[], Awaitable[bytes]]:
    async def read() -> bytes:
        return content

    return read


async def refusal(
    forwarder: Forwarder,
    signature: str,
    method: str = "POST",
    path: str = PATH,
    query: str = QUERY,
    body: bytes = BODY,
    now: float | None = None,
) -> str | None:
    """Why the owner refuses the request, or None when it accepts it."""
    try:
        await forwarder.verify(signature, method, path, query, body_of(body), now=now)
    except Unauthorized as refused:
        return str(refused.details)
    return None


def test_the_window_is_at_most_30_s_and_a_nonce_outlives_it() -> None:
    assert (SIGNATURE_AHEAD, SIGNATURE_MAX_AGE, SIGNATURE_WINDOW) == (5, 25, 30)
    assert NONCE_TTL >= SIGNATURE_WINDOW


async def test_a_signature_is_accepted_once_and_its_nonce_is_remembered_for_the_window(
    forwarder: Forwarder, nonces: Nonces
) -> None:
    signature = forwarder.sign("POST", PATH, QUERY, BODY)
    assert await refusal(forwarder, signature) is None
    assert list(nonces.claimed.values()) == [NONCE_TTL]
    assert await refusal(forwarder, signature) == f"the {PEER_HEADER} signature was used already"
    assert (
        await refusal(forwarder, forwarder.sign("POST", PATH, QUERY, BODY)) is None
    ), "a new nonce each time"


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({"method": "DELETE"}, "does not sign this request"),
        ({"path": "/tiktok/session/other/screenshot"}, "does not sign this request"),
        ({"query": "token=abc"}, "does not sign this request"),
        ({"query": "token=abd&full_page=true"}, "does not sign this request"),
        ({"body": b'{"ttl": 600}'}, "does not sign this body"),
        ({"body": b""}, "does not sign this body"),
    ],
)
async def test_a_change_to_method_path_query_or_body_is_refused_and_spends_no_nonce(
    forwarder: Forwarder, nonces: Nonces, changed: dict[str, Any], expected: str
) -> None:
    signature = forwarder.sign("POST", PATH, QUERY, BODY)
    assert await refusal(forwarder, signature, **changed) == f"the {PEER_HEADER} signature {expected}"
    assert nonces.claimed == {}
    assert await refusal(forwarder, signature) is None, "still good for the request it signs"


@pytest.mark.parametrize(
    ("age", "accepted"),
    [
        (0, True),
        (SIGNATURE_MAX_AGE - 1, True),
        (SIGNATURE_MAX_AGE + 1, False),
        (60, False),
        (-(SIGNATURE_AHEAD - 1), True),
        (-(SIGNATURE_AHEAD + 1), False),
    ],
)
async def test_a_signature_is_accepted_only_inside_its_window(
    forwarder: Forwarder, age: float, accepted: bool
) -> None:
    signed_at = time.time() - age
    signature = forwarder.sign("POST", PATH, QUERY, BODY, now=signed_at)
    answer = await refusal(forwarder, signature)
    if accepted:
        assert answer is None
    else:
        assert answer == f"the {PEER_HEADER} signature is outside its 30 s window"


@pytest.mark.parametrize(
    "header",
    [
        "",
        "1.bad",
        "x.0123456789abcdef0123456789abcdef.00.11",
        "1.2.3.4.5",
        "1234.nonce.digest.mac",
        # Text that passes `str.isdigit`, and a non-ASCII MAC: refused as malformed, never a 500.
        f"\u00b2.{'0' * 32}.{'0' * 64}.{'0' * 64}",
        f"{int(time.time())}.{'0' * 32}.{'0' * 64}." + "\u00e9" * 64,
    ],
)
async def test_a_malformed_signature_is_refused(forwarder: Forwarder, header: str) -> None:
    assert await refusal(forwarder, header) == f"the {PEER_HEADER} signature is not valid"


async def test_a_signature_under_another_clusters_secrets_is_refused(forwarder: Forwarder) -> None:
    other = Forwarder(
        settings_for_test(REDIS_URL="redis://:pw@127.0.0.1:6379/0", API_KEYS=["other"]), Nonces()
    )
    try:
        signature = other.sign("POST", PATH, QUERY, BODY)
    finally:
        await other.aclose()
    assert await refusal(forwarder, signature) == f"the {PEER_HEADER} signature does not sign this request"
