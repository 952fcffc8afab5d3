"""Contract fuzzing: Schemathesis against the service's own OpenAPI document, a real Chromium behind it.

Every operation, with the API key and without; every built-in check (no server error, documented
status codes, content types, headers and bodies conforming, auth not ignored, 405 for other
methods…) plus SPEC §2's envelope. The stateful phase follows create → read → screenshot → delete
on real, logged-in sessions. `make test` runs a short form; `make fuzz` sets FUZZ_EXAMPLES high.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import websockets.sync.client
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, Response
from websockets.exceptions import InvalidStatus

from tests.fuzz.contract import (
    FUZZ_EXAMPLES,
    FUZZ_SCENARIOS,
    FUZZ_STEPS,
    SCREENSHOT,
    SESSION,
    documented_api,
    error_envelope,
    fetch_document,
    load_schema,
)
from tests.fuzz.service_thread import ServiceThread, service_in_thread
from tests.support.harness import API_KEY, browsers_under
from tests.support.profiles import install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

# Few slots, so a burst of generated creates meets 429 instead of a dozen browsers on two cores; a
# short idle timeout ends what a scenario leaves behind and makes a wait-mode POST answer (504) soon.
SERVICE_SETTINGS: dict[str, Any] = {"MAX_SESSIONS": 2, "SESSION_IDLE_TIMEOUT": 3, "MAX_SESSION_DURATION": 120}

# Operation label → the service bug its contract test finds today (strict xfail: once fixed, XPASS fails).
KNOWN_BUGS: dict[str, str] = {}

DOCUMENT = documented_api()
schema = load_schema(DOCUMENT, base_url=None, api_key=API_KEY)
keyless = load_schema(DOCUMENT, base_url=None, api_key=None).include(path_regex="^/tiktok/")


@pytest.fixture(scope="module")
def fuzz_service(
    standin: StandinServer, master_profiles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceThread]:
    user_data = tmp_path_factory.mktemp("fuzz-user-data")
    install_master(master_profiles["logged_in"], user_data)
    standin.set_mode("normal")
    with service_in_thread(user_data, standin.url, **SERVICE_SETTINGS) as handle:
        yield handle
    assert browsers_under(user_data) == [], "a browser outlived the fuzzed service"
    assert handle.service.clone_dirs() == [], "a clone outlived its session"


@pytest.fixture(scope="module")
def base_url(fuzz_service: ServiceThread) -> str:
    return fuzz_service.service.base_url


@pytest.fixture(autouse=True)
def known_bug(request: pytest.FixtureRequest) -> None:
    reason = KNOWN_BUGS.get(getattr(request.node, "operation_label", None) or "")
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def end_all_sessions(base_url: str) -> None:
    """DELETE every live session, through the API, so each case starts with free slots."""
    with httpx.Client(base_url=base_url, headers={"X-API-Key": API_KEY}, timeout=60) as client:
        for session in client.get("/tiktok/sessions").raise_for_status().json()["sessions"]:
            client.delete(f"/tiktok/session/{session['session_id']}")


def test_the_fuzzed_document_is_the_served_one(base_url: str) -> None:
    assert fetch_document(base_url) == DOCUMENT


@schema.parametrize()
def test_every_operation_keeps_its_contract(case: Case, base_url: str) -> None:
    try:
        case.call_and_validate(base_url=base_url, additional_checks=[error_envelope])
    finally:
        end_all_sessions(base_url)


def refused(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Without a key (generated credentials are never a real key or token), every /tiktok route is 401.

    Routing comes first: another method on the same path is 405 (checked by unsupported_method).
    """
    if case.method.upper() == case.operation.method.upper():
        assert response.status_code == 401, f"answered {response.status_code} to a client without a key"
    return None


@keyless.parametrize()
def test_without_a_key_every_session_route_answers_401(case: Case, base_url: str) -> None:
    try:
        case.call_and_validate(base_url=base_url, additional_checks=[error_envelope, refused])
    finally:
        end_all_sessions(base_url)


