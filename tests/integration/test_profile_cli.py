"""The profile CLI as a person runs it: a real process, real files, a real Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.services.common.browser import browser_pids_using
from app.services.common.generation import bump_generation, read_generation
from app.services.common.user_data import UserDataLayout
from tests.support import REPO_ROOT
from tests.support.harness import SERVICE_VARIABLES, main_browser_pids, running_service
from tests.support.holders import held_by_other_process
from tests.support.profiles import export_cookies_txt, install_master
from tests.support.standin.server import StandinServer

pytestmark = pytest.mark.browser

STATUS_KEYS = {"account", "state", "method", "elapsed_ms", "details", "generation", "username"}


def cli_environment(user_data: Path, site: StandinServer, **settings: str) -> dict[str, str]:
    # The developer's shell (and any .env: the CLI runs outside the repo) decides none of the settings.
    env = {name: value for name, value in os.environ.items() if name.upper() not in SERVICE_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env | {"USER_DATA_DIR": str(user_data), "TIKTOK_URL": site.url} | settings


def run_cli(
    user_data: Path,
    site: StandinServer,
    *args: str,
    stdin: str = "",
    command: tuple[str, ...] = (sys.executable, "-m", "app.cli"),
    umask: int = -1,
    **settings: str,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, "profile", *args],
        cwd=user_data.parent,
        env=cli_environment(user_data, site, **settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        umask=umask,
    )


def status_json(user_data: Path, site: StandinServer, **settings: str) -> tuple[int, dict[str, object]]:
    result = run_cli(user_data, site, "status", "--json", **settings)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    return result.returncode, json.loads(lines[0])


def desktop_export(site: StandinServer, user: str, path: Path) -> Path:
    """What Cookie-Editor writes on tiktok.com: the stand-in's login cookies, under `.tiktok.com`."""
    with httpx.Client() as client:
        client.get(site.url_for(f"__standin/login?user={user}"), follow_redirects=False)
        entries = [
            {
                "domain": ".tiktok.com",
                "expirationDate": float(cookie.expires),  # the stand-in's cookies all have a max-age
                "hostOnly": False,
                "httpOnly": True,
                "name": cookie.name,
                "path": cookie.path,
                "sameSite": "lax",
                "secure": False,
                "session": False,
                "value": cookie.value,
            }
            for cookie in client.cookies.jar
        ]
    path.write_text(json.dumps(entries))
    return path


# --- import-cookies --------------------------------------------------------------------------------


def test_imported_cookies_make_a_master_the_service_accepts(tmp_path: Path, site: StandinServer) -> None:
    cookies = tmp_path / "cookies.txt"
    export_cookies_txt(site.url_for("__standin/login?user=erin"), cookies)
    imported = run_cli(tmp_path / "ud", site, "import-cookies", str(cookies))
    assert imported.returncode == 0, imported.stderr
    assert (UserDataLayout(tmp_path / "ud").master / "Default" / "Cookies").is_file()

    status = run_cli(tmp_path / "ud", site, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.startswith("logged_in")
    assert list((tmp_path / "ud" / "clones").iterdir()) == []


async def test_service_hands_out_a_session_on_an_imported_master(tmp_path: Path, site: StandinServer) -> None:
    cookies = tmp_path / "cookies.txt"
    export_cookies_txt(site.url_for("__standin/login?user=frank"), cookies)
    imported = await asyncio.to_thread(run_cli, tmp_path / "ud", site, "import-cookies", str(cookies))
    assert imported.returncode == 0, imported.stderr
    async with running_service(tmp_path / "ud", site.url) as service:
        response = await service.client.post("/tiktok/session")
        assert response.status_code == 200, response.text


def test_import_changes_the_generation(tmp_path: Path, site: StandinServer) -> None:
    layout = UserDataLayout(tmp_path / "ud")
    cookies = tmp_path / "cookies.txt"
    export_cookies_txt(site.url_for("__standin/login?user=gus"), cookies)
    assert run_cli(layout.root, site, "import-cookies", str(cookies)).returncode == 0
    first = read_generation(layout)
    assert first is not None and first.startswith("1-")
    assert run_cli(layout.root, site, "import-cookies", str(cookies)).returncode == 0
    second = read_generation(layout)
    assert second is not None and second.startswith("2-")


def test_guest_only_cookie_file_is_refused_and_no_master_is_made(tmp_path: Path, site: StandinServer) -> None:
    cookies = tmp_path / "guest.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n{site.host}\tFALSE\t/\tFALSE\t0\tttwid\tguest\n")
    result = run_cli(tmp_path / "ud", site, "import-cookies", str(cookies))
    assert result.returncode == 2
    assert "no TikTok session cookie" in result.stderr
    assert not UserDataLayout(tmp_path / "ud").master.exists()


