"""Service configuration (pydantic-settings). Names match SPEC §5 one to one.

`Settings` holds what the whole service reads. The login-detection knobs (`TIKTOK_*` selectors, endpoint
patterns, cookie names) are read by the detection package alone, so they are their own model,
`DetectionSettings`, with the `TIKTOK_` prefix, handed to the detector as it is.
"""

from __future__ import annotations

import socket
import sys
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AnyUrl,
    BeforeValidator,
    Field,
    RedisDsn,
    SecretStr,
    TypeAdapter,
    UrlConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PositiveSeconds = Annotated[float, Field(gt=0)]
# 0 switches the timeout off.
OptionalSeconds = Annotated[float, Field(ge=0)]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# `A,B,C` in the environment; NoDecode keeps pydantic-settings from trying to read it as JSON first.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]

_ENV = {"env_file": ".env", "env_file_encoding": "utf-8", "extra": "ignore", "env_ignore_empty": True}


class DetectionSettings(BaseSettings):
    """What login detection looks for on TikTok (SPEC §4: all of it is configuration)."""

    model_config = SettingsConfigDict(env_prefix="TIKTOK_", **_ENV)

    ACCOUNT_INFO_PATH: str = "/passport/web/account/info/?aid=1988"
    ACCOUNT_RESPONSE_PATTERNS: CommaList = ["/passport/web/account/info/"]
    SESSION_COOKIES: CommaList = ["sessionid", "sessionid_ss", "sid_tt"]
    SESSION_GUARD_COOKIE: str = "sid_guard"
    LOGGED_OUT_SELECTORS: CommaList = [
        '[data-e2e="top-login-button"]',
        "#header-login-button",
        '[data-e2e="login-modal"]',
    ]
    LOGGED_IN_SELECTORS: CommaList = [
        '[data-e2e="profile-icon"]',
        'a[data-e2e="nav-profile"][href^="/@"]',
    ]
    CAPTCHA_SELECTORS: CommaList = [
        ".secsdk-captcha-wrapper",
        "#captcha-verify",
        ".captcha_verify_container",
        'iframe[src*="verify.tiktok.com"]',
    ]
    CAPTCHA_FRAME_HOSTS: CommaList = ["verify.tiktok.com"]
    BAN_SELECTORS: CommaList = ['[data-e2e="ban-notice"]', '[data-e2e="account-banned"]']
    BAN_TEXTS: CommaList = [
        "account was permanently banned",
        "account has been permanently banned",
        "account was banned",
        "account has been banned",
        "account has been suspended",
        "account was suspended",
    ]
    LOGIN_PATH: str = "/login"


