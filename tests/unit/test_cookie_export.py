"""Export of the master's cookies: the two import formats, and a file no other user can read."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.services.common.files import replace_atomically
from app.services.tiktok.cookie_export import render_cookies
from app.services.tiktok.cookie_import import parse_cookie_file

# As Playwright's `context.cookies()` reports them.
SESSION = {
    "name": "sessionid",
    "value": "abc123",
    "domain": ".tiktok.com",
    "path": "/",
    "expires": 1801307884.5,
    "httpOnly": True,
    "secure": True,
    "sameSite": "None",
}
GUEST = {
    "name": "msToken",
    "value": "guest",
    "domain": "www.tiktok.com",
    "path": "/",
    "expires": -1,
    "httpOnly": False,
    "secure": False,
    "sameSite": "Lax",
}


def test_json_export_is_what_cookie_editor_writes() -> None:
    assert json.loads(render_cookies([GUEST, SESSION], "json")) == [
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
            "storeId": None,
            "value": "abc123",
        },
        {
            "domain": "www.tiktok.com",
            "hostOnly": True,
            "httpOnly": False,
            "name": "msToken",
            "path": "/",
            "sameSite": "lax",
            "secure": False,
            "session": True,
            "storeId": None,
            "value": "guest",
        },
    ]


def test_netscape_export_marks_http_only_and_domain_cookies() -> None:
    lines = render_cookies([GUEST, SESSION], "netscape").splitlines()
    assert lines[0] == "# Netscape HTTP Cookie File"
    assert [line for line in lines if not line.startswith("# ")] == [
        "#HttpOnly_.tiktok.com\tTRUE\t/\tTRUE\t1801307884\tsessionid\tabc123",
        "www.tiktok.com\tFALSE\t/\tFALSE\t0\tmsToken\tguest",
    ]


@pytest.mark.parametrize("export_format", ["json", "netscape"])
def test_an_export_imports_back_as_the_same_cookies(export_format: str) -> None:
    imported = parse_cookie_file(render_cookies([SESSION, GUEST], export_format))
    session_expires = 1801307884.5 if export_format == "json" else 1801307884.0
    assert sorted(imported, key=lambda c: c["name"]) == [
        {
            "name": "msToken",
            "value": "guest",
            "domain": "www.tiktok.com",
            "path": "/",
            "httpOnly": False,
            "secure": False,
        }
        | ({"sameSite": "Lax"} if export_format == "json" else {}),
        {
            "name": "sessionid",
            "value": "abc123",
            "domain": ".tiktok.com",
            "path": "/",
            "httpOnly": True,
            "secure": True,
            "expires": session_expires,
        }
        | ({"sameSite": "None"} if export_format == "json" else {}),
    ]


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 0: a file created with the default 0666 would come out world-readable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_file_is_created_owner_only(tmp_path: Path, permissive_umask: None) -> None:
    target = tmp_path / "cookies.json"
    replace_atomically(target, "[]\n")
    assert target.read_text() == "[]\n"
    assert mode_of(target) == 0o600


def test_private_file_replaces_a_world_readable_one(tmp_path: Path, permissive_umask: None) -> None:
    target = tmp_path / "cookies.txt"
    target.write_text("old export\n")
    target.chmod(0o644)
    replace_atomically(target, "new export\n")
    assert target.read_text() == "new export\n"
    assert mode_of(target) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == ["cookies.txt"]


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "a-directory"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        replace_atomically(target, "[]\n")
    assert [path.name for path in tmp_path.iterdir()] == ["a-directory"]