@pytest.fixture(scope="module")
def live_session(base_url: str) -> Iterator[str]:
    with httpx.Client(base_url=base_url, headers={"X-API-Key": API_KEY}, timeout=60) as client:
        response = client.post("/tiktok/session")
        assert response.status_code == 200, response.text
        session_id = response.json()["session_id"]
        yield session_id
        client.delete(f"/tiktok/session/{session_id}")


def keep_alive(base_url: str, session_id: str) -> None:
    """SESSION_IDLE_TIMEOUT is short here, and a refused request is no activity."""
    response = httpx.post(
        f"{base_url}/tiktok/session/{session_id}/keepalive", headers={"X-API-Key": API_KEY}, timeout=30
    )
    assert response.status_code == 200, response.text


TOKEN_ROUTES = (SCREENSHOT, f"{SESSION}/view")


@hypothesis.settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None)
@hypothesis.given(token=st.text(min_size=1))
@hypothesis.example(token="é")
def test_a_live_session_answers_401_to_any_token_but_its_own(
    token: str, base_url: str, live_session: str
) -> None:
    keep_alive(base_url, live_session)
    for path in TOKEN_ROUTES:
        case = keyless[path]["GET"].Case(path_parameters={"session_id": live_session}, query={"token": token})
        case.call_and_validate(base_url=base_url, additional_checks=[error_envelope, refused])


@hypothesis.settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None)
@hypothesis.given(token=st.text(min_size=1))
@hypothesis.example(token="é")
def test_with_the_api_key_any_token_still_reaches_the_session(
    token: str, base_url: str, live_session: str
) -> None:
    keep_alive(base_url, live_session)
    for path in TOKEN_ROUTES:
        case = schema[path]["GET"].Case(
            path_parameters={"session_id": live_session},
            query={"token": token},
            # Named here: with a token in the query, Schemathesis counts that scheme as the credential.
            headers={"X-API-Key": API_KEY},
        )
        response = case.call_and_validate(base_url=base_url, additional_checks=[error_envelope])
        assert response.status_code == 200, (path, response.status_code)


def test_the_cdp_handshake_refuses_a_non_ascii_token_with_401(base_url: str, live_session: str) -> None:
    keep_alive(base_url, live_session)
    url = base_url.replace("http://", "ws://") + f"/tiktok/session/{live_session}/cdp?token=%C3%A9"
    with pytest.raises(InvalidStatus) as refused_upgrade:
        websockets.sync.client.connect(url, open_timeout=30).close()
    assert refused_upgrade.value.response.status_code == 401


@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "PATCH"])
def test_a_405_names_every_method_of_the_path(method: str, base_url: str) -> None:
    path = f"/tiktok/session/{uuid.uuid4()}"
    response = httpx.request(method, base_url + path, headers={"X-API-Key": API_KEY})
    assert response.status_code == 405
    assert sorted(m.strip() for m in response.headers["Allow"].split(",")) == ["DELETE", "GET"]


def test_session_lifecycle_keeps_its_contract(base_url: str) -> None:
    linked = load_schema(fetch_document(base_url), base_url=base_url, api_key=API_KEY)
    reached: dict[str, int] = {"created": 0, "read": 0, "screenshot": 0, "deleted": 0}
    successes = {
        ("POST", "/tiktok/session"): "created",
        ("GET", SESSION): "read",
        ("GET", SCREENSHOT): "screenshot",
        ("DELETE", SESSION): "deleted",
    }

    class SessionLifecycle(linked.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response: Response, case: Case) -> None:
            super().after_call(response, case)
            step = successes.get((case.operation.method.upper(), case.operation.path))
            if step is not None and response.status_code == 200:
                reached[step] += 1

        def validate_response(self, response: Response, case: Case, **kwargs: Any) -> None:
            super().validate_response(response, case, additional_checks=[error_envelope], **kwargs)

        def teardown(self) -> None:
            end_all_sessions(base_url)
            super().teardown()

    SessionLifecycle.run(
        settings=hypothesis.settings(
            max_examples=FUZZ_SCENARIOS,
            stateful_step_count=FUZZ_STEPS,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
    # The links were followed on real sessions, not only on 404s for ids nobody created.
    assert all(reached.values()), reached
