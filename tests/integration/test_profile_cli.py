"""The profile CLI as a person runs it: a real process, real files, a real Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.profiles import export_cookies_txt
from tests.fakes.server import REPO_ROOT, StandinServer
from tests.service_harness import running_service

pytestmark = pytest.mark.browser


def run_cli(user_data: Path, site: StandinServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "USER_DATA_DIR": str(user_data), "TIKTOK_URL": site.url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "profile", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_imported_cookies_make_a_master_the_service_accepts(tmp_path: Path, site: StandinServer) -> None:
    cookies = tmp_path / "cookies.txt"
    export_cookies_txt(site.url_for("__standin/login?user=erin"), cookies)
    imported = run_cli(tmp_path / "ud", site, "import-cookies", str(cookies))
    assert imported.returncode == 0, imported.stderr
    assert (tmp_path / "ud" / "master" / "Default" / "Cookies").is_file()

    status = run_cli(tmp_path / "ud", site, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("logged_in")
    assert list((tmp_path / "ud" / "clones").iterdir()) == []


async def test_service_hands_out_a_session_on_an_imported_master(tmp_path: Path, site: StandinServer) -> None:
    cookies = tmp_path / "cookies.txt"
    export_cookies_txt(site.url_for("__standin/login?user=frank"), cookies)
    assert run_cli(tmp_path, site, "import-cookies", str(cookies)).returncode == 0
    async with running_service(tmp_path, site.url) as service:
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text


def test_guest_only_cookie_file_is_refused_and_no_master_is_made(tmp_path: Path, site: StandinServer) -> None:
    cookies = tmp_path / "guest.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n{site.host}\tFALSE\t/\tFALSE\t0\tttwid\tguest\n")
    result = run_cli(tmp_path / "ud", site, "import-cookies", str(cookies))
    assert result.returncode == 2
    assert "no TikTok session cookie" in result.stderr
    assert not (tmp_path / "ud" / "master").exists()


def test_status_without_a_master_says_how_to_make_one(tmp_path: Path, site: StandinServer) -> None:
    result = run_cli(tmp_path / "ud", site, "status")
    assert result.returncode == 1
    assert "profile login" in result.stdout
