"""Settings: SPEC §5 defaults, refusal of unsafe values, CSV lists; and the generated API key file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.core.config import DetectionSettings, Settings, check_proxy_url, load_settings
from app.core.security import GENERATED_KEY_FILE, key_matches, load_or_create_keys


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the developer's shell nor a `.env` may decide what these tests see."""
    fields = {name.upper() for name in Settings.model_fields}
    fields |= {f"TIKTOK_{name}" for name in DetectionSettings.model_fields}
    for name in list(os.environ):
        if name.upper() in fields:
            monkeypatch.delenv(name)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def refused_variable(error: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {str(part) for problem in error.value.errors() for part in problem["loc"]}


# --- defaults ----------------------------------------------------------------------------------------------


def test_defaults_match_spec_section_5() -> None:
    config = settings()
    assert config.API_KEYS == []
    assert config.AUTH_DISABLED is False
    assert str(config.USER_DATA_DIR) == "user_data"
    assert config.TIKTOK_URL == "https://www.tiktok.com/"
    assert config.BROWSER_EXECUTABLE is None
    assert config.HEADLESS is True
    assert config.LOGIN_DETECTION_TIMEOUT == 8
    assert config.SESSION_START_TIMEOUT == 30
    assert config.MAX_SESSION_DURATION == 300
    assert config.MAX_SESSIONS == 4
    assert config.WRITE_MODE is False
    assert config.LOCK_TIMEOUT == 30
    assert config.PROXY is None
    assert config.WARM_SESSIONS == 0
    assert (config.LOG_LEVEL, config.LOG_FORMAT) == ("INFO", "console")
    assert config.PORT == 5681


def test_detection_defaults_match_spec_section_4() -> None:
    config = settings().detection
    assert config.SESSION_COOKIES == ["sessionid", "sessionid_ss", "sid_tt"]
    assert config.SESSION_GUARD_COOKIE == "sid_guard"
    assert config.ACCOUNT_INFO_PATH == "/passport/web/account/info/?aid=1988"
    assert config.LOGIN_PATH == "/login"
    assert set(config.LOGGED_OUT_SELECTORS) == {
        '[data-e2e="top-login-button"]',
        "#header-login-button",
        '[data-e2e="login-modal"]',
    }
    assert set(config.LOGGED_IN_SELECTORS) == {
        '[data-e2e="profile-icon"]',
        'a[data-e2e="nav-profile"][href^="/@"]',
    }
    assert {".secsdk-captcha-wrapper", "#captcha-verify", ".captcha_verify_container"} <= set(
        config.CAPTCHA_SELECTORS
    )
    assert "verify.tiktok.com" in config.CAPTCHA_FRAME_HOSTS


def test_derived_origin_and_host() -> None:
    config = settings(TIKTOK_URL="http://127.0.0.1:8123/some/page")
    assert (config.tiktok_origin, config.tiktok_host) == ("http://127.0.0.1:8123", "127.0.0.1")


# --- refused values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOGIN_DETECTION_TIMEOUT", "-1"),
        ("LOGIN_DETECTION_TIMEOUT", "0"),
        ("SESSION_START_TIMEOUT", "-30"),
        ("MAX_SESSION_DURATION", "-5"),
        ("LOCK_TIMEOUT", "-1"),
        ("LOGIN_DETECTION_TIMEOUT", "eight"),
        ("MAX_SESSIONS", "0"),
        ("WARM_SESSIONS", "-1"),
        ("PORT", "70000"),
        ("HEADLESS", "maybe"),
        ("AUTH_DISABLED", "maybe"),
        ("WRITE_MODE", "sometimes"),
        ("TIKTOK_URL", "ftp://www.tiktok.com/"),
        ("TIKTOK_URL", "www.tiktok.com"),
        ("TIKTOK_URL", "https://"),
        ("PROXY", "ftp://user:pass@host:21"),
        ("PROXY", "user:pass@host:8080"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "xml"),
        ("SESSION_IDLE_TIMEOUT", "-1"),
        ("WARM_RECHECK_INTERVAL", "0"),
        ("PUBLIC_URL", "sessions.example.com"),
    ],
    ids=lambda v: str(v),
)
def test_bad_value_from_environment_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        settings()
    assert name in refused_variable(error)


@pytest.mark.parametrize("value", [-1, -0.5, 0], ids=str)
def test_non_positive_timeout_kwarg_is_refused(value: float) -> None:
    with pytest.raises(ValidationError) as error:
        settings(LOGIN_DETECTION_TIMEOUT=value)
    assert "LOGIN_DETECTION_TIMEOUT" in refused_variable(error)


