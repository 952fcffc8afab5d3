"""Starting the service: configuration checked first, one line on error; one typed state; redacted logs.

The application's lifespan runs for real (service, and cluster registry with REDIS_URL), without browsers.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.api.state import AppState, app_state
from app.core.config import Settings, load_settings
from app.main import create_app
from app.services.tiktok.service import TiktokService
from tests.support import REPO_ROOT, free_port
from tests.support.harness import SERVICE_VARIABLES, settings_for_test

STARTUP_DEADLINE = 60.0  # `python -m app` importing everything and listening, on a loaded machine
BOOLEAN_SETTINGS = sorted(name for name, field in Settings.model_fields.items() if field.annotation is bool)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the developer's shell nor a `.env` may decide what these tests see."""
    for name in list(os.environ):
        if name.upper() in SERVICE_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env there


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def quiet_settings(tmp_path: Path, **values: Any) -> Settings:
    return settings_for_test(USER_DATA_DIR=tmp_path, SESSION_ISOLATION="none", **values)


def run_app(arguments: list[str], tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if name.upper() not in SERVICE_VARIABLES}
    environment |= {"USER_DATA_DIR": str(tmp_path / "data"), "PORT": str(free_port()), **variables}
    return subprocess.run(
        [sys.executable, "-m", "app", *arguments],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=STARTUP_DEADLINE,
    )


# --- the one typed state --------------------------------------------------------------------------------


async def test_the_state_is_built_once_at_start_and_read_typed(tmp_path: Path, restore_logging: None) -> None:
    app = create_app(quiet_settings(tmp_path, API_KEYS=["client-key-0123456789"]))
    with pytest.raises(LookupError):
        app_state(app)
    async with app.router.lifespan_context(app):
        state = app_state(app)
        assert isinstance(state, AppState)
        assert isinstance(state.tiktok_service, TiktokService)
        assert state.api_keys == ("client-key-0123456789",)
        assert state.forwarder is None  # no REDIS_URL: no cluster


async def test_with_auth_disabled_the_state_holds_no_keys(tmp_path: Path, restore_logging: None) -> None:
    app = create_app(quiet_settings(tmp_path, AUTH_DISABLED=True))
    async with app.router.lifespan_context(app):
        assert app_state(app).api_keys is None


def test_importing_the_app_modules_reads_no_configuration(tmp_path: Path) -> None:
    # A configuration that would stop the program: only building the app may read it.
    check = "import app.main, app.server; print('imported')"
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HEADLESS": "flase"},
        capture_output=True,
        text=True,
        timeout=STARTUP_DEADLINE,
    )
    assert (result.returncode, result.stdout) == (0, "imported\n"), result.stderr


def test_app_asgi_is_the_built_app(tmp_path: Path) -> None:
    check = "from fastapi import FastAPI; from app.asgi import app; print(isinstance(app, FastAPI))"
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "USER_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=STARTUP_DEADLINE,
    )
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


# --- logs after start-up ----------------------------------------------------------------------------------


async def test_the_redis_password_is_redacted_after_start_up(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = quiet_settings(
        tmp_path,
        API_KEYS=["client-key-0123456789"],
        # Nothing listens there: the registry reports Redis unreachable and the service starts anyway.
        REDIS_URL=f"redis://:s3cret-redis-pw@127.0.0.1:{free_port()}/0",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        logging.getLogger("app.test").warning("redis refused the password %s", "s3cret-redis-pw")
    err = capsys.readouterr().err
    assert "redis refused the password ***" in err
    assert "s3cret-redis-pw" not in err


async def test_the_start_up_line_shows_the_tiktok_url_whole_when_a_proxy_is_set(
    tmp_path: Path, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # The proxy's URL is a prefix of the TikTok URL: blanked as a secret, it blanked most of it.
    app = create_app(
        quiet_settings(tmp_path, PROXY="http://127.0.0.1:812", TIKTOK_URL="http://127.0.0.1:8123")
    )
    async with app.router.lifespan_context(app):
        pass
    (started,) = [line for line in capsys.readouterr().err.splitlines() if "service.started" in line]
    assert "tiktok_url=http://127.0.0.1:8123/ proxy=http://127.0.0.1:812 " in started


# --- configuration errors: one line, exit code 2 ---------------------------------------------------------


@pytest.mark.parametrize("name", BOOLEAN_SETTINGS)
def test_a_bad_boolean_is_refused_naming_the_variable_the_value_and_the_accepted_words(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, "flase")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        f"configuration error: {name}: 'flase' is not a boolean; use true/false, 1/0, yes/no or on/off\n"
    )


def test_every_boolean_setting_is_covered() -> None:
    assert {"AUTH_DISABLED", "HEADLESS", "WRITE_MODE"} <= set(BOOLEAN_SETTINGS)


def unusable_user_data_dirs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    regular_file = tmp_path / "a-file"
    regular_file.write_text("not a directory")
    return {
        "in /proc": (Path("/proc/x"), "/proc/x cannot be created (No such file or directory)"),
        "a regular file": (regular_file, f"{regular_file} is not a directory"),
        "under a regular file": (
            regular_file / "data",
            f"{regular_file}/data cannot be created (Not a directory)",
        ),
        # Exists, and no file can be created in it, not even by root.
        "read-only": (Path("/proc/self"), "no file can be written in /proc/self (No such file or directory)"),
    }


@pytest.mark.parametrize("case", ["in /proc", "a regular file", "under a regular file", "read-only"])
def test_an_unusable_user_data_dir_is_refused_at_settings_load(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path, problem = unusable_user_data_dirs(tmp_path)[case]
    monkeypatch.setenv("USER_DATA_DIR", str(path))
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"configuration error: USER_DATA_DIR: {problem}\n"


def test_a_usable_user_data_dir_is_created_at_settings_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "new" / "data"
    monkeypatch.setenv("USER_DATA_DIR", str(data))
    loaded = load_settings().USER_DATA_DIR
    assert loaded == data
    assert data.is_dir()
    assert list(data.iterdir()) == []


def test_python_m_app_with_an_unusable_user_data_dir_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    result = run_app([], tmp_path, USER_DATA_DIR=str(tmp_path / "a-file"))
    assert result.returncode == 2
    assert result.stderr == f"configuration error: USER_DATA_DIR: {tmp_path / 'a-file'} is not a directory\n"


# --- python -m app ----------------------------------------------------------------------------------------


def test_python_m_app_help_prints_usage_and_exits_0_without_starting(tmp_path: Path) -> None:
    result = run_app(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m app [-h]")
    for mention in ("environment variable", ".env", "API_KEYS", "USER_DATA_DIR", "make run"):
        assert mention in result.stdout
    assert not (tmp_path / "data").exists(), "--help read the configuration"


def test_python_m_app_refuses_arguments(tmp_path: Path) -> None:
    result = run_app(["--port", "80"], tmp_path)
    assert result.returncode == 2
    assert "unrecognized arguments: --port 80" in result.stderr


def test_ctrl_c_stops_python_m_app_without_a_traceback(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    environment = {name: value for name, value in os.environ.items() if name.upper() not in SERVICE_VARIABLES}
    environment |= {
        "USER_DATA_DIR": str(tmp_path / "data"),
        "PORT": str(free_port()),
        "API_KEYS": "client-key-0123456789",
        "SESSION_ISOLATION": "none",
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app"], cwd=tmp_path, env=environment, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while "Uvicorn running on" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=STARTUP_DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text()
    assert "Application shutdown complete" in log.read_text()
