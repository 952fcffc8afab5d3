"""Service configuration: one pydantic-settings class, names matching SPEC §5 one to one."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PositiveSeconds = Annotated[float, Field(gt=0)]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    API_KEYS: Annotated[list[SecretStr], NoDecode] = []
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
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["console", "json"] = "console"
    HOST: str = "127.0.0.1"
    PORT: Annotated[int, Field(ge=1, le=65535)] = 5681

    # Detection tuning (SPEC §4: selectors, endpoints and cookie names are configuration).
    TIKTOK_ACCOUNT_INFO_PATH: str = "/passport/web/account/info/?aid=1988"
    TIKTOK_ACCOUNT_RESPONSE_PATTERNS: Annotated[list[str], NoDecode] = ["/passport/web/account/info/"]
    TIKTOK_SESSION_COOKIES: Annotated[list[str], NoDecode] = ["sessionid", "sessionid_ss", "sid_tt"]
    TIKTOK_SESSION_GUARD_COOKIE: str = "sid_guard"
    TIKTOK_LOGGED_OUT_SELECTORS: Annotated[list[str], NoDecode] = [
        '[data-e2e="top-login-button"]',
        "#header-login-button",
        '[data-e2e="login-modal"]',
    ]
    TIKTOK_LOGGED_IN_SELECTORS: Annotated[list[str], NoDecode] = [
        '[data-e2e="profile-icon"]',
        'a[data-e2e="nav-profile"][href^="/@"]',
    ]
    TIKTOK_CAPTCHA_SELECTORS: Annotated[list[str], NoDecode] = [
        ".secsdk-captcha-wrapper",
        "#captcha-verify",
        ".captcha_verify_container",
        'iframe[src*="verify.tiktok.com"]',
    ]
    TIKTOK_CAPTCHA_FRAME_HOSTS: Annotated[list[str], NoDecode] = ["verify.tiktok.com"]
    TIKTOK_BAN_SELECTORS: Annotated[list[str], NoDecode] = [
        '[data-e2e="ban-notice"]',
        '[data-e2e="account-banned"]',
    ]
    TIKTOK_BAN_TEXTS: Annotated[list[str], NoDecode] = [
        "account was permanently banned",
        "account has been permanently banned",
        "account was banned",
        "account has been banned",
        "account has been suspended",
        "account was suspended",
    ]
    TIKTOK_LOGIN_PATH: str = "/login"

    @field_validator(
        "API_KEYS",
        "TIKTOK_ACCOUNT_RESPONSE_PATTERNS",
        "TIKTOK_SESSION_COOKIES",
        "TIKTOK_LOGGED_OUT_SELECTORS",
        "TIKTOK_LOGGED_IN_SELECTORS",
        "TIKTOK_CAPTCHA_SELECTORS",
        "TIKTOK_CAPTCHA_FRAME_HOSTS",
        "TIKTOK_BAN_SELECTORS",
        "TIKTOK_BAN_TEXTS",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("TIKTOK_URL")
    @classmethod
    def _http_origin(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://www.tiktok.com/")
        return value if value.endswith("/") else value + "/"

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

    @field_validator("BROWSER_EXECUTABLE", mode="before")
    @classmethod
    def _empty_means_auto(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

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
    def master_dir(self) -> Path:
        return self.USER_DATA_DIR / "master"

    @property
    def clones_dir(self) -> Path:
        return self.USER_DATA_DIR / "clones"

    @property
    def tiktok_origin(self) -> str:
        parts = urlsplit(self.TIKTOK_URL)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def tiktok_host(self) -> str:
        return urlsplit(self.TIKTOK_URL).hostname or ""


@lru_cache
def get_settings() -> Settings:
    return Settings()