def test_session_start_timeout_shorter_than_detection_is_refused() -> None:
    with pytest.raises(ValidationError) as error:
        settings(SESSION_START_TIMEOUT=5, LOGIN_DETECTION_TIMEOUT=8)
    assert "SESSION_START_TIMEOUT" in str(error.value)


def test_session_start_timeout_equal_to_detection_is_accepted() -> None:
    assert settings(SESSION_START_TIMEOUT=8, LOGIN_DETECTION_TIMEOUT=8).SESSION_START_TIMEOUT == 8


def test_lock_timeout_of_zero_means_do_not_wait() -> None:
    assert settings(LOCK_TIMEOUT=0).LOCK_TIMEOUT == 0


def test_proxy_with_an_invalid_port_is_refused() -> None:
    # Accepted today, it crashes later: redact_proxy() reads .port when the service logs its start.
    with pytest.raises(ValidationError) as error:
        settings(PROXY="http://user:pass@proxy.example:99999")
    assert "PROXY" in refused_variable(error)


def test_bad_value_stops_the_program_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_SESSIONS", "-3")
    with pytest.raises(SystemExit) as stopped:
        load_settings()
    assert stopped.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: MAX_SESSIONS:")


def test_empty_variables_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BROWSER_EXECUTABLE", "PUBLIC_URL", "MAX_SESSIONS", "TIKTOK_URL", "TIKTOK_SESSION_COOKIES"):
        monkeypatch.setenv(name, "")
    config = settings()
    assert (config.BROWSER_EXECUTABLE, config.PUBLIC_URL) == (None, None)
    assert (config.MAX_SESSIONS, config.TIKTOK_URL) == (4, "https://www.tiktok.com/")
    assert config.detection.SESSION_COOKIES == ["sessionid", "sessionid_ss", "sid_tt"]


def test_public_url_loses_its_trailing_slash() -> None:
    assert settings(PUBLIC_URL="https://sessions.example.com/base/").PUBLIC_URL == (
        "https://sessions.example.com/base"
    )


# --- accepted values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("no", False)],
)
def test_booleans_from_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("AUTH_DISABLED", value)
    assert settings().AUTH_DISABLED is expected


def test_api_keys_parse_as_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", " key-one, key-two ,,key-three,")
    keys = [key.get_secret_value() for key in settings().API_KEYS]
    assert keys == ["key-one", "key-two", "key-three"]


def test_api_keys_are_secret_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", "key-one")
    assert "key-one" not in repr(settings())


def test_empty_api_keys_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEYS", "")
    assert settings().API_KEYS == []


def test_csv_lists_parse_from_environment_and_kwargs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_SESSION_COOKIES", "sessionid, sid_tt")
    assert settings().detection.SESSION_COOKIES == ["sessionid", "sid_tt"]
    knobs = DetectionSettings(_env_file=None, CAPTCHA_FRAME_HOSTS="verify.local,captcha.local")
    assert knobs.CAPTCHA_FRAME_HOSTS == ["verify.local", "captcha.local"]


def test_selector_containing_no_comma_survives_csv_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOK_LOGGED_IN_SELECTORS", 'a[data-e2e="nav-profile"][href^="/@"]')
    assert settings().detection.LOGGED_IN_SELECTORS == ['a[data-e2e="nav-profile"][href^="/@"]']


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123/"),
        ("https://www.tiktok.com/", "https://www.tiktok.com/"),
        ("HTTPS://www.tiktok.com", "HTTPS://www.tiktok.com/"),
    ],
)
def test_tiktok_url_accepts_http_and_https(value: str, expected: str) -> None:
    url = settings(TIKTOK_URL=value).TIKTOK_URL
    assert url == expected


def test_proxy_with_credentials_is_accepted_and_secret() -> None:
    config = settings(PROXY="socks5://user:s3cr3t-pw@10.0.0.1:1080")
    assert config.PROXY is not None
    assert config.PROXY.get_secret_value() == "socks5://user:s3cr3t-pw@10.0.0.1:1080"
    assert "s3cr3t-pw" not in repr(config)


def test_empty_proxy_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY", "")
    assert settings().PROXY is None


