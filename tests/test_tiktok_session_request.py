"""The body of `POST /tiktok/session`: empty or a JSON object; anything else is refused with 400 or 422."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import Message

from app.api.deps import MAX_BODY_BYTES, read_session_request
from app.core.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from app.schemas.tiktok import TikTokSessionRequest


def request_with_body(*chunks: bytes, content_type: bytes | None = b"application/json") -> Request:
    """A real starlette Request whose ASGI receive channel delivers `chunks`, then a disconnect."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks or (b"",))
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/tiktok/session",
        "raw_path": b"/tiktok/session",
        "query_string": b"",
        "headers": [(b"content-type", content_type)] if content_type is not None else [],
    }
    return Request(scope, receive)


# --- the schema --------------------------------------------------------------------------------------------


def test_schema_accepts_no_fields() -> None:
    assert TikTokSessionRequest() == TikTokSessionRequest.model_validate({})


def test_schema_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError) as error:
        TikTokSessionRequest.model_validate({"headless": False})
    assert error.value.errors()[0]["loc"] == ("headless",)


# --- read_session_request ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"   ", b"\n\t \r\n"], ids=["empty", "spaces", "whitespace"])
async def test_empty_body_means_defaults(body: bytes) -> None:
    assert await read_session_request(request_with_body(body)) == TikTokSessionRequest()


@pytest.mark.parametrize("body", [b"{}", b" { }\n"], ids=["compact", "spaced"])
async def test_empty_object_is_accepted(body: bytes) -> None:
    assert await read_session_request(request_with_body(body)) == TikTokSessionRequest()


async def test_body_arriving_in_chunks_is_read_whole() -> None:
    assert await read_session_request(request_with_body(b"{", b"}")) == TikTokSessionRequest()


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"1", b"null", b"true", b'[{"x": 1}]'], ids=str)
async def test_non_object_json_is_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as error:
        await read_session_request(request_with_body(body))
    assert (error.value.code, error.value.http_status) == ("INVALID_REQUEST", 400)


@pytest.mark.parametrize(
    "body", [b"{", b"{'a': 1}", b'{"a": }', b"not json", b"{}{}", b"\xff\xfe{", b"{\x00}"], ids=str
)
async def test_malformed_json_is_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as error:
        await read_session_request(request_with_body(body))
    assert error.value.http_status == 400


async def test_deeply_nested_json_is_invalid_request_not_a_crash() -> None:
    # 5,000 nested arrays is 5 KB: well under the size limit, but past Python's recursion limit.
    with pytest.raises(InvalidRequest):
        await read_session_request(request_with_body(b"[" * 5000 + b"]" * 5000))


async def test_unknown_field_is_validation_failed_naming_the_field() -> None:
    with pytest.raises(ValidationFailed) as error:
        await read_session_request(request_with_body(b'{"x": 1}'))
    assert (error.value.code, error.value.http_status) == ("VALIDATION_ERROR", 422)
    assert "x" in (error.value.details or "")
    assert error.value.error_details["details"].startswith("x:")


async def test_every_unknown_field_is_named() -> None:
    with pytest.raises(ValidationFailed) as error:
        await read_session_request(request_with_body(b'{"proxy": "p", "headless_mode": false}'))
    assert "proxy" in (error.value.details or "")
    assert "headless_mode" in (error.value.details or "")


async def test_body_over_64_kib_is_payload_too_large_even_if_it_is_an_empty_object() -> None:
    body = b"{" + b" " * MAX_BODY_BYTES + b"}"
    with pytest.raises(PayloadTooLarge) as error:
        await read_session_request(request_with_body(body))
    assert str(MAX_BODY_BYTES) in (error.value.details or "")


async def test_body_of_exactly_64_kib_is_read() -> None:
    assert MAX_BODY_BYTES == 64 * 1024
    body = b"{" + b" " * (MAX_BODY_BYTES - 2) + b"}"
    assert await read_session_request(request_with_body(body)) == TikTokSessionRequest()


@pytest.mark.parametrize(
    "content_type", [b"text/plain", b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x"]
)
async def test_body_that_is_not_json_by_its_content_type_is_415(content_type: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        await read_session_request(request_with_body(b"{}", content_type=content_type))


@pytest.mark.parametrize(
    "content_type",
    [b"application/json", b"application/json; charset=utf-8", b"application/merge-patch+json", None],
)
async def test_json_or_unlabelled_body_is_read(content_type: bytes | None) -> None:
    assert (
        await read_session_request(request_with_body(b"{}", content_type=content_type))
        == TikTokSessionRequest()
    )


async def test_empty_body_needs_no_content_type_at_all() -> None:
    assert (
        await read_session_request(request_with_body(b"", content_type=b"text/plain"))
        == TikTokSessionRequest()
    )