def test_a_missing_cookie_file_is_bad_usage(tmp_path: Path, site: StandinServer) -> None:
    result = run_cli(tmp_path / "ud", site, "import-cookies", str(tmp_path / "nowhere.json"))
    assert result.returncode == 2
    assert f"cannot read {tmp_path / 'nowhere.json'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_tiktok_com_export_is_refused_for_the_standin_host_without_a_domain_map(
    tmp_path: Path, site: StandinServer
) -> None:
    export = desktop_export(site, "hana", tmp_path / "tiktok.com.json")
    result = run_cli(tmp_path / "ud", site, "import-cookies", str(export))
    assert result.returncode == 2
    # Names what the file holds and the way to use it.
    assert f"no cookie in the file is for {site.host}" in result.stderr
    assert f"--domain-map .tiktok.com={site.host}" in result.stderr


def test_domain_map_loads_a_tiktok_com_export_for_the_standin_host(
    tmp_path: Path, site: StandinServer
) -> None:
    export = desktop_export(site, "ivan", tmp_path / "tiktok.com.json")
    imported = run_cli(
        tmp_path / "ud", site, "import-cookies", str(export), "--domain-map", f".tiktok.com={site.host}"
    )
    assert imported.returncode == 0, imported.stderr
    code, status = status_json(tmp_path / "ud", site)
    assert (code, status["state"]) == (0, "logged_in"), status


# --- export-cookies --------------------------------------------------------------------------------


def test_export_file_is_created_owner_only(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path / "ud")
    target = tmp_path / "cookies.json"
    # umask 0: only a file created 0600 on purpose comes out private.
    result = run_cli(tmp_path / "ud", site, "export-cookies", "-o", str(target), umask=0)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    cookies = json.loads(target.read_text())
    assert {"sessionid", "sid_tt", "sid_guard"} <= {cookie["name"] for cookie in cookies}
    assert {cookie["domain"] for cookie in cookies} == {site.host}
    assert result.stdout.startswith("Exported ")
    assert not [c["name"] for c in cookies if c["value"] and c["value"] in result.stdout + result.stderr]


def test_export_without_a_file_writes_the_cookies_to_stdout(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path / "ud")
    result = run_cli(tmp_path / "ud", site, "export-cookies", "--format", "netscape")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "# Netscape HTTP Cookie File"
    session = [
        line for line in lines if line.startswith(f"#HttpOnly_{site.host}\t") and "\tsessionid\t" in line
    ]
    assert len(session) == 1, result.stdout


def test_export_without_a_master_exits_3_and_says_how_to_make_one(
    tmp_path: Path, site: StandinServer
) -> None:
    result = run_cli(tmp_path / "ud", site, "export-cookies", "-o", str(tmp_path / "cookies.json"))
    assert result.returncode == 3
    assert "profile login" in result.stderr
    assert not (tmp_path / "cookies.json").exists()


@pytest.mark.parametrize("export_format", ["json", "netscape"])
def test_an_exported_master_imports_into_a_fresh_user_data_dir_logged_in(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], export_format: str
) -> None:
    install_master(master_profiles["logged_in"], tmp_path / "source")
    exported = tmp_path / f"cookies.{export_format}"
    result = run_cli(
        tmp_path / "source", site, "export-cookies", "--format", export_format, "-o", str(exported)
    )
    assert result.returncode == 0, result.stderr
    imported = run_cli(tmp_path / "fresh", site, "import-cookies", str(exported))
    assert imported.returncode == 0, imported.stderr
    code, status = status_json(tmp_path / "fresh", site)
    assert (code, status["state"]) == (0, "logged_in"), status


