"""A local stand-in for tiktok.com's web app, for tests that drive a real browser.

Models the login-detection signals of SPEC §4 (account-info endpoint, rehydration data, redirects,
session cookies, header elements, walls) and a set of behaviour variants ("modes") that tests switch
at runtime through control routes under /__standin/.

Served over plain http on 127.0.0.1, so no cookie carries the Secure flag (Chromium would drop it).

Run: python -m tests.support.standin.tiktok_site --host 127.0.0.1 --port 8123 [--mode normal]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.standin import pages

SESSION_COOKIES = ("sessionid", "sessionid_ss", "sid_tt")
# TikTok's default web session lifetime (visible as the third field of sid_guard).
SESSION_MAX_AGE = 60 * 24 * 3600
GUEST_COOKIES = {  # name -> HttpOnly, as tiktok.com sets them
    "ttwid": True,
    "msToken": False,
    "tt_chain_token": True,
    "tt_csrf_token": True,
}
DEFAULT_DELAYS = {"late_header": 2.0, "slow": 3.0}
MODES = (
    "normal",
    "late_header",
    "header_only",
    "silent",
    "captcha",
    "forbidden",
    "rate_limited",
    "ban",
    "ban_dialog",
    "late_captcha",
    "empty",
    "api_broken",
    "slow",
    "hanging",
    "login_redirect",
    # The pages still render the viewer (rehydration user, logged-in header) while the account lookup
    # says the server has ended the session: what a cached or stale server render looks like.
    "stale_render",
    # The pages render the viewer while the account lookup answers an error that is not about the session.
    "lookup_error",
    # The site failing as a whole, pages and API alike. drop_connection: the server sends the headers
    # and the first part of the body, then hangs up; the others answer 500, 502 and 503.
    "drop_connection",
    "server_error",
    "bad_gateway",
    "service_unavailable",
)
SERVER_ERRORS = {"server_error": 500, "bad_gateway": 502, "service_unavailable": 503}


@dataclass
class Session:
    username: str
    expires_at: float


@dataclass
class SiteState:
    mode: str = "normal"
    delay: float | None = None
    sessions: dict[str, Session] = field(default_factory=dict)  # sid token -> session
    requests: Counter[str] = field(default_factory=Counter)
    # Never set: requests parked on it in "hanging" mode only end when the server shuts down.
    never: asyncio.Event = field(default_factory=asyncio.Event)

    def effective_delay(self) -> float:
        return self.delay if self.delay is not None else DEFAULT_DELAYS.get(self.mode, 0.0)


def viewer_for(username: str) -> pages.Viewer:
    # Stable per username, so tests can predict ids across server restarts.
    digest = int(hashlib.sha256(username.encode()).hexdigest(), 16)
    return pages.Viewer(
        username=username,
        user_id=f"7{digest % 10**18:018d}",
        sec_uid=f"MS4wLjABAAAA{hashlib.sha256(b'sec' + username.encode()).hexdigest()[:40]}",
    )


def current_viewer(request: Request) -> pages.Viewer | None:
    state: SiteState = request.app.state.site
    token = request.cookies.get("sessionid") or request.cookies.get("sid_tt")
    session = state.sessions.get(token or "")
    if session is None or session.expires_at < time.time():
        return None
    return viewer_for(session.username)


def login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?redirect_url={quote(str(request.url), safe='')}", status_code=302)


def set_guest_cookies(request: Request, response: Response) -> Response:
    for name, httponly in GUEST_COOKIES.items():
        if name not in request.cookies:
            response.set_cookie(
                name, secrets.token_urlsafe(24), max_age=365 * 24 * 3600, httponly=httponly, samesite="lax"
            )
    return response


class ConnectionDropped(Exception):
    """Raised by `HangUp` once the partial body is out: uvicorn closes a started response's connection."""


