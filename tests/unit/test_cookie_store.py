"""The pre-launch look at a profile's cookie database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

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