# --- status ----------------------------------------------------------------------------------------


def test_status_without_a_master_exits_3_and_says_how_to_make_one(
    tmp_path: Path, site: StandinServer
) -> None:
    result = run_cli(tmp_path / "ud", site, "status")
    assert result.returncode == 3
    assert result.stdout.startswith("logged_out")
    assert "profile login" in result.stdout


def test_status_json_is_one_object_with_the_detection_and_the_generation(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path / "ud")
    generation = bump_generation(UserDataLayout(tmp_path / "ud"))
    code, status = status_json(tmp_path / "ud", site)
    assert code == 0
    assert set(status) == STATUS_KEYS
    assert status["state"] == "logged_in"
    assert status["method"] == "account_api"
    assert isinstance(status["elapsed_ms"], int) and status["elapsed_ms"] > 0
    assert "logged in" in str(status["details"])
    assert status["generation"] == generation


def test_status_json_without_a_master_says_no_master(tmp_path: Path, site: StandinServer) -> None:
    code, status = status_json(tmp_path / "ud", site)
    assert code == 3
    assert set(status) == STATUS_KEYS
    assert (status["state"], status["method"], status["generation"]) == ("logged_out", "no_master", None)
    assert "profile import-cookies" in str(status["details"])


def test_status_of_a_logged_out_master_exits_3(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_out"], tmp_path / "ud")
    code, status = status_json(tmp_path / "ud", site)
    assert (code, status["state"]) == (3, "logged_out"), status


def test_status_behind_a_captcha_exits_4_uncertain(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path / "ud")
    site.set_mode("captcha")
    code, status = status_json(tmp_path / "ud", site)
    assert (code, status["state"]) == (4, "uncertain"), status
    assert "captcha" in str(status["details"]).lower()


def test_status_when_tiktok_does_not_load_exits_4_uncertain(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    install_master(master_profiles["logged_in"], tmp_path / "ud")
    site.set_mode("hanging")
    code, status = status_json(tmp_path / "ud", site, LOGIN_DETECTION_TIMEOUT="2", SESSION_START_TIMEOUT="10")
    assert (code, status["state"]) == (4, "uncertain"), status
    assert "did not load" in str(status["details"])


def test_bad_configuration_exits_2_naming_the_variable(tmp_path: Path, site: StandinServer) -> None:
    result = run_cli(tmp_path / "ud", site, "status", LOCK_TIMEOUT="-1")
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: LOCK_TIMEOUT")


# --- the exclusive lock ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("status", "--json"),
        ("import-cookies", "COOKIES"),
        ("export-cookies",),
        ("reset", "--yes"),
        ("login",),
    ],
    ids=lambda command: " ".join(command),
)
async def test_a_master_held_by_another_process_exits_5_naming_lock_timeout(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], command: tuple[str, ...]
) -> None:
    layout = UserDataLayout(tmp_path / "ud")
    install_master(master_profiles["logged_in"], layout.root)
    cookies = tmp_path / "cookies.txt"
    export_cookies_txt(site.url_for("__standin/login?user=jill"), cookies)
    args = [str(cookies) if arg == "COOKIES" else arg for arg in command]
    async with held_by_other_process("exclusive", layout.lock_file):
        # A display named (never opened: the lock is refused first), so `login` gets as far as the lock.
        result = await asyncio.to_thread(
            run_cli, layout.root, site, *args, LOCK_TIMEOUT="0.5", DISPLAY=":9999"
        )
    assert result.returncode == 5, result.stdout + result.stderr
    assert "LOCK_TIMEOUT=0.5 s" in result.stdout + result.stderr
    assert browser_pids_using(layout.master) == []
    assert (layout.master / "Default").is_dir()
    assert read_generation(layout) is None


# --- reset -----------------------------------------------------------------------------------------


