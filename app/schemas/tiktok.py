"""Request and response bodies of the TikTok session API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TikTokLoginState(StrEnum):
    LOGGED_IN = "logged_in"
    LOGGED_OUT = "logged_out"
    UNCERTAIN = "uncertain"


class SessionMode(StrEnum):
    READ = "read"
    WRITE = "write"


class TikTokSessionRequest(BaseModel):
    """Unknown fields are refused so a typo is never silently ignored."""

    model_config = ConfigDict(extra="forbid")

    account: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="The account to log in as; unset: any account proven logged in that has room",
        examples=["alice"],
    )


class SessionLinks(BaseModel):
    """How a client reaches a live session; both carry the session's own token."""

    cdp_url: str | None = Field(
        default=None,
        description="WebSocket for Playwright `connect_over_cdp` / Puppeteer `connect({browserWSEndpoint})`",
        examples=["ws://127.0.0.1:5681/tiktok/session/3f0c2a9e-5b8e-4f57-9c55-1b2f3e4d5a6b/cdp?token=…"],
    )
    view_url: str | None = Field(
        default=None,
        description="A live view for people, view-only: its token watches the session and cannot drive it",
        examples=["http://127.0.0.1:5681/tiktok/session/3f0c2a9e-5b8e-4f57-9c55-1b2f3e4d5a6b/view?token=…"],
    )


class TikTokSessionResponse(SessionLinks):
    status: Literal["success"] = "success"
    message: str = Field(default="TikTok session established successfully", min_length=1)
    session_id: str = Field(examples=["3f0c2a9e-5b8e-4f57-9c55-1b2f3e4d5a6b"])
    end_reason: str | None = Field(
        default=None, description="Wait mode only: why the session ended", examples=["client_closed"]
    )


class LoginInfo(BaseModel):
    state: TikTokLoginState
    method: str = Field(examples=["account_api"])
    elapsed_ms: int = Field(ge=0)
    verified_at: datetime | None = Field(default=None, description="When the login was last proven")


class SessionInfo(SessionLinks):
    session_id: str
    state: Literal["starting", "live", "closing"] = "live"
    created_at: datetime
    expires_at: datetime
    idle_expires_at: datetime | None = Field(
        default=None, description="When SESSION_IDLE_TIMEOUT ends the session without activity"
    )
    login: LoginInfo
    mode: SessionMode
    account: str | None = Field(default=None, description="The TikTok account the session is logged in as")


class SessionInfoResponse(SessionInfo):
    status: Literal["success"] = "success"
    message: str = "Session is live"


class SessionListResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Live sessions"
    sessions: list[SessionInfo]


class SessionClosedResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Session ended"
    session_id: str


class HealthResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "ok"


class ReadyResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "ready"
    checks: dict[str, str] = Field(examples=[{"browser": "ok", "master": "ok", "clones": "ok"}])
    generation: str | None = Field(default=None, description="The master's generation marker")
    warm_sessions: int = Field(default=0, description="Warm sessions ready for hand-out")
    isolation: Literal["sandbox", "none"] = Field(
        default="sandbox", description="SESSION_ISOLATION: whether each browser runs in its own sandbox"
    )


class DownloadItem(BaseModel):
    name: str = Field(examples=["report.pdf"])
    size: int = Field(ge=0)
    created_at: datetime


class DownloadListResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Downloads of the session"
    downloads: list[DownloadItem]


class UploadResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "File stored for the session's browser"
    path: str = Field(
        description="The file's path as the browser sees it: pass it to DOM.setFileInputFiles",
        examples=["/session/uploads/video.mp4"],
    )
    size: int = Field(ge=0)


class ViewLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interactive: bool = Field(default=False, description="whether the person may click and type")
    ttl: float = Field(default=600, ge=1, description="seconds the link works (at most MAX_SESSION_DURATION)")


class ViewLinkResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "View link created"
    url: str
    interactive: bool
    expires_at: datetime


class ViewLinksRevokedResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Every view link of the session is revoked"
    session_id: str
    view_url: str | None = Field(default=None, description="The session's new view-only link")


class ErrorDetails(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["NOT_LOGGED_IN"])
    details: str | None = None


class ErrorResponse(BaseModel):
    status: Literal["error"] = "error"
    message: str
    error_details: ErrorDetails


class AccountLogin(BaseModel):
    state: TikTokLoginState | None = Field(default=None, description="None until a session has proven it")
    method: str | None = None
    verified_at: datetime | None = None
    username: str | None = Field(default=None, description="As the account lookup names the user")


class AccountIdentitySummary(BaseModel):
    user_agent: str | None = None
    platform: str
    screen: str = Field(examples=["1920x1080"])
    timezone: str = Field(examples=["Europe/Berlin"])
    locale: str = Field(examples=["en-US"])
    hardware_concurrency: int | None = None
    device_memory: float | None = None
    webgl_renderer: str | None = None


class AccountInfo(BaseModel):
    name: str
    login: AccountLogin
    generation: str | None
    live_sessions: int
    warm_ready: int
    locked: bool = Field(description="Held exclusively by a write-mode session or a profile command")
    proxy: str | None = Field(default=None, description="The account's proxy, redacted")
    identity: AccountIdentitySummary | None = None


class AccountInfoResponse(AccountInfo):
    status: Literal["success"] = "success"
    message: str = "Account"


class AccountListResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Accounts"
    accounts: list[AccountInfo]


class RemoteLoginResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Open view_url and log the account in; press Done when finished"
    session_id: str
    account: str
    view_url: str = Field(description="An interactive view link: whoever holds it can drive the login page")
    expires_at: datetime


class LoginDoneResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = "Saved; the account's login is being proven (see GET /tiktok/accounts/{name})"
    session_id: str
    account: str
