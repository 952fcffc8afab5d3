"""The HTTP contract that does not need a browser: auth, body rules, envelopes, docs, OpenAPI."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from tests.fakes.server import StandinServer
from tests.service_harness import API_KEY, assert_error, running_service


@pytest.fixture
async def service(tmp_path: Path, standin: StandinServer):
    # No master profile: a request that got past validation would answer 409, never a 200.
    async with running_service(tmp_path, standin.url) as running:
        yield running


async def test_missing_key_is_401(service) -> None:
    async with httpx.AsyncClient(base_url=service.client.base_url) as anonymous:
        assert_error(await anonymous.post("/tiktok/session"), 401, "UNAUTHORIZED")
        assert_error(await anonymous.get("/tiktok/sessions"), 401, "UNAUTHORIZED")


async def test_wrong_key_is_401_and_the_key_is_not_echoed(service) -> None:
    response = await service.client.post("/tiktok/session", headers={"X-API-Key": "wrong-key-value"})
    assert_error(response, 401, "UNAUTHORIZED")
    assert "wrong-key-value" not in response.text


async def test_key_in_session_token_cookie_is_accepted(service) -> None:
    async with httpx.AsyncClient(base_url=service.client.base_url) as client:
        client.cookies.set("session_token", API_KEY)
        response = await client.get("/tiktok/sessions")
    assert response.status_code == 200
    assert response.json() == {"status": "success", "message": "Live sessions", "sessions": []}


async def test_auth_comes_before_body_validation(service) -> None:
    async with httpx.AsyncClient(base_url=service.client.base_url) as anonymous:
        assert_error(await anonymous.post("/tiktok/session", content=b"{nope"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("body", [b"{nope", b"[]", b'"text"', b"42", b"\xff\xfe"])
async def test_malformed_or_non_object_body_is_400(service, body: bytes) -> None:
    response = await service.client.post(
        "/tiktok/session", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 400, "INVALID_REQUEST")


async def test_unknown_field_is_422_naming_the_field(service) -> None:
    body = assert_error(
        await service.client.post("/tiktok/session", json={"headless": False}), 422, "VALIDATION_ERROR"
    )
    assert "headless" in body["error_details"]["details"]


@pytest.mark.parametrize("body", [None, {}])
async def test_empty_body_and_empty_object_pass_validation(service, body) -> None:
    response = await service.client.post("/tiktok/session", json=body)
    # Validation passed; there is no master profile, which is its own 409.
    assert_error(response, 409, "NOT_LOGGED_IN")


@pytest.mark.parametrize("session_id", ["0b3c2c55-8a5e-4f51-9b1e-2d5c7a1d9e10", "not-a-uuid", "1%20OR%201=1"])
async def test_unknown_session_is_404(service, session_id: str) -> None:
    assert_error(await service.client.get(f"/tiktok/session/{session_id}"), 404, "SESSION_NOT_FOUND")
    assert_error(await service.client.delete(f"/tiktok/session/{session_id}"), 404, "SESSION_NOT_FOUND")


async def test_unknown_route_and_wrong_method_use_the_envelope(service) -> None:
    assert_error(await service.client.get("/nope"), 404, "NOT_FOUND")
    assert_error(await service.client.put("/tiktok/session"), 405, "METHOD_NOT_ALLOWED")


async def test_health_needs_no_key(service) -> None:
    async with httpx.AsyncClient(base_url=service.client.base_url) as anonymous:
        response = await anonymous.get("/health")
    assert response.status_code == 200 and response.json()["status"] == "success"


async def test_docs_are_served_without_internet(service) -> None:
    async with httpx.AsyncClient(base_url=service.client.base_url) as anonymous:
        page = await anonymous.get("/docs")
        assert page.status_code == 200
        assert "cdn.jsdelivr.net" not in page.text and "unpkg.com" not in page.text
        for asset in ("/docs-static/swagger-ui-bundle.js", "/docs-static/swagger-ui.css"):
            assert asset in page.text
            assert (await anonymous.get(asset)).status_code == 200


async def test_openapi_shows_both_key_schemes_and_every_status(service) -> None:
    async with httpx.AsyncClient(base_url=service.client.base_url) as anonymous:
        document = (await anonymous.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {
        ("header", "X-API-Key"),
        ("cookie", "session_token"),
    }
    create = document["paths"]["/tiktok/session"]["post"]
    assert {"200", "400", "401", "409", "422", "423", "429", "500", "504"} <= set(create["responses"])
    for status, response in create["responses"].items():
        if status != "200":
            example = response["content"]["application/json"]["example"]
            assert example["status"] == "error" and example["error_details"]["code"]


async def test_generated_key_is_kept_in_an_owner_only_file(tmp_path: Path, standin: StandinServer) -> None:
    async with running_service(tmp_path, standin.url, API_KEYS=[]) as running:
        key_file = tmp_path / "api_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert len(key) >= 32
        async with httpx.AsyncClient(base_url=running.client.base_url) as client:
            assert (await client.get("/tiktok/sessions", headers={"X-API-Key": key})).status_code == 200
            assert_error(await client.get("/tiktok/sessions"), 401, "UNAUTHORIZED")


async def test_auth_disabled_only_when_asked(tmp_path: Path, standin: StandinServer) -> None:
    async with running_service(tmp_path, standin.url, AUTH_DISABLED=True) as running:
        anonymous = httpx.AsyncClient(base_url=running.client.base_url)
        response = await anonymous.get("/tiktok/sessions")
        await anonymous.aclose()
        assert response.status_code == 200