class HangUp(Response):
    """A 200 whose Content-Length promises the whole body, then only `head` before the connection closes."""

    def __init__(self, head: str, full_length: int, media_type: str) -> None:
        super().__init__(head, media_type=media_type)
        self.headers["content-length"] = str(full_length)

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        raise ConnectionDropped("stand-in site hung up mid-response (drop_connection mode)")


def server_error_page(status: int) -> str:
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    title = f"{status} {reason}"
    return f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{reason}</h1></body></html>"


def fault_response(request: Request) -> Response | None:
    """The drop_connection and 5xx modes, for pages; None when the mode is not one of them."""
    mode = request.app.state.site.mode
    if mode == "drop_connection":
        # The page this viewer would get, cut before its content: nothing left in it can prove a login.
        viewer = current_viewer(request)
        html = pages.app_page(title="TikTok", body=pages.FEED, viewer=viewer, login_url="/login")
        return HangUp(html[: html.index("<main")], len(html.encode()), "text/html")
    if mode in SERVER_ERRORS:
        return HTMLResponse(server_error_page(SERVER_ERRORS[mode]), status_code=SERVER_ERRORS[mode])
    return None


async def blocked_response(request: Request) -> Response | None:
    """Apply the current mode's delay/block to an HTML page; None means render normally."""
    state: SiteState = request.app.state.site
    if fault := fault_response(request):
        return fault
    if state.mode == "hanging":
        await state.never.wait()
    if state.mode == "slow":
        await asyncio.sleep(state.effective_delay())
    if state.mode == "forbidden":
        return HTMLResponse(pages.blocked_page(403), status_code=403)
    if state.mode == "rate_limited":
        return HTMLResponse(pages.blocked_page(429), status_code=429, headers={"Retry-After": "60"})
    if state.mode == "empty":
        return HTMLResponse(pages.EMPTY_PAGE)
    return None


def render_app(request: Request, title: str, body: str) -> Response:
    state: SiteState = request.app.state.site
    viewer = current_viewer(request)
    extra = ""
    if state.mode == "captcha":
        extra = pages.CAPTCHA_WALL
    elif state.mode == "ban":
        extra, viewer = pages.BAN_NOTICE, None
    elif state.mode == "ban_dialog":
        extra = pages.BAN_DIALOG
    elif state.mode == "late_captcha":
        extra = pages.LATE_CAPTCHA
    html = pages.app_page(
        title=title,
        body=body,
        viewer=viewer,
        login_url=f"/login?redirect_url={quote(str(request.url), safe='')}",
        with_rehydration=state.mode not in ("header_only", "silent"),
        with_header=state.mode != "silent",
        header_delay=state.effective_delay() if state.mode in ("late_header", "header_only") else 0.0,
        extra=extra,
    )
    return set_guest_cookies(request, HTMLResponse(html))


async def home(request: Request) -> Response:
    if blocked := await blocked_response(request):
        return blocked
    if request.app.state.site.mode == "login_redirect":
        return login_redirect(request)
    return render_app(request, "TikTok - Make Your Day", pages.FEED)


async def profile(request: Request) -> Response:
    if blocked := await blocked_response(request):
        return blocked
    if current_viewer(request) is None:
        return login_redirect(request)
    user = request.path_params["user"]
    body = f'<h1 data-e2e="user-title">{user}</h1><h2 data-e2e="user-subtitle">{user.capitalize()}</h2>'
    return render_app(request, f"{user} | TikTok", body + pages.FEED)


async def upload(request: Request) -> Response:
    if blocked := await blocked_response(request):
        return blocked
    if current_viewer(request) is None:
        return login_redirect(request)
    body = '<div data-e2e="upload-card"><h1>Upload video</h1><input type="file" accept="video/*"></div>'
    return render_app(request, "Upload | TikTok", body)


async def login_page(request: Request) -> Response:
    if blocked := await blocked_response(request):
        return blocked
    html = pages.login_page(request.query_params.get("redirect_url", "/"))
    return set_guest_cookies(request, HTMLResponse(html))


