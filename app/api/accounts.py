"""The accounts and their health (SPEC §12): GET /tiktok/accounts, GET /tiktok/accounts/{name}."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from app.api import links
from app.api.deps import InteractiveSession, Sessions, require_api_key
from app.api.errors import openapi_errors
from app.core.errors import (
    AccountNotFound,
    Forbidden,
    ServiceError,
    SessionNotFound,
    TooManySessions,
    Unauthorized,
    UserDataLocked,
    ValidationFailed,
)
from app.schemas.tiktok import (
    AccountIdentitySummary,
    AccountInfo,
    AccountInfoResponse,
    AccountListResponse,
    AccountLogin,
    LoginDoneResponse,
    RemoteLoginResponse,
)
from app.services.common.browser import browser_version, find_browser
from app.services.common.fingerprint import user_agent_for
from app.services.tiktok.accounts import Account
from app.services.tiktok.service import TiktokService
from app.services.tiktok.session import EndReason, SessionPurpose

router = APIRouter(prefix="/tiktok", tags=["accounts"], dependencies=[Depends(require_api_key)])
# Reached with the login session's interactive view token (the person has no API key).
login_done = APIRouter(prefix="/tiktok", tags=["accounts"])

AccountName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", examples=["alice"])]


@router.get("/accounts", response_model=AccountListResponse, responses=openapi_errors(Unauthorized))
async def list_accounts(sessions: Sessions) -> AccountListResponse:
    names = await sessions.accounts.names()
    described = await asyncio.gather(*(describe(sessions, sessions.accounts.account(n)) for n in names))
    return AccountListResponse(accounts=list(described))


@router.get(
    "/accounts/{name}",
    response_model=AccountInfoResponse,
    responses=openapi_errors(Unauthorized, AccountNotFound, ValidationFailed),
)
async def get_account(name: AccountName, sessions: Sessions) -> AccountInfoResponse:
    account = await sessions.accounts.get(name)
    return AccountInfoResponse(**(await describe(sessions, account)).model_dump())


async def describe(sessions: TiktokService, account: Account) -> AccountInfo:
    proof = account.proof
    generation = await account.generation()
    identity = await sessions.accounts.identity(account)
    try:
        version = await browser_version(
            await asyncio.to_thread(find_browser, sessions.settings.BROWSER_EXECUTABLE)
        )
        user_agent: str | None = user_agent_for(version)
    except Exception:  # noqa: BLE001 - no browser: the rest of the account still describes itself
        user_agent = None
    proxy = identity.redacted_proxy
    if proxy is None and sessions.settings.PROXY is not None:
        proxy = sessions.browsers.default_proxy_redacted
    return AccountInfo(
        name=account.name,
        login=AccountLogin(
            state=proof.state.value if proof and proof.generation == generation else None,
            method=proof.method if proof and proof.generation == generation else None,
            verified_at=proof.verified_at if proof else None,
            username=proof.username if proof else None,
        ),
        generation=generation,
        live_sessions=account.live,
        warm_ready=sessions.warm_ready_of(account.name),
        locked=await _locked(account),
        proxy=proxy,
        identity=AccountIdentitySummary(**identity.summary(user_agent)),
    )


async def _locked(account: Account) -> bool:
    try:
        held = await account.lock.shared(0)
    except UserDataLocked:
        return True
    held.release()
    return False


@router.post(
    "/accounts/{name}/login",
    response_model=RemoteLoginResponse,
    responses=openapi_errors(Unauthorized, ValidationFailed, UserDataLocked, TooManySessions, ServiceError),
    summary="Log an account in through an interactive live view (no display needed on the server)",
)
async def remote_login(name: AccountName, sessions: Sessions, request: Request) -> RemoteLoginResponse:
    session = await sessions.start_login(name)
    link = session.tokens.mint(interactive=True, ttl=session.max_duration)
    return RemoteLoginResponse(
        session_id=session.id,
        account=name,
        view_url=links.view_url(session, request, link.token),
        expires_at=link.expires_at,
    )


@login_done.post(
    "/session/{session_id}/done",
    response_model=LoginDoneResponse,
    responses=openapi_errors(Unauthorized, Forbidden, SessionNotFound),
    summary="The person has logged in: save the master and prove the login (login sessions only)",
)
async def done(session: InteractiveSession) -> LoginDoneResponse:
    if session.purpose is not SessionPurpose.LOGIN:
        raise Forbidden("only a login session (POST /tiktok/accounts/{name}/login) is ended with Done")
    # Closed cleanly: Chromium writes its cookies, the generation is bumped, the lock released.
    await session.close(EndReason.LOGIN_DONE)
    return LoginDoneResponse(session_id=session.id, account=session.account)
