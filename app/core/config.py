"""Service configuration (pydantic-settings). Names match SPEC §5 one to one.

`Settings` holds what the whole service reads. The login-detection knobs (`TIKTOK_*` selectors, endpoint
patterns, cookie names) are read by the detection package alone, so they are their own model,
`DetectionSettings`, with the `TIKTOK_` prefix, handed to the detector as it is.
"""

from __future__ import annotations

import socket
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, ValidationInfo, field_validator
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(**_ENV)

    API_KEYS: Annotated[list[SecretStr], NoDecode, BeforeValidator(_split_csv)] = []
    AUTH_DISABLED: bool = False
    USER_DATA_DIR: Path = Path("./user_data")
    TIKTOK_URL: str = "https://www.tiktok.com/"
    BROWSER_EXECUTABLE: Path | None = None
    HEADLESS: bool = True
    LOGIN_DETECTION_TIMEOUT: PositiveSeconds = 8
    SESSION_START_TIMEOUT: PositiveSeconds = 30
    MAX_SESSION_DURATION: PositiveSeconds = 300
    MAX_SESSIONS: Annotated[int, Field(ge=1)] = 4
    WRITE_MODE: bool = False
    LOCK_TIMEOUT: Annotated[float, Field(ge=0)] = 30
    PROXY: SecretStr | None = None
    WARM_SESSIONS: Annotated[int, Field(ge=0)] = 0
    WARM_RECHECK_INTERVAL: PositiveSeconds = 20
    SESSION_IDLE_TIMEOUT: OptionalSeconds = 0
    PUBLIC_URL: str | None = None
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["console", "json"] = "console"
    HOST: str = "127.0.0.1"
    PORT: Annotated[int, Field(ge=1, le=65535)] = 5681
    # SPEC §10, more than one machine: REDIS_URL set → cluster mode.
    REDIS_URL: SecretStr | None = None
    # Filled from HOST and PORT when unset (validate_default runs the validator on the default too).
    INSTANCE_URL: str = Field(default="", validate_default=True)
    CLUSTER_MAX_SESSIONS: Annotated[int, Field(ge=1)] | None = None
    REGISTRY_TTL: Annotated[float, Field(ge=1)] = 15

    detection: DetectionSettings = Field(default_factory=DetectionSettings)

    @field_validator("TIKTOK_URL")
    @classmethod
    def _http_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://www.tiktok.com/")
        return value if value.endswith("/") else value + "/"

    @field_validator("PUBLIC_URL")
    @classmethod
    def _public_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be the http(s) base URL clients use, such as https://sessions.example.com")
        return value.rstrip("/")

    @field_validator("PROXY")
    @classmethod
    def _proxy_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        try:
            parts.port  # noqa: B018 - urlsplit only checks the port range when it is read
        except ValueError:
            raise ValueError("has an invalid port; use scheme://user:pass@host:port") from None
        if parts.scheme not in ("http", "https", "socks5") or not parts.hostname:
            raise ValueError("must look like scheme://user:pass@host:port (http, https or socks5)")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
            raise ValueError("must look like redis://[:password@]host:port/db")
        if not info.data.get("API_KEYS") and not info.data.get("AUTH_DISABLED"):
            # A generated key is one instance's own: a client's key would work on that instance alone.
            raise ValueError("cluster mode needs API_KEYS, the same keys on every instance")
        return value

    @field_validator("INSTANCE_URL")
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
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError("must be the http(s) base URL other instances reach this one at")
        return value.rstrip("/")

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


def load_settings() -> Settings:
    """Bad configuration stops the program with one clear line naming the variable."""
    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        prefix = (
            DetectionSettings.model_config.get("env_prefix", "") if error.title == "DetectionSettings" else ""
        )
        name = prefix + ".".join(str(part) for part in first.get("loc", ())) or "configuration"
        print(f"configuration error: {name}: {first.get('msg')}", file=sys.stderr)
        raise SystemExit(2) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