def test_reset_with_yes_deletes_the_master_and_changes_the_generation(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path]
) -> None:
    master = install_master(master_profiles["logged_in"], tmp_path / "ud")
    result = run_cli(tmp_path / "ud", site, "reset", "--yes")
    assert result.returncode == 0, result.stderr
    assert not master.exists()
    assert "[y/N]" not in result.stdout
    generation = read_generation(UserDataLayout(tmp_path / "ud"))
    assert generation is not None and generation.startswith("1-")


@pytest.mark.parametrize("answer", ["y\n", "YES\n"])
def test_reset_asks_first_and_deletes_on_yes(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], answer: str
) -> None:
    master = install_master(master_profiles["logged_in"], tmp_path / "ud")
    result = run_cli(tmp_path / "ud", site, "reset", stdin=answer)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Delete the master profile at {master}? [y/N] ")
    assert not master.exists()


@pytest.mark.parametrize("answer", ["n\n", "\n", "", "yes please\n"], ids=["n", "enter", "eof", "other"])
def test_reset_keeps_the_master_on_any_other_answer(
    tmp_path: Path, site: StandinServer, master_profiles: dict[str, Path], answer: str
) -> None:
    master = install_master(master_profiles["logged_in"], tmp_path / "ud")
    result = run_cli(tmp_path / "ud", site, "reset", stdin=answer)
    assert result.returncode == 1
    assert "Aborted" in result.stdout
    assert (master / "Default" / "Cookies").is_file()
    assert read_generation(UserDataLayout(tmp_path / "ud")) is None


def test_reset_without_a_master_has_nothing_to_delete(tmp_path: Path, site: StandinServer) -> None:
    result = run_cli(tmp_path / "ud", site, "reset")
    assert result.returncode == 0
    assert "nothing to delete" in result.stdout
    assert read_generation(UserDataLayout(tmp_path / "ud")) is None


# --- the command itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["login", "import-cookies", "export-cookies", "status", "reset"])
def test_every_command_has_help(tmp_path: Path, site: StandinServer, action: str) -> None:
    result = run_cli(tmp_path / "ud", site, action, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m app.cli profile {action} [-h]")
    assert "5 master locked past LOCK_TIMEOUT" in " ".join(result.stdout.split())


def test_the_console_script_runs_the_cli(tmp_path: Path, site: StandinServer) -> None:
    script = Path(sys.executable).parent / "tiktok-sessions"
    assert script.is_file(), "the console script is missing: `pip install -e .` (make install) creates it"
    result = run_cli(tmp_path / "ud", site, "status", "--json", command=(str(script),))
    assert result.returncode == 3, result.stderr
    assert json.loads(result.stdout)["method"] == "no_master"
    help_text = run_cli(tmp_path / "ud", site, "reset", "--help", command=(str(script),))
    assert help_text.stdout.startswith("usage: tiktok-sessions profile reset")


# --- login (the full login by a person is tests/integration/test_profile_login.py) -------------------


def test_login_ends_cleanly_when_the_browser_is_terminated_while_tiktok_loads(
    tmp_path: Path, site: StandinServer, display: str
) -> None:
    user_data = tmp_path / "ud"
    master = UserDataLayout(user_data).master
    site.set_mode("hanging")  # the start page never arrives: the window is certainly still loading
    site.reset_request_counts()
    login = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "profile", "login"],
        cwd=tmp_path,
        env=cli_environment(user_data, site),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The window is up once it has asked TikTok for its start page.
        deadline = time.monotonic() + 60
        while not site.request_counts().get("/"):
            assert login.poll() is None, login.communicate()
            assert time.monotonic() < deadline, "the login window never asked for TikTok"
            time.sleep(0.1)
        pids = main_browser_pids(master)
        assert len(pids) == 1, "no browser window opened on the master"
        # A session ending or a system shutdown: Chromium shuts down cleanly on SIGTERM.
        os.kill(pids[0], signal.SIGTERM)
        out, err = login.communicate(timeout=30)
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
    assert login.returncode == 0, err
    assert "master profile is saved" in out
    assert (master / "Default" / "Preferences").is_file()
    assert browser_pids_using(master) == []
