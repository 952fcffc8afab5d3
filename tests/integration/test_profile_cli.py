"""The profile CLI as a person runs it: a real process, real files, a real Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.services.common.browser import browser_pids_using
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


def test_login_opens_a_visible_window_on_the_master_and_ends_when_it_closes(
    tmp_path: Path, site: StandinServer, display: str
) -> None:
    user_data = tmp_path / "ud"
    env = {**os.environ, "USER_DATA_DIR": str(user_data), "TIKTOK_URL": site.url}
    site.reset_request_counts()
    login = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "profile", "login"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        master = user_data / "master"
        # The window is up once it has asked TikTok for its start page.
        deadline = time.monotonic() + 30
        while not site.request_counts().get("/") and time.monotonic() < deadline:
            assert login.poll() is None, login.communicate()
            time.sleep(0.1)
        pids = browser_pids_using(master)
        assert pids, "no browser window opened on the master"
        arguments = Path(f"/proc/{pids[0]}/cmdline").read_bytes().decode().split("\0")
        assert not any(argument.startswith("--headless") for argument in arguments)
        # The person closes the window: Chromium shuts down cleanly on SIGTERM, like on its close button.
        os.kill(pids[0], signal.SIGTERM)
        out, err = login.communicate(timeout=30)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, err
    assert "master profile is saved" in out
    assert (master / "Default" / "Preferences").is_file()
    assert browser_pids_using(master) == []
