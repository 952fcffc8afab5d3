"""Request bodies read with a bound on size and time: never buffered without limit, never waited on
for ever (a trickling client)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from app.core.errors import PayloadTooLarge, RequestTimeout

# A client trickling its body must not hold a request open for ever (a session start never needs one).
BODY_TIMEOUT = 10.0


async def read_bounded(request: Request, limit: int, too_large: PayloadTooLarge) -> bytes:
    """The whole body, or `too_large` as soon as it is known to be larger than `limit` bytes
    (a declared Content-Length is believed before anything is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {BODY_TIMEOUT:g} s") from None
    return b"".join(chunks)
