"""Request and response bodies of the TikTok session API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TikTokLoginState(StrEnum):
    LOGGED_IN = "logged_in"
    LOGGED_OUT = "logged_out"
    UNCERTAIN = "uncertain"


class SessionMode(StrEnum):
    READ = "read"
    WRITE = "write"


class TikTokSessionRequest(BaseModel):
    """Empty today; unknown fields are refused so a typo is never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TikTokSessionResponse(BaseModel):
    status: Literal["success"] = "success"
    message: str = Field(default="TikTok session established successfully", min_length=1)
    session_id: str = Field(examples=["3f0c2a9e-5b8e-4f57-9c55-1b2f3e4d5a6b"])


class LoginInfo(BaseModel):
    state: TikTokLoginState
    method: str = Field(examples=["account_api"])
    elapsed_ms: int = Field(ge=0)


class SessionInfo(BaseModel):
    session_id: str
    state: Literal["starting", "live", "closing"] = "live"
    created_at: datetime
    expires_at: datetime
    login: LoginInfo
    mode: SessionMode
    cdp_url: str | None = None


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


class ErrorDetails(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["NOT_LOGGED_IN"])
    details: str | None = None


class ErrorResponse(BaseModel):
    status: Literal["error"] = "error"
    message: str
    error_details: ErrorDetails

    @classmethod
    def example(cls, message: str, code: str, **details: Any) -> dict[str, Any]:
        return {"status": "error", "message": message, "error_details": {"code": code, **details}}