def test_url_settings_keep_the_text_as_written() -> None:
    # pydantic's URL objects would read `http://127.0.0.1:812/`, `p%40ss` and `unix://localhost:6379/…`.
    config = settings(
        PROXY="http://agent:p@ss@127.0.0.1:812",
        REDIS_URL="unix:///run/redis.sock",
        API_KEYS=["k"],
        PUBLIC_URL="https://Sessions.example.com:443/base/",
    )
    assert config.PROXY is not None and config.PROXY.get_secret_value() == "http://agent:p@ss@127.0.0.1:812"
    assert config.REDIS_URL is not None and config.REDIS_URL.get_secret_value() == "unix:///run/redis.sock"
    assert config.PUBLIC_URL == "https://Sessions.example.com:443/base"
    assert (
        settings(TIKTOK_URL="http://127.0.0.1:8123/some/page").TIKTOK_URL
        == "http://127.0.0.1:8123/some/page/"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIKTOK_URL", "http:www.tiktok.com"),  # a URL to the WHATWG parser, hostless to urlsplit
        ("PROXY", "http:proxy.example:3128"),
        ("REDIS_URL", "http://redis.example:6379/0"),
        ("INSTANCE_URL", "ftp://peer.example"),
    ],
)
def test_url_forms_the_service_cannot_read_are_refused(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as error:
        settings(**{name: value}, API_KEYS=["k"])
    assert refused_variable(error) == {name}


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ftp://agent:pr0xy-s3cret@proxy.example:21", "URL scheme should be"),
        ("http://agent:pr0xy-s3cret@proxy.example:99999", "invalid port number"),
        ("agent:pr0xy-s3cret@proxy.example:3128", "scheme"),
    ],
)
def test_a_refused_proxy_names_the_form_and_never_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str, reason: str
) -> None:
    monkeypatch.setenv("PROXY", value)
    with pytest.raises(ValidationError) as error:
        settings()
    assert "pr0xy-s3cret" not in str(error.value)
    with pytest.raises(SystemExit):
        load_settings()
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("configuration error: PROXY: must look like scheme://user:pass@host:port")
    assert reason in line and "pr0xy-s3cret" not in line


def test_a_refused_redis_url_never_shows_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:r3dis-s3cret@redis.example:99999/0")
    monkeypatch.setenv("API_KEYS", "k")
    with pytest.raises(ValidationError) as error:
        settings()
    assert refused_variable(error) == {"REDIS_URL"}
    assert "r3dis-s3cret" not in str(error.value) and "redis://[:password@]host:port/db" in str(error.value)


def test_an_accounts_proxy_is_checked_like_proxy() -> None:
    check_proxy_url("socks5://agent:pw@10.0.0.1:1080")
    with pytest.raises(ValueError, match="must look like scheme://user:pass@host:port") as refused:
        check_proxy_url("ftp://agent:pr0xy-s3cret@proxy.example:21")
    assert "pr0xy-s3cret" not in str(refused.value)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_SESSIONS=7\nHEADLESS=false\n")
    config = Settings(_env_file=env_file)
    assert (config.MAX_SESSIONS, config.HEADLESS) == (7, False)


def test_environment_beats_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_SESSIONS=7\n")
    monkeypatch.setenv("MAX_SESSIONS", "2")
    assert Settings(_env_file=env_file).MAX_SESSIONS == 2


# --- the generated API key (API_KEYS unset) ----------------------------------------------------------------


def test_configured_keys_win_and_no_file_is_written(tmp_path: Path) -> None:
    assert load_or_create_keys(["a", "b"], tmp_path / "data") == ("a", "b")
    assert not (tmp_path / "data").exists()


def test_generated_key_file_is_owner_only(tmp_path: Path) -> None:
    (key,) = load_or_create_keys([], tmp_path / "data")
    key_file = tmp_path / "data" / GENERATED_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == key
    assert len(key) >= 32


def test_generated_key_is_kept_across_restarts(tmp_path: Path) -> None:
    first = load_or_create_keys([], tmp_path)
    assert load_or_create_keys([], tmp_path) == first
    assert key_matches(first[0], load_or_create_keys([], tmp_path))


def test_generated_keys_differ_between_installations(tmp_path: Path) -> None:
    assert load_or_create_keys([], tmp_path / "one") != load_or_create_keys([], tmp_path / "two")


def test_empty_key_file_is_replaced_by_a_new_key(tmp_path: Path) -> None:
    (tmp_path / GENERATED_KEY_FILE).write_text("\n")
    (key,) = load_or_create_keys([], tmp_path)
    assert key
    assert (tmp_path / GENERATED_KEY_FILE).read_text().strip() == key
    assert stat.S_IMODE((tmp_path / GENERATED_KEY_FILE).stat().st_mode) == 0o600
