"""The HTTP contract that does not need a browser: auth, body rules, envelopes, docs, OpenAPI."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import httpx
import pytest

from app.api import bodies
from tests.support.harness import API_KEY, assert_error, running_service
from tests.support.standin.server import StandinServer


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


ERROR_STATUS = {
    "INVALID_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "ACCOUNT_NOT_FOUND": 404,  # SPEC §12
    "REQUEST_TIMEOUT": 408,
    "NOT_LOGGED_IN": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "VALIDATION_ERROR": 422,
    "USER_DATA_LOCKED": 423,
    "TOO_MANY_SESSIONS": 429,
    "INTERNAL_ERROR": 500,
    "REGISTRY_UNAVAILABLE": 503,  # cluster mode (REDIS_URL) only, SPEC §10
    "SESSION_TIMEOUT": 504,
}


async def test_openapi_shows_the_key_schemes_and_every_status(service) -> None:
    async with httpx.AsyncClient(base_url=service.client.base_url) as anonymous:
        document = (await anonymous.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {
        ("header", "X-API-Key"),
        ("cookie", "session_token"),
        ("query", "token"),  # a session's own token, on its /cdp, /screenshot and /view
    }
    create = document["paths"]["/tiktok/session"]["post"]
    assert {
        "200",
        "400",
        "401",
        "404",
        "408",
        "409",
        "413",
        "415",
        "422",
        "423",
        "429",
        "500",
        "503",
        "504",
    } == set(create["responses"])
    for status, response in create["responses"].items():
        if status != "200":
            for example in response["content"]["application/json"]["examples"].values():
                assert example["value"]["status"] == "error"
                assert response["headers"]["X-Error-Code"]
                assert str(status) == str(ERROR_STATUS[example["value"]["error_details"]["code"]])


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


async def test_ready_is_503_naming_the_missing_master_without_a_key(service) -> None:
    async with httpx.AsyncClient(base_url=service.client.base_url) as anonymous:
        body = assert_error(await anonymous.get("/ready"), 503, "NOT_READY")
    assert body["error_details"]["checks"]["browser"] == "ok"
    assert body["error_details"]["checks"]["clones"] == "ok"
    assert "profile login" in body["error_details"]["checks"]["master"]
    assert "master" in body["error_details"]["details"]


async def test_ready_is_200_with_a_master_and_shows_its_generation(
    tmp_path: Path, standin: StandinServer
) -> None:
    (tmp_path / "master" / "Default").mkdir(parents=True)
    (tmp_path / "master.generation").write_text("3-feedc0ffee\n")
    async with (
        running_service(tmp_path, standin.url) as running,
        httpx.AsyncClient(base_url=running.client.base_url) as anonymous,
    ):
        response = await anonymous.get("/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checks"] == {"browser": "ok", "master": "ok", "clones": "ok"}
    assert (body["generation"], body["warm_sessions"]) == ("3-feedc0ffee", 0)


async def test_ready_names_a_missing_browser(tmp_path: Path, standin: StandinServer) -> None:
    (tmp_path / "master" / "Default").mkdir(parents=True)
    async with running_service(tmp_path, standin.url, BROWSER_EXECUTABLE=tmp_path / "nope") as running:
        body = assert_error(await running.client.get("/ready"), 503, "NOT_READY")
    assert "BROWSER_EXECUTABLE" in body["error_details"]["checks"]["browser"]
    assert body["error_details"]["checks"]["master"] == "ok"


async def test_text_plain_body_is_415_and_an_oversized_one_413(service) -> None:
    plain = await service.client.post(
        "/tiktok/session", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert_error(plain, 415, "UNSUPPORTED_MEDIA_TYPE")
    huge = await service.client.post(
        "/tiktok/session", content=b"{" + b" " * 70_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert_error(huge, 413, "PAYLOAD_TOO_LARGE")


async def test_metrics_are_prometheus_text_without_a_key_and_count_outcomes(service) -> None:
    assert_error(await service.client.post("/tiktok/session"), 409, "NOT_LOGGED_IN")  # no master
    assert_error(
        await service.client.post("/tiktok/session", headers={"X-API-Key": "nope"}), 401, "UNAUTHORIZED"
    )
    async with httpx.AsyncClient(base_url=service.client.base_url) as anonymous:
        response = await anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(response.text.splitlines())
    assert 'tiktok_sessions_created_total{outcome="NOT_LOGGED_IN"} 1.0' in lines
    assert (
        'tiktok_login_decisions_total{method="no_master",state="logged_out"} 1.0' not in lines
    )  # no detection ran
    assert 'tiktok_sessions_live{mode="read"} 0.0' in lines
    assert "tiktok_warm_sessions_ready 0.0" in lines
    assert "tiktok_cdp_relays_open 0.0" in lines
    assert "# TYPE tiktok_session_creation_seconds histogram" in lines


async def test_every_request_is_logged_once_with_its_id_and_status(
    service, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    response = await service.client.get("/tiktok/sessions", headers={"X-Request-Id": "trace-me-7"})
    assert response.headers["X-Request-Id"] == "trace-me-7"
    generated = await service.client.get("/tiktok/session/not-a-session")
    assert len(generated.headers["X-Request-Id"]) == 16
    logs = capfd.readouterr().err.splitlines()
    mine = [line for line in logs if "request_id=trace-me-7" in line]
    assert len(mine) == 1
    assert "method=GET path=/tiktok/sessions status=200" in mine[0]
    assert any(
        f"request_id={generated.headers['X-Request-Id']}" in line and "status=404" in line for line in logs
    )


async def test_a_body_trickled_in_too_slowly_is_408_and_frees_the_request(
    service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "BODY_TIMEOUT", 0.5)
    host, port = service.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /tiktok/session HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {API_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 408"), status_line


async def test_a_declared_oversized_body_is_413_before_it_is_read(service) -> None:
    host, port = service.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            f"POST /tiktok/session HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {API_KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


@pytest.mark.parametrize(
    "headers",
    [
        {"Cookie": "session_token=" + "x" * 200_000},
        {"X-API-Key": "k" * 100_000},
        {f"X-Filler-{index}": "v" * 100 for index in range(500)},
        {"Cookie": "; ".join(f"c{index}=v" for index in range(5_000))},
    ],
    ids=["huge-cookie", "huge-key", "many-headers", "many-cookies"],
)
async def test_absurd_headers_never_get_a_500(service, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=service.base_url) as anonymous:
        try:
            response = await anonymous.get("/tiktok/sessions", headers=headers)
        except httpx.RemoteProtocolError:
            response = None  # the server's own limit closed the connection: also not a 500
        if response is not None:
            assert response.status_code < 500, response.text[:200]
        # And the service goes on serving.
        assert (await anonymous.get("/health")).status_code == 200