def start_session(
    request: Request, username: str, target: str, max_age: int | None, issued_ago: int
) -> Response:
    state: SiteState = request.app.state.site
    sid = secrets.token_hex(16)
    lifetime = max_age if max_age is not None else SESSION_MAX_AGE
    issued = int(time.time()) - issued_ago
    state.sessions[sid] = Session(username=username, expires_at=issued + lifetime)
    expiry = time.strftime("%a, %d-%b-%Y %H:%M:%S GMT", time.gmtime(issued + lifetime))
    # TikTok sends sid_guard URL-encoded: "<sid>%7C<issued>%7C<max-age>%7CFri%2C+26-Feb-2021+06%3A35%3A19+GMT"
    guard = quote_plus(f"{sid}|{issued}|{lifetime}|{expiry}")
    response = RedirectResponse(target, status_code=302)
    # The cookies themselves always live long: TikTok ends sessions server-side (or via the guard's
    # own expiry) and leaves the cookie behind in the browser.
    values = {name: sid for name in SESSION_COOKIES} | {"uid_tt": secrets.token_hex(32), "sid_guard": guard}
    for name, value in values.items():
        response.set_cookie(name, value, max_age=SESSION_MAX_AGE, httponly=True, samesite="lax")
    return set_guest_cookies(request, response)


async def standin_login(request: Request) -> Response:
    """Test back door: log the calling browser in without a form."""
    params = request.query_params
    max_age = int(params["max_age"]) if "max_age" in params else None
    return start_session(request, params["user"], "/", max_age, int(params.get("issued_ago", 0)))


async def passport_login(request: Request) -> Response:
    form = parse_qs((await request.body()).decode())
    username = (form.get("username") or [""])[0].strip()
    if not username:
        return error_json("invalid_username", "Enter a username", 1009)
    target = (form.get("redirect_url") or ["/"])[0]
    # Only follow same-site targets, as an open redirect would be unrealistic (and unsafe).
    split = urlsplit(target)
    if split.netloc and split.netloc != request.url.netloc:
        target = "/"
    return start_session(request, username, target or "/", None, 0)


def error_json(name: str, description: str, code: int) -> JSONResponse:
    return JSONResponse(
        {"message": "error", "data": {"name": name, "description": description, "error_code": code}}
    )


async def account_info(request: Request) -> Response:
    state: SiteState = request.app.state.site
    mode = state.mode
    if mode == "drop_connection":
        body = '{"message":"success","data":{"user_id_str":"'
        return HangUp(body, len(body) + 200, "application/json")
    if mode in SERVER_ERRORS:
        return HTMLResponse(server_error_page(SERVER_ERRORS[mode]), status_code=SERVER_ERRORS[mode])
    if mode in ("forbidden", "rate_limited"):
        # A WAF block covers the API as well as the pages.
        if mode == "forbidden":
            return PlainTextResponse("Access denied", status_code=403)
        return PlainTextResponse("Too many requests", status_code=429, headers={"Retry-After": "60"})
    if mode in ("header_only", "silent"):
        return Response(status_code=404)
    if mode == "empty":
        return Response(b"", media_type="application/json")
    if mode == "api_broken":
        return HTMLResponse("<html>oops</html>", status_code=500)
    if mode == "stale_render":
        return error_json("session_expired", "Session expired, please sign in again.", 4)
    if mode == "lookup_error":
        return error_json("system_busy", "System busy, please try again later.", 7)
    viewer = current_viewer(request)
    if viewer is None:  # real TikTok answers 200 here too
        return error_json("session_expired", "Session expired, please sign in again.", 4)
    data = {
        "user_id_str": viewer.user_id,
        "user_id": int(viewer.user_id),
        "username": viewer.username,
        "screen_name": viewer.nickname,
        "avatar_url": viewer.avatar_url,
        "sec_user_id": viewer.sec_uid,
        "is_blocked": 0,
        "connects": [],
    }
    return JSONResponse({"message": "success", "data": data})


