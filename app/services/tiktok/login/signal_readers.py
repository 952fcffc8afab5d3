"""Pure readers: raw observations from the browser (cookies, JSON bodies, URLs, DOM hits) → `Signal`.

Kept apart from the collectors so the interpretation of TikTok's answers is unit-tested without a page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from app.services.tiktok.login.login_signals import Signal, Source, Verdict

WALL_STATUSES = frozenset({403, 429})


def read_cookies(
    cookies: Iterable[Mapping[str, Any]], session_names: Iterable[str], guard_name: str, now: float
) -> Signal:
    """No session cookie, or the guard cookie past its own expiry → logged out. Present proves nothing."""
    by_name = {cookie.get("name"): cookie for cookie in cookies}
    present = [name for name in session_names if by_name.get(name, {}).get("value")]
    if not present:
        return Signal(Source.COOKIES, Verdict.LOGGED_OUT, "no session cookie")
    guard = by_name.get(guard_name)
    if guard is not None:
        expires_at = guard_expiry(str(guard.get("value", "")))
        if expires_at is not None and expires_at <= now:
            return Signal(Source.COOKIES, Verdict.LOGGED_OUT, f"{guard_name} expired")
    return Signal(Source.COOKIES, Verdict.NONE, "session cookie present: " + ",".join(present))


def guard_expiry(value: str) -> float | None:
    """`sid_guard` is `<sid>|<issued unix>|<max-age s>|<http date>`; None when it does not parse."""
    parts = unquote(value).split("|")
    if len(parts) < 3:
        return None
    try:
        return float(parts[1]) + float(parts[2])
    except ValueError:
        return None


def read_account_info(status: int | None, body: str | None) -> Signal:
    """Interpret an account-info answer. No usable answer is NONE, never logged out.

    An error answer carries its `data.name` (e.g. `session_expired`) as the signal's `reason`.
    """
    if status in WALL_STATUSES:
        return Signal(Source.ACCOUNT_API, Verdict.WALL, f"account info HTTP {status}")
    if status is None or body is None:
        return Signal(Source.ACCOUNT_API, Verdict.NONE, "no answer")
    if status >= 500:
        # A server error is no answer whatever its body says: it may carry an error JSON of its own.
        return Signal(Source.ACCOUNT_API, Verdict.NONE, f"account info HTTP {status}")
    try:
        payload = json.loads(body)
    except ValueError:
        return Signal(Source.ACCOUNT_API, Verdict.NONE, f"HTTP {status}, body is not JSON")
    if not isinstance(payload, dict):
        return Signal(Source.ACCOUNT_API, Verdict.NONE, "JSON is not an object")
    message = payload.get("message")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    if message == "success":
        if data.get("user_id_str") or data.get("user_id") or data.get("username"):
            name = data.get("username") or data.get("unique_id")
            return Signal(
                Source.ACCOUNT_API,
                Verdict.LOGGED_IN,
                "account info success",
                username=str(name)[:64] if name else None,
            )
        return Signal(Source.ACCOUNT_API, Verdict.NONE, "success without a user")
    if message == "error":
        # decide() tells a server-ended session from other errors by this name, never by the evidence.
        name = str(data["name"])[:80] if data.get("name") else None
        evidence = f"account info error: {name or 'error'}"[:80]
        return Signal(Source.ACCOUNT_API, Verdict.LOGGED_OUT, evidence, reason=name)
    return Signal(Source.ACCOUNT_API, Verdict.NONE, "unrecognised account info answer")


def read_rehydration(script_text: str | None) -> Signal:
    """`__DEFAULT_SCOPE__["webapp.app-context"].user.uniqueId` only exists for a logged-in visitor."""
    if not script_text:
        return Signal(Source.REHYDRATION, Verdict.NONE, "no rehydration block")
    try:
        payload = json.loads(script_text)
    except ValueError:
        return Signal(Source.REHYDRATION, Verdict.NONE, "rehydration block is not JSON")
    scope = payload.get("__DEFAULT_SCOPE__") if isinstance(payload, dict) else None
    app_context = scope.get("webapp.app-context") if isinstance(scope, dict) else None
    if not isinstance(app_context, dict):
        return Signal(Source.REHYDRATION, Verdict.NONE, "no app context")
    user = app_context.get("user")
    if isinstance(user, dict) and user.get("uniqueId"):
        return Signal(
            Source.REHYDRATION,
            Verdict.LOGGED_IN,
            "app context has a user",
            username=str(user["uniqueId"])[:64],
        )
    return Signal(Source.REHYDRATION, Verdict.LOGGED_OUT, "app context without a user")


def read_redirect(url: str, login_path: str) -> Signal:
    path = urlsplit(url).path.rstrip("/") or "/"
    wanted = login_path.rstrip("/") or "/"
    if path == wanted or path.startswith(wanted + "/"):
        return Signal(Source.REDIRECT, Verdict.LOGGED_OUT, f"landed on {wanted}")
    return Signal(Source.REDIRECT, Verdict.NONE, "not redirected to login")


def read_header(logged_in_hits: list[str], logged_out_hits: list[str]) -> Signal:
    if logged_in_hits and logged_out_hits:
        return Signal(Source.HEADER, Verdict.NONE, "header shows both states")
    if logged_in_hits:
        return Signal(Source.HEADER, Verdict.LOGGED_IN, logged_in_hits[0][:80])
    if logged_out_hits:
        return Signal(Source.HEADER, Verdict.LOGGED_OUT, logged_out_hits[0][:80])
    return Signal(Source.HEADER, Verdict.NONE, "no header element")


def read_walls(
    document_status: int | None, captcha_hits: list[str], ban_hits: list[str], page_is_empty: bool
) -> Signal:
    """Anything that hides the account from us makes the answer uncertain, never logged in or out."""
    # A 5xx page (TikTok down, a proxy's 502) shows no account either: uncertain at once, saying why.
    if document_status in WALL_STATUSES or (document_status is not None and document_status >= 500):
        return Signal(Source.WALLS, Verdict.WALL, f"page HTTP {document_status}")
    if captcha_hits:
        return Signal(Source.WALLS, Verdict.WALL, f"captcha: {captcha_hits[0]}"[:80])
    if ban_hits:
        return Signal(Source.WALLS, Verdict.WALL, f"ban notice: {ban_hits[0]}"[:80])
    if page_is_empty:
        return Signal(Source.WALLS, Verdict.WALL, "empty page")
    return Signal(Source.WALLS, Verdict.NONE, "page clear")