def checked_as(url_type: Any, form: str) -> Callable[[Any], Any]:
    """A validator that accepts what pydantic's `url_type` accepts and returns the text as written.

    The text, not the URL object: the object's normal form differs from what the rest of the service
    reads (`http://host:1` gains a slash, a raw `@` in a password becomes `%40`, a default port goes),
    and a changed PROXY or TIKTOK_URL would show in logs and in what the browser is given. The refusal
    names the accepted `form` and pydantic's reason, never the value: a proxy's or Redis's URL holds a
    password.
    """
    adapter = TypeAdapter(url_type)

    def check(value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        try:
            url = adapter.validate_python(text)
        except ValidationError as error:
            problem = error.errors(include_url=False, include_input=False)[0]
            reason = (problem.get("ctx") or {}).get("error") or problem["msg"]
            raise PydanticCustomError(
                "url_form", "{form} ({reason})", {"form": form, "reason": reason}
            ) from None
        # The WHATWG parser also takes `http:host`; urlsplit, which every user of these reads them with,
        # finds no host there.
        if not text.lower().startswith(f"{url.scheme}://"):
            raise PydanticCustomError("url_form", "{form}", {"form": form})
        return value

    return check


def _with_trailing_slash(url: str) -> str:
    # TIKTOK_URL is the base that paths (LOGIN_PATH...) are joined onto with urljoin.
    return url if url.endswith("/") else url + "/"


def _without_trailing_slash(url: str) -> str:
    # Base URLs that paths are appended to with a slash of their own.
    return url.rstrip("/")


ProxyUrl = Annotated[AnyUrl, UrlConstraints(allowed_schemes=["http", "https", "socks5"], host_required=True)]
# redis-py also reads unix:// (a socket path); RedisDsn alone knows only redis and rediss.
RedisUrl = Annotated[RedisDsn, UrlConstraints(allowed_schemes=["redis", "rediss", "unix"])]

_check_proxy = checked_as(
    ProxyUrl, "must look like scheme://user:pass@host:port, scheme http, https or socks5"
)
TiktokUrl = Annotated[
    str,
    AfterValidator(checked_as(AnyHttpUrl, "must be an http(s) URL such as https://www.tiktok.com/")),
    AfterValidator(_with_trailing_slash),
]
PublicUrl = Annotated[
    str,
    AfterValidator(
        checked_as(
            AnyHttpUrl, "must be the http(s) base URL clients use, such as https://sessions.example.com"
        )
    ),
    AfterValidator(_without_trailing_slash),
]
InstanceUrl = Annotated[
    str,
    AfterValidator(checked_as(AnyHttpUrl, "must be the http(s) base URL other instances reach this one at")),
    AfterValidator(_without_trailing_slash),
]
SecretProxyUrl = Annotated[SecretStr, BeforeValidator(_check_proxy)]
SecretRedisUrl = Annotated[
    SecretStr, BeforeValidator(checked_as(RedisUrl, "must look like redis://[:password@]host:port/db"))
]


def check_proxy_url(url: str) -> None:
    """ValueError unless `url` is a usable proxy URL (also for an account's own proxy)."""
    try:
        _check_proxy(url)
    except PydanticCustomError as error:
        raise ValueError(error.message()) from None


class Settings(BaseSettings):
    # The value refused is left out of an error's text: PROXY and REDIS_URL carry passwords.
    model_config = SettingsConfigDict(hide_input_in_errors=True, **_ENV)

    API_KEYS: Annotated[list[SecretStr], NoDecode, BeforeValidator(_split_csv)] = []
    AUTH_DISABLED: bool = False
    USER_DATA_DIR: Path = Path("./user_data")
    TIKTOK_URL: TiktokUrl = "https://www.tiktok.com/"
    BROWSER_EXECUTABLE: Path | None = None
    HEADLESS: bool = True
    LOGIN_DETECTION_TIMEOUT: PositiveSeconds = 8
    SESSION_START_TIMEOUT: PositiveSeconds = 30
    MAX_SESSION_DURATION: PositiveSeconds = 300
    MAX_SESSIONS: Annotated[int, Field(ge=1)] = 4
    WRITE_MODE: bool = False
    LOCK_TIMEOUT: Annotated[float, Field(ge=0)] = 30
    PROXY: SecretProxyUrl | None = None
    WARM_SESSIONS: Annotated[int, Field(ge=0)] = 0
    WARM_RECHECK_INTERVAL: PositiveSeconds = 20
    SESSION_IDLE_TIMEOUT: OptionalSeconds = 0
    PUBLIC_URL: PublicUrl | None = None
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["console", "json"] = "console"
    HOST: str = "127.0.0.1"
    PORT: Annotated[int, Field(ge=1, le=65535)] = 5681
    # SPEC §10, more than one machine: REDIS_URL set → cluster mode.
    REDIS_URL: SecretRedisUrl | None = None
    # Filled from HOST and PORT when unset (validate_default runs the validator on the default too).
    INSTANCE_URL: InstanceUrl = Field(default="", validate_default=True)
    CLUSTER_MAX_SESSIONS: Annotated[int, Field(ge=1)] | None = None
    REGISTRY_TTL: Annotated[float, Field(ge=1)] = 15
    # SPEC §11, isolation: each browser in its own sandbox unless explicitly opted out.
    SESSION_ISOLATION: Literal["sandbox", "none"] = "sandbox"
    BROWSER_BLOCKED_HOSTS: CommaList = []
    MAX_UPLOAD_BYTES: Annotated[int, Field(ge=1)] = 256 * 1024 * 1024
    MAX_RELAYS_PER_SESSION: Annotated[int, Field(ge=1)] = 8
    # SPEC §12: live sessions of one account at once (under MAX_SESSIONS); unset = no cap of its own.
    MAX_SESSIONS_PER_ACCOUNT: Annotated[int, Field(ge=1)] | None = None
    # The unprivileged uid (and gid) sandboxed browsers run as when the service runs as root.
    SANDBOX_UID: Annotated[int, Field(ge=1, le=2**31 - 2)] = 64_500

    detection: DetectionSettings = Field(default_factory=DetectionSettings)

    @field_validator("REDIS_URL")
    @classmethod
    def _cluster_keys(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            return None
        if not info.data.get("API_KEYS") and not info.data.get("AUTH_DISABLED"):
            # A generated key is one instance's own: a client's key would work on that instance alone.
            raise ValueError("cluster mode needs API_KEYS, the same keys on every instance")
        return value

    @field_validator("INSTANCE_URL", mode="before")
    @classmethod
    def _instance_url(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            host = info.data.get("HOST") or "127.0.0.1"
            # Listening on every interface says nothing about the address peers should use.
            if host in ("0.0.0.0", "::"):
                host = socket.gethostname()
            if ":" in host:
                host = f"[{host}]"
            value = f"http://{host}:{info.data.get('PORT', 5681)}"
        return value

    @field_validator("SESSION_START_TIMEOUT")
    @classmethod
    def _start_fits_detection(cls, value: float, info: ValidationInfo) -> float:
        detection = info.data.get("LOGIN_DETECTION_TIMEOUT")
        if detection is not None and value < detection:
            raise ValueError(
                f"must be at least LOGIN_DETECTION_TIMEOUT ({detection:g}), "
                "or every slow detection would end as a timeout"
            )
        return value

    @property
    def tiktok_origin(self) -> str:
        parts = urlsplit(self.TIKTOK_URL)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def tiktok_host(self) -> str:
        return urlsplit(self.TIKTOK_URL).hostname or ""


# What pydantic reads as a boolean (in any case); its own message names neither these nor the value given.
_BOOLEAN_WORDS = "true/false, 1/0, yes/no or on/off"


def load_settings() -> Settings:
    """Bad configuration stops the program with one clear line naming the variable."""
    try:
        settings = Settings()
    except ValidationError as error:
        first = error.errors()[0]
        prefix = (
            DetectionSettings.model_config.get("env_prefix", "") if error.title == "DetectionSettings" else ""
        )
        name = prefix + ".".join(str(part) for part in first.get("loc", ())) or "configuration"
        message = first.get("msg")
        if first.get("type") == "bool_parsing":
            message = f"{first.get('input')!r} is not a boolean; use {_BOOLEAN_WORDS}"
        print(f"configuration error: {name}: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    problem = user_data_problem(settings.USER_DATA_DIR)
    if problem is not None:
        print(f"configuration error: USER_DATA_DIR: {problem}", file=sys.stderr)
        raise SystemExit(2)
    return settings


def user_data_problem(path: Path) -> str | None:
    """Why the service cannot keep its files in `path`, or None: found at start, not by the first session."""
    try:
        if path.exists() and not path.is_dir():
            return f"{path} is not a directory"
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"{path} cannot be created ({error.strerror or error})"
    try:
        # An unnamed file where the file system allows it: nothing is left behind, even on a crash.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        return f"no file can be written in {path} ({error.strerror or error})"
    return None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