async def control_mode(request: Request) -> Response:
    state: SiteState = request.app.state.site
    if request.method == "POST":
        payload = await request.json()
        if payload.get("mode") not in MODES:
            return JSONResponse({"error": f"unknown mode, expected one of {MODES}"}, status_code=400)
        state.mode = payload["mode"]
        state.delay = float(payload["delay"]) if payload.get("delay") is not None else None
    return JSONResponse({"mode": state.mode, "delay": state.effective_delay()})


async def control_revoke(request: Request) -> Response:
    state: SiteState = request.app.state.site
    user = request.query_params["user"]
    doomed = [sid for sid, session in state.sessions.items() if session.username == user]
    for sid in doomed:
        del state.sessions[sid]
    return JSONResponse({"revoked": len(doomed)})


async def control_requests(request: Request) -> Response:
    state: SiteState = request.app.state.site
    if request.method == "DELETE":
        state.requests.clear()
    return JSONResponse(dict(state.requests))


async def slow_asset(request: Request) -> Response:
    """A 1x1 GIF served late: holds the page's load event back like a heavy real asset."""
    await asyncio.sleep(int(request.query_params.get("ms", "500")) / 1000)
    return Response(pages.PIXEL_GIF, media_type="image/gif")


async def control_headers(request: Request) -> Response:
    """Echo of what the browser sent, so tests can compare HTTP headers with JS-visible values."""
    return JSONResponse({name.lower(): value for name, value in request.headers.items()})


# What common bot checks read (CreepJS, fingerprint.com, TikTok's own SDK read the same): the page
# publishes them as the promise `window.__botCheck`, headers as the server received them included.
BOT_CHECK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>bot check</title></head><body><script>
window.__botCheck = (async () => {
  const headers = await (await fetch('/__standin/headers')).json();
  const gl = document.createElement('canvas').getContext('webgl');
  const debug = gl && gl.getExtension('WEBGL_debug_renderer_info');
  const worker = await new Promise((resolve) => {
    const source = 'postMessage({userAgent: navigator.userAgent, languages: navigator.languages})';
    const blob = new Blob([source], {type: 'text/javascript'});
    const w = new Worker(URL.createObjectURL(blob));
    w.onmessage = (event) => resolve(event.data);
    w.onerror = (event) => resolve({error: String(event.message)});
  });
  return {
    headers,
    webdriver: navigator.webdriver,
    userAgent: navigator.userAgent,
    brands: navigator.userAgentData ? navigator.userAgentData.brands : null,
    languages: navigator.languages,
    outerWidth, outerHeight, innerWidth, innerHeight,
    notificationPermission: Notification.permission,
    notificationQuery: (await navigator.permissions.query({name: 'notifications'})).state,
    webglVendor: debug ? gl.getParameter(debug.UNMASKED_VENDOR_WEBGL) : null,
    webglRenderer: debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) : null,
    worker,
  };
})();
</script></body></html>
"""


# A file a page downloads (SPEC §11): every byte value, so a download that changed any byte shows.
REPORT_BYTES = bytes(range(256)) * 40
FILES_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>files</title></head><body>
<a id="report" href="/__standin/report.txt">report</a>
</body></html>
"""


async def control_report(request: Request) -> Response:
    return Response(
        REPORT_BYTES,
        media_type="application/octet-stream",
        headers={"Content-Disposition": 'attachment; filename="report.txt"'},
    )


async def control_files_page(request: Request) -> Response:
    return HTMLResponse(FILES_PAGE)


# The live view's tests (SPEC §13): a page that shows what reached it through the view's input…
PLAYGROUND_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>playground</title>
<style>
 body{margin:0;padding:40px;font:18px sans-serif}
 input{font-size:20px;width:420px;height:44px} button{font-size:20px;height:44px;margin-left:12px}
 #tall{height:4000px}
