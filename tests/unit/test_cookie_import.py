"""Parsing of cookie exports: the JSON array of export extensions and Netscape cookies.txt."""

from __future__ import annotations

import json

import pytest

from app.services.tiktok.cookie_import import (
    CookieFileError,
    cookies_for_host,
    map_cookie_domains,
    parse_cookie_file,
    parse_domain_map,
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


# --- --domain-map ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, parsed",
    [
        (".tiktok.com=127.0.0.1", ("tiktok.com", "127.0.0.1")),
        ("TikTok.com=.Example.Test", ("tiktok.com", "example.test")),
        (" www.tiktok.com = localhost ", ("www.tiktok.com", "localhost")),
        ("tiktok.com=[::1]", ("tiktok.com", "[::1]")),
    ],
)
def test_domain_map_spec_is_from_equals_to(spec: str, parsed: tuple[str, str]) -> None:
    assert parse_domain_map(spec) == parsed


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tiktok.com", "not FROM=TO"),
        ("=127.0.0.1", "not FROM=TO"),
        (".tiktok.com=", "not FROM=TO"),
        ("tiktok.com=http://127.0.0.1/", "not a cookie domain"),
        ("tiktok.com=127.0.0.1:8000", "has a port"),
        ("tiktok.com=a=b", "not a cookie domain"),
    ],
)
def test_unusable_domain_map_says_why(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_domain_map(spec)


def domains(cookies: list[dict[str, object]]) -> list[object]:
    return [cookie["domain"] for cookie in cookies]


DESKTOP_DOMAINS = [
    {"name": "sessionid", "value": "s", "domain": ".tiktok.com"},
    {"name": "msToken", "value": "g", "domain": "www.tiktok.com"},
    {"name": "apex", "value": "a", "domain": "tiktok.com"},
    {"name": "other", "value": "o", "domain": ".example.com"},
    {"name": "lookalike", "value": "l", "domain": "nottiktok.com"},
]


def test_domain_map_onto_a_host_keeps_subdomains_and_domain_cookies() -> None:
    mapped = map_cookie_domains(DESKTOP_DOMAINS, [("tiktok.com", "standin.test")])
    assert domains(mapped) == [
        ".standin.test",
        "www.standin.test",
        "standin.test",
        ".example.com",
        "nottiktok.com",
    ]


def test_domain_map_onto_an_ip_address_makes_every_mapped_cookie_host_only() -> None:
    mapped = map_cookie_domains(DESKTOP_DOMAINS, [("tiktok.com", "127.0.0.1")])
    assert domains(mapped) == ["127.0.0.1", "127.0.0.1", "127.0.0.1", ".example.com", "nottiktok.com"]


def test_first_matching_domain_rule_wins() -> None:
    rules = [("www.tiktok.com", "www.standin.test"), ("tiktok.com", "127.0.0.1")]
    assert domains(map_cookie_domains(DESKTOP_DOMAINS[:3], rules)) == [
        "127.0.0.1",
        "www.standin.test",
        "127.0.0.1",
    ]


def test_domain_map_keeps_everything_but_the_domain() -> None:
    cookie = parse_cookie_file(json.dumps(EXTENSION_EXPORT[:1]))[0]
    (mapped,) = map_cookie_domains([cookie], [("tiktok.com", "127.0.0.1")])
    assert mapped == dict(cookie, domain="127.0.0.1")
    assert cookie["domain"] == ".tiktok.com", "the input cookie must not be changed in place"


def test_a_mapped_desktop_export_is_kept_for_the_standin_host() -> None:
    cookies = parse_cookie_file(json.dumps(EXTENSION_EXPORT))
    assert cookies_for_host(cookies, "127.0.0.1") == []
    mapped = map_cookie_domains(cookies, [parse_domain_map(".tiktok.com=127.0.0.1")])
    assert [c["name"] for c in cookies_for_host(mapped, "127.0.0.1")] == ["sessionid", "msToken"]
