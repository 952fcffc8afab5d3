"""`profile login --remote` (SPEC §13): log an account in from a machine with no display.

Through the running service when it answers at PUBLIC_URL (else http://HOST:PORT): the same
`POST /tiktok/accounts/{name}/login` a client would send. When no service runs, this command serves
one itself on HOST:PORT for the length of the login. Either way it prints the interactive view link,
waits for the person to press Done (or the session to end), and prints what the login proof says.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time

import httpx
import uvicorn

from app.core.config import Settings
from app.core.security import load_or_create_keys

POLL_SECONDS = 1.0
PROOF_TIMEOUT = 60.0


def base_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.HOST in ("0.0.0.0", "::") else settings.HOST
    return settings.PUBLIC_URL or f"http://{host}:{settings.PORT}"


async def login_remotely(settings: Settings, account: str) -> int:
    """0 when the account ends up proven logged in, 3 logged out, 4 uncertain, 1 failed."""
    base = base_url(settings)
    keys = [key.get_secret_value() for key in settings.API_KEYS]
    headers = (
        {} if settings.AUTH_DISABLED else {"X-API-Key": load_or_create_keys(keys, settings.USER_DATA_DIR)[0]}
    )
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        try:
            await client.get("/health")
        except httpx.TransportError:
            return await _with_own_server(settings, account, client)
        return await _login_through(client, account)


async def _with_own_server(settings: Settings, account: str, client: httpx.AsyncClient) -> int:
    from app.main import create_app
    from app.server import Server, uvicorn_options

    print(
        f"No service answers at {client.base_url}; serving one here for the login.",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(create_app(settings), host=settings.HOST, port=settings.PORT, **uvicorn_options())
    server = Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
                return 1
            await asyncio.sleep(0.05)
        return await _login_through(client, account)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving


async def _login_through(client: httpx.AsyncClient, account: str) -> int:
    started = await client.post(f"/tiktok/accounts/{account}/login")
    if started.status_code != 200:
        print(f"error: {started.json().get('message')}: {started.json()['error_details'].get('details')}")
        return 1
    body = started.json()
    print(f"Open this link in your browser, log account {account} in, then press Done:", flush=True)
    print(f"\n  {body['view_url']}\n", flush=True)
    print(f"(the link works until {body['expires_at']}; whoever holds it can use the login page)", flush=True)
    session_path = f"/tiktok/session/{body['session_id']}"
    # Polled over HTTP: the session lives in the service, which may be another process.
    while (await client.get(session_path)).status_code == 200:  # noqa: ASYNC110
        await asyncio.sleep(POLL_SECONDS)
    print("The login session has ended; proving the login…", flush=True)
    deadline = time.monotonic() + PROOF_TIMEOUT
    while time.monotonic() < deadline:
        login = (await client.get(f"/tiktok/accounts/{account}")).json().get("login", {})
        if login.get("state"):
            user = f" as {login['username']}" if login.get("username") else ""
            print(f"Account {account}: {login['state']}{user} (method: {login['method']}).")
            return {"logged_in": 0, "logged_out": 3}.get(login["state"], 4)
        await asyncio.sleep(POLL_SECONDS)
    print(
        f"Account {account}: no answer within {PROOF_TIMEOUT:g} s; check `profile status --account {account}`"
    )
    return 4