</style></head><body>
<form id="form"><input id="text" autocomplete="off" placeholder="type here"><button id="button"
 type="button">Press</button></form>
<p>typed: <output id="typed"></output></p>
<p>submitted: <output id="submitted"></output></p>
<p>clicks: <output id="clicks">0</output>, double clicks: <output id="dblclicks">0</output></p>
<div id="tall"></div>
<script>
// Every keydown with the moment it arrived (the epoch clock, comparable with the sender's).
window.keydowns = [];
addEventListener("keydown", (e) => {
  keydowns.push({key: e.key, at: performance.timeOrigin + performance.now()});
}, true);
const text = document.getElementById("text"), button = document.getElementById("button");
let clicks = 0, doubles = 0;
text.addEventListener("input", () => { document.getElementById("typed").textContent = text.value; });
document.getElementById("form").addEventListener("submit", (e) => {
  e.preventDefault();
  document.getElementById("submitted").textContent = text.value;
});
const show = (id, n) => { document.getElementById(id).textContent = String(n); };
button.addEventListener("click", () => show("clicks", ++clicks));
button.addEventListener("dblclick", () => show("dblclicks", ++doubles));
</script></body></html>
"""
# …and one that keeps painting until told to stop (`stopAnimation()`), for the frame rate.
ANIMATED_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>animated</title>
<style>
 body{margin:0;background:#223} #box{position:absolute;top:120px;width:120px;height:120px;background:#f50}
</style></head><body><div id="box"></div>
<script>
let animating = true;
const box = document.getElementById("box");
function step(t) {
  if (!animating) return;
  box.style.left = (t / 3 % 900) + "px";
  requestAnimationFrame(step);
}
requestAnimationFrame(step);
window.stopAnimation = () => { animating = false; };
</script></body></html>
"""


async def control_playground(request: Request) -> Response:
    return HTMLResponse(PLAYGROUND_PAGE)


async def control_animated(request: Request) -> Response:
    return HTMLResponse(ANIMATED_PAGE)


async def control_bot_check(request: Request) -> Response:
    return HTMLResponse(BOT_CHECK_PAGE)


async def control_health(request: Request) -> Response:
    return PlainTextResponse("ok")


class CountRequests:
    """ASGI middleware: count requests per path so tests can assert what the browser hit."""

    def __init__(self, app, state: SiteState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/__standin/"):
            self.state.requests[scope["path"]] += 1
        await self.app(scope, receive, send)


def create_app(mode: str = "normal") -> Starlette:
    state = SiteState(mode=mode)
    routes = [
        Route("/", home),
        Route("/foryou", home),
        Route("/explore", home),
        Route("/@{user}", profile),
        Route("/upload", upload),
        Route("/login", login_page),
        Route("/passport/web/login/", passport_login, methods=["POST"]),
        Route("/passport/web/account/info/", account_info),
        Route("/__standin/login", standin_login),
        Route("/__standin/revoke", control_revoke, methods=["POST"]),
        Route("/__standin/mode", control_mode, methods=["GET", "POST"]),
        Route("/__standin/requests", control_requests, methods=["GET", "DELETE"]),
        Route("/__standin/health", control_health),
        Route("/__standin/headers", control_headers),
        Route("/__standin/bot-check", control_bot_check),
        Route("/__standin/playground", control_playground),
        Route("/__standin/animated", control_animated),
        Route("/__standin/slow-asset", slow_asset),
        Route("/__standin/report.txt", control_report),
        Route("/__standin/files", control_files_page),
    ]
    app = Starlette(routes=routes)
    app.state.site = state
    app.add_middleware(CountRequests, state=state)
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=MODES, default="normal")
    args = parser.parse_args()
    # Short graceful shutdown: requests parked in "hanging" mode must not hold up SIGTERM.
    uvicorn.run(
        create_app(args.mode),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )


if __name__ == "__main__":
    main()
