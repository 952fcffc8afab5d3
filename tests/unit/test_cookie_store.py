"""The pre-launch look at a profile's cookie database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.services.tiktok.login.cookie_rules import domain_matches, has_live_session_cookie
from app.services.tiktok.login.cookie_store import read_cookie_rows, stored_cookie_signal
from app.services.tiktok.login.login_signals import Verdict

NAMES = ("sessionid", "sessionid_ss", "sid_tt")
NOW = 1_800_000_000.0
FUTURE = int((NOW + 86_400 + 11_644_473_600) * 1_000_000)
PAST = int((NOW - 86_400 + 11_644_473_600) * 1_000_000)


@pytest.mark.parametrize(
    "rows, host, verdict",
    [
        ([(".tiktok.com", "sessionid", 1, FUTURE)], "www.tiktok.com", Verdict.NONE),
        ([("www.tiktok.com", "sid_tt", 1, FUTURE)], "www.tiktok.com", Verdict.NONE),
        ([("127.0.0.1", "sessionid_ss", 0, 0)], "127.0.0.1", Verdict.NONE),  # session cookie: present
        ([(".tiktok.com", "sessionid", 1, PAST)], "www.tiktok.com", Verdict.LOGGED_OUT),  # expired
        (
            [("tiktok.com", "sessionid", 1, FUTURE)],
            "www.tiktok.com",
            Verdict.LOGGED_OUT,
        ),  # host-only elsewhere
        ([(".tiktok.com.evil.net", "sessionid", 1, FUTURE)], "www.tiktok.com", Verdict.LOGGED_OUT),
        (
            [(".tiktok.com", "ttwid", 1, FUTURE), (".tiktok.com", "msToken", 1, FUTURE)],
            "www.tiktok.com",
            Verdict.LOGGED_OUT,
        ),
        ([], "www.tiktok.com", Verdict.LOGGED_OUT),
        (None, "www.tiktok.com", Verdict.NONE),  # unreadable: the browser decides
    ],
)
def test_stored_cookie_signal(rows, host: str, verdict: Verdict) -> None:
    assert stored_cookie_signal(rows, host, NAMES, NOW).verdict is verdict


async def test_real_profiles_are_read_by_name_and_host(master_profiles: dict[str, Path]) -> None:
    logged_in = read_cookie_rows(master_profiles["logged_in"])
    assert logged_in is not None and {"sessionid", "sid_guard", "ttwid"} <= {row[1] for row in logged_in}
    assert stored_cookie_signal(logged_in, "127.0.0.1", NAMES, time.time()).verdict is Verdict.NONE
    guest = read_cookie_rows(master_profiles["logged_out"])
    assert stored_cookie_signal(guest, "127.0.0.1", NAMES, time.time()).verdict is Verdict.LOGGED_OUT


def test_missing_database_means_no_cookies_and_garbage_means_no_answer(tmp_path: Path) -> None:
    assert read_cookie_rows(tmp_path) == []
    (tmp_path / "Default").mkdir()
    (tmp_path / "Default" / "Cookies").write_bytes(b"not a database at all" * 100)
    assert read_cookie_rows(tmp_path) is None


# --- the rules shared with the cookie import --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookie_domain", "host", "host_only", "sent"),
    [
        (".tiktok.com", "www.tiktok.com", False, True),  # a domain cookie reaches subdomains
        ("tiktok.com", "www.tiktok.com", False, True),  # the leading dot is optional
        (".tiktok.com", "tiktok.com", False, True),  # and the domain itself
        (".tiktok.com", "a.b.tiktok.com", False, True),
        ("tiktok.com", "www.tiktok.com", True, False),  # a host-only cookie reaches its host alone
        ("www.tiktok.com", "www.tiktok.com", True, True),
        (".tiktok.com", "eviltiktok.com", False, False),  # a look-alike is no subdomain
        ("tiktok.com", "tiktok.com.evil.net", False, False),
        ("www.tiktok.com", "tiktok.com", False, False),  # nor is the parent
        (".TikTok.COM", "WWW.tiktok.com", False, True),  # case does not matter
        ("127.0.0.1", "127.0.0.1", True, True),
        (".0.0.1", "127.0.0.1", False, False),  # an IP address has no subdomains
        ("127.0.0.1", "127.0.0.2", False, False),
        ("::1", "::1", False, True),
    ],
)
def test_domain_matches(cookie_domain: str, host: str, host_only: bool, sent: bool) -> None:
    assert domain_matches(cookie_domain, host, host_only=host_only) is sent


def _cookie(name: str, value: str = "v", **extra: object) -> dict[str, object]:
    return {"name": name, "value": value, "domain": ".tiktok.com", **extra}


@pytest.mark.parametrize(
    ("cookies", "live"),
    [
        ([_cookie("sessionid", expires=NOW + 60)], True),
        ([_cookie("sid_tt")], True),  # no expiry: lives as long as the browser
        ([_cookie("sessionid_ss", expires=-1)], True),  # Playwright's way of saying the same
        ([_cookie("sessionid", expires=NOW - 60)], False),
        ([_cookie("sessionid", expires=NOW)], False),
        ([_cookie("sessionid", expires=NOW - 60), _cookie("sid_tt", expires=NOW + 60)], True),
        ([_cookie("sessionid", value="")], False),  # a cleared cookie
        ([_cookie("ttwid"), _cookie("msToken")], False),
        ([], False),
    ],
)
def test_has_live_session_cookie(cookies: list[dict[str, object]], live: bool) -> None:
    assert has_live_session_cookie(cookies, NAMES, NOW) is live
