"""The live view page as rendered (SPEC §13): what each kind of link shows, and the Done button."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from app.api.live_view import render_view
from app.schemas.tiktok import LoginInfo, SessionInfo, SessionMode, TikTokLoginState
from app.services.common.access import Scope

SESSION_ID = "3f0c2a9e-5b8e-4f57-9c55-1b2f3e4d5a6b"
TOKEN = "tok-en_0123456789"


def info(account: str | None = "alice") -> SessionInfo:
    return SessionInfo(
        session_id=SESSION_ID,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
        login=LoginInfo(state=TikTokLoginState.LOGGED_IN, method="account_api", elapsed_ms=12),
        mode=SessionMode.READ,
        account=account,
    )


def config_of(page: str) -> dict:
    match = re.search(r"const config = (\{.*?\});\n", page)
    assert match is not None
    return dict(json.loads(match.group(1)))


def test_a_view_only_page_says_view_only_and_takes_no_keyboard() -> None:
    page = render_view(info(), token=TOKEN, scope=Scope.VIEW)
    assert "view only" in page and ">View only<" in page
    assert 'id="screen" alt="The session\'s page" draggable="false">' in page  # no tabindex
    assert config_of(page)["interactive"] is False


def test_an_interactive_page_never_says_view_only() -> None:
    page = render_view(info(), token=TOKEN, scope=Scope.INTERACTIVE_VIEW)
    assert "view only" not in page.lower()
    assert ">Interactive<" in page and 'tabindex="0"' in page
    assert config_of(page)["interactive"] is True


def test_the_stream_and_the_fallback_picture_are_relative_and_carry_the_token() -> None:
    config = config_of(render_view(info(), token=TOKEN, scope=Scope.VIEW))
    assert config["stream"] == f"view/stream?token={TOKEN}"
    assert config["frame"] == f"view/frame?token={TOKEN}"
    assert config["expiresAt"] == "2026-01-01T00:05:00+00:00"


def test_an_api_key_cookie_needs_no_token_in_the_page() -> None:
    config = config_of(render_view(info(), token=None, scope=Scope.CONTROL))
    assert (config["stream"], config["frame"]) == ("view/stream", "view/frame")


def test_the_done_button_is_hidden_unless_there_is_somewhere_to_post() -> None:
    plain = render_view(info(), token=TOKEN, scope=Scope.INTERACTIVE_VIEW)
    assert '<button id="done" type="button" hidden>Done</button>' in plain
    assert config_of(plain)["doneUrl"] is None

    login = render_view(
        info(), token=TOKEN, scope=Scope.INTERACTIVE_VIEW, done_url="/tiktok/accounts/alice/login/done?x=1"
    )
    assert '<button id="done" type="button">Done</button>' in login
    assert config_of(login)["doneUrl"] == f"/tiktok/accounts/alice/login/done?x=1&token={TOKEN}"


def test_the_account_is_shown_escaped_and_its_chip_hidden_without_one() -> None:
    assert '<span class="chip" id="account"><span class="dot"></span>account <b>alice</b>' in render_view(
        info(), token=TOKEN, scope=Scope.VIEW
    )
    assert "&lt;b&gt;" in render_view(info("<b>"), token=TOKEN, scope=Scope.VIEW)
    assert '<span class="chip" id="account" hidden>' in render_view(info(None), token=TOKEN, scope=Scope.VIEW)
