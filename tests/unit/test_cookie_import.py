"""Parsing of cookie exports: the JSON array of export extensions and Netscape cookies.txt."""

from __future__ import annotations

import json

import pytest

from app.services.tiktok.cookie_import import (
    CookieFileError,
    cookies_for_host,
    parse_cookie_file,
    require_session_cookie,
)

SESSION_NAMES = ("sessionid", "sessionid_ss", "sid_tt")

EXTENSION_EXPORT = [
    {
        "domain": ".tiktok.com",
        "expirationDate": 1801307884.5,
        "hostOnly": False,
        "httpOnly": True,
        "name": "sessionid",
        "path": "/",
        "sameSite": "no_restriction",
        "secure": True,
        "session": False,
        "value": "abc123",
    },
    {
        "domain": "www.tiktok.com",
        "hostOnly": True,
        "httpOnly": False,
        "name": "msToken",
        "path": "/",
        "sameSite": "unspecified",
        "secure": False,
        "session": True,
        "value": "guest",
    },
    {"domain": ".example.com", "name": "other", "value": "x"},
]

COOKIES_TXT = "\n".join(
    [
        "# Netscape HTTP Cookie File",
        "#HttpOnly_.tiktok.com\tTRUE\t/\tTRUE\t1801307884\tsid_tt\tabc123",
        ".tiktok.com\tTRUE\t/\tFALSE\t0\tttwid\tguest",
        "",
    ]
)


def test_extension_json_becomes_playwright_cookies() -> None:
    cookies = parse_cookie_file(json.dumps(EXTENSION_EXPORT))
    session = cookies[0]
    assert session == {
        "name": "sessionid",
        "value": "abc123",
        "domain": ".tiktok.com",
        "path": "/",
        "httpOnly": True,
        "secure": True,
        "expires": 1801307884.5,
        "sameSite": "None",
    }
    guest = cookies[1]
    assert "expires" not in guest and "sameSite" not in guest


def test_netscape_file_keeps_http_only_and_expiry() -> None:
    sid, guest = parse_cookie_file(COOKIES_TXT)
    assert sid["name"] == "sid_tt" and sid["httpOnly"] and sid["secure"] and sid["expires"] == 1801307884
    assert guest["httpOnly"] is False and "expires" not in guest


def test_same_site_none_without_secure_is_downgraded() -> None:
    entry = dict(EXTENSION_EXPORT[0], secure=False)
    assert parse_cookie_file(json.dumps([entry]))[0]["sameSite"] == "Lax"


def test_only_cookies_for_the_tiktok_host_are_kept() -> None:
    cookies = parse_cookie_file(json.dumps(EXTENSION_EXPORT))
    assert [c["name"] for c in cookies_for_host(cookies, "www.tiktok.com")] == ["sessionid", "msToken"]
    assert cookies_for_host(cookies, "tiktok.com.evil.net") == []


def test_file_without_a_session_cookie_is_refused() -> None:
    guest_only = parse_cookie_file(".tiktok.com\tTRUE\t/\tFALSE\t0\tttwid\tguest\n")
    with pytest.raises(CookieFileError, match="no TikTok session cookie"):
        require_session_cookie(guest_only, SESSION_NAMES, "www.tiktok.com")


def test_empty_session_cookie_value_does_not_count() -> None:
    empty = [{"name": "sessionid", "value": "", "domain": ".tiktok.com"}]
    with pytest.raises(CookieFileError):
        require_session_cookie(empty, SESSION_NAMES, "www.tiktok.com")


@pytest.mark.parametrize(
    "text, message",
    [
        ("[{", "does not parse"),
        ('{"name": "x"}', "must be an array"),
        ('[{"value": "x"}]', "no name or domain"),
        ("just some words", "neither JSON nor Netscape"),
    ],
)
def test_unusable_files_say_why(text: str, message: str) -> None:
    with pytest.raises(CookieFileError, match=message):
        parse_cookie_file(text)
