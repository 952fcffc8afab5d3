"""What the contract fuzzing needs: the service's OpenAPI document with session links, and the checks.

The document is the one the service serves at /openapi.json (the per-operation tests build it from
the app when the module is collected, and a test proves it equal to the served one; the stateful
test fetches it). Schemathesis' stateful phase follows OpenAPI `links`; the service declares none
yet, so `with_session_links` adds them (the same links routes.py could declare, see SESSION_LINKS).
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import httpx
import schemathesis
from schemathesis import Case, CheckContext, Config, Response

from app.main import create_app
from tests.support.harness import settings_for_test

# `make test` runs a short form; `make fuzz` sets FUZZ_EXAMPLES (and FUZZ_SCENARIOS) high.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
FUZZ_SCENARIOS = int(os.environ.get("FUZZ_SCENARIOS", str(max(3, FUZZ_EXAMPLES // 2))))
FUZZ_STEPS = int(os.environ.get("FUZZ_STEPS", "5"))
REQUEST_TIMEOUT = 90  # seconds; a wait-mode POST is answered only when its session ends

SESSION = "/tiktok/session/{session_id}"
SCREENSHOT = "/tiktok/session/{session_id}/screenshot"

# Where a link reads the session id: the body of POST /tiktok/session and of the session info, or
# the path of the request that just succeeded (a screenshot answers a PNG, with no id in it).
_FROM_BODY = {"session_id": "$response.body#/session_id"}
_FROM_PATH = {"session_id": "$request.path.session_id"}


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _link(path: str, method: str, parameters: dict[str, str], description: str) -> dict[str, Any]:
    return {"operationRef": _ref(path, method), "parameters": parameters, "description": description}


# (path, method) of a 200 response → its links: create → read → screenshot → delete, and the reads
# after a delete that must then answer 404 (Schemathesis' use_after_free check).
SESSION_LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/tiktok/session", "post"): {
        "GetSession": _link(SESSION, "get", _FROM_BODY, "The new session's info"),
        "Screenshot": _link(SCREENSHOT, "get", _FROM_BODY, "The new session's page"),
        "DeleteSession": _link(SESSION, "delete", _FROM_BODY, "End the new session"),
    },
    (SESSION, "get"): {
        "Screenshot": _link(SCREENSHOT, "get", _FROM_BODY, "The session's page"),
        "DeleteSession": _link(SESSION, "delete", _FROM_BODY, "End the session"),
    },
    (SCREENSHOT, "get"): {
        "GetSession": _link(SESSION, "get", _FROM_PATH, "The session's info"),
        "DeleteSession": _link(SESSION, "delete", _FROM_PATH, "End the session"),
    },
    (SESSION, "delete"): {
        "GetSession": _link(SESSION, "get", _FROM_BODY, "An ended session: 404"),
    },
}


def with_session_links(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the OpenAPI document whose session routes link to one another (SESSION_LINKS).

    A response that declares links of its own keeps them: once routes.py declares these, the service's
    own links are the ones fuzzed (and SESSION_LINKS can go).
    """
    linked = copy.deepcopy(document)
    for (path, method), links in SESSION_LINKS.items():
        ok = linked["paths"][path][method]["responses"]["200"]
        ok.setdefault("links", copy.deepcopy(links))
    return linked


def fetch_document(base_url: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/openapi.json", timeout=30)
    response.raise_for_status()
    return response.json()


def documented_api() -> dict[str, Any]:
    """The document the app serves at /openapi.json, built without serving it.

    Schemathesis makes one pytest item per operation only for a schema it has when the test module
    is collected (a schema from a fixture runs all operations as subtests of one item, where a
    strict xfail cannot be put on one operation). `test_the_fuzzed_document_is_the_served_one`
    proves this is the document a running service serves.
    """
    # Placeholders: building the app reads settings but starts nothing (no lifespan, no browser).
    settings = settings_for_test(
        USER_DATA_DIR="/nonexistent", TIKTOK_URL="http://127.0.0.1:9/", API_KEYS=["x"]
    )
    return create_app(settings).openapi()


def load_schema(
    document: dict[str, Any],
    *,
    base_url: str | None,
    api_key: str | None,
    examples: int = FUZZ_EXAMPLES,
) -> schemathesis.BaseSchema:
    """The document, linked, with every built-in check on (see `not_a_server_error` below)."""
    config: dict[str, Any] = {
        "request-timeout": REQUEST_TIMEOUT,
        "generation": {"mode": "all", "max-examples": examples, "database": "none"},
        "phases": {
            "stateful": {
                "max-steps": FUZZ_STEPS,
                # Only the links the document declares: inferred ones start scenarios at keepalive, on
                # ids nobody created.
                "inference": {"algorithms": []},
                # Scenarios follow sessions through their life; invalid inputs are the other tests' job.
                "generation": {"mode": "positive"},
            }
        },
        "checks": {
            # 500 is documented for POST (browser binary missing, disk full…), but none of its causes
            # exists here: a 500 is a bug. 503 (/ready) and 504 (POST) must still be documented for
            # the operation that answers them (status_code_conformance) and carry the envelope.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503", "504"]},
        },
    }
    if base_url is not None:
        config["base-url"] = base_url
    if api_key is not None:
        config["auth"] = {"openapi": {"ApiKeyHeader": {"api_key": api_key}}}
    return schemathesis.openapi.from_dict(with_session_links(document), config=Config.from_dict(config))


def _header(response: Response, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


def error_envelope(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """SPEC §2: every error is the one envelope with X-Error-Code; successes never carry error_details."""
    media_type = (_header(response, "content-type") or "").split(";")[0].strip()
    assert "Traceback" not in response.content.decode(errors="replace"), "a traceback reached the client"
    if response.status_code < 400:
        if media_type == "application/json":
            body = json.loads(response.content)
            assert body.get("status") == "success", f"a {response.status_code} body without status=success"
            assert body.get("message"), "a success body without a message"
            assert "error_details" not in body, "a success body with error_details"
        return None
    assert media_type == "application/json", f"an error answered as {media_type!r}"
    body = json.loads(response.content)
    assert body.get("status") == "error", "an error body without status=error"
    assert body.get("message"), "an error body without a message"
    code = (body.get("error_details") or {}).get("code")
    assert code, "an error body without error_details.code"
    assert _header(response, "x-error-code") == code, f"X-Error-Code is not error_details.code ({code})"
    return None
