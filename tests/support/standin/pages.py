"""HTML for the TikTok stand-in site, shaped like what tiktok.com's web app serves.

Kept apart from the routing so the site module stays readable. Everything here is plain string
building: the markup is the point, not a template engine.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

ACCOUNT_INFO_PATH = "/passport/web/account/info/?aid=1988"

# Appears on every page, logged in or not: a detector must not read anything into it.
COOKIE_BANNER = """
<div class="tiktok-cookie-banner" role="dialog">
  <p>We use cookies to improve your experience. You can log in to manage your account preferences.</p>
  <button class="cookie-accept">Accept all</button>
  <button class="cookie-decline">Decline optional cookies</button>
</div>"""

# Filler that mentions "account", "log in", "sign up" in both states, like TikTok's feed and sidebar,
# so that word-matching on page text cannot tell the states apart.
FEED = """
<ul class="video-feed" data-e2e="recommend-list">
  <li data-e2e="recommend-list-item-container">
    <a href="/@dancequeen/video/7301">Follow this account for daily dances</a>
    <button data-e2e="feed-follow">Follow</button><span class="hint">Log in to follow creators</span></li>
  <li data-e2e="recommend-list-item-container">
    <a href="/@chef.tom/video/7302">My account got 1M likes! #cooking</a>
    <span class="hint">Log in to like videos and view comments</span></li>
  <li data-e2e="recommend-list-item-container">
    <a href="/@travelbug/video/7303">Sign up for my newsletter</a>
    <span class="hint">Log in to comment</span></li>
</ul>
<aside class="sidebar"><p>Log in to follow creators, like videos, and view comments.</p>
  <a href="/signup">Sign up</a> <a href="/about">About</a> <a href="/legal/privacy">Privacy</a></aside>"""

CAPTCHA_WALL = """
<div class="secsdk-captcha-wrapper">
  <div id="captcha-verify" class="captcha_verify_container">
    <div class="captcha_verify_bar">Verify to continue:</div>
    <p>Drag the slider to fit the puzzle</p>
    <iframe src="https://verify.tiktok.com/captcha/verify?lang=en&amp;app_name=tiktok_web&amp;fp=verify_standin"
      width="340" height="212"></iframe>
  </div>
</div>"""

# TikTok's captcha is drawn by its security SDK from script while the page is still loading: it is
# not in the first HTML. The slow image keeps the load event back until after the captcha is drawn.
LATE_CAPTCHA = """
<img src="/__standin/slow-asset?ms=800" alt="" width="1" height="1">
<script>
document.addEventListener('DOMContentLoaded', function () {
  setTimeout(function () {
    var wall = document.createElement('div');
    wall.className = 'secsdk-captcha-wrapper';
    wall.innerHTML = '<div id="captcha-verify">Verify to continue</div>';
    document.body.appendChild(wall);
  }, 300);
});
</script>"""

PIXEL_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

BAN_NOTICE = """
<div data-e2e="ban-notice" class="ban-notice">Your account was permanently banned due to multiple violations
of our Community Guidelines. <a href="/feedback">Appeal</a></div>"""

# The same notice in a plain modal, with no data-e2e hook: only its words say what it is.
BAN_DIALOG = """
<div class="css-1x9ab8-DivModalContainer" role="dialog" aria-modal="true">
  <h2>Account banned</h2>
  <p>Your account was permanently banned due to multiple violations of our Community Guidelines.</p>
</div>"""


@dataclass(frozen=True)
class Viewer:
    """The logged-in user as the web app knows them."""

    username: str
    user_id: str
    sec_uid: str

    @property
    def nickname(self) -> str:
        return self.username.capitalize()

    @property
    def avatar_url(self) -> str:
        return f"/static/avatar/{self.user_id}.jpeg"


def rehydration_block(viewer: Viewer | None) -> str:
    app_context: dict[str, object] = {
        "language": "en",
        "region": "US",
        "appId": 1233,
        "abTestVersion": {"versionName": "70021234,70110987"},
        "csrfToken": "",
    }
    if viewer is not None:
        app_context["user"] = {
            "uid": viewer.user_id,
            "uniqueId": viewer.username,
            "nickName": viewer.nickname,
            "secUid": viewer.sec_uid,
            "avatarUri": [viewer.avatar_url],
            "region": "US",
        }
    data = {"__DEFAULT_SCOPE__": {"webapp.app-context": app_context, "webapp.biz-context": {"os": "linux"}}}
    # "</" inside a script element would end it early; the real site escapes the same way.
    payload = json.dumps(data).replace("</", "<\\/")
    return f'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__" type="application/json">{payload}</script>'


def header_script(viewer: Viewer | None, login_url: str, header_delay: float) -> str:
    # The header is built by script after load, like the real SPA: it is absent from the first HTML,
    # and the script source names the markers of both states, so grepping page source proves nothing.
    state = {"login_url": login_url}
    if viewer is not None:
        state |= {"username": viewer.username, "avatar": viewer.avatar_url, "nickname": viewer.nickname}
    state_json = json.dumps(state).replace("</", "<\\/")
    return f"""<script>
function mountHeader(s) {{
  var h = document.getElementById('app-header'), el;
  if (s.username) {{
    el = document.createElement('div');
    el.setAttribute('data-e2e', 'profile-icon');
    var img = document.createElement('img');
    img.src = s.avatar; img.alt = s.nickname;
    el.appendChild(img);
  }} else {{
    el = document.createElement('button');
    el.setAttribute('data-e2e', 'top-login-button');
    el.id = 'header-login-button';
    el.textContent = 'Log in';
  }}
  var nav = document.createElement('a');
  nav.setAttribute('data-e2e', 'nav-profile');
  nav.href = s.username ? '/@' + encodeURIComponent(s.username) : s.login_url;
  nav.textContent = 'Profile';
  h.appendChild(el); h.appendChild(nav);
}}
window.addEventListener('load', function () {{
  setTimeout(function () {{ mountHeader({state_json}); }}, {int(header_delay * 1000)});
  fetch('{ACCOUNT_INFO_PATH}', {{credentials: 'include'}})
    .then(function (r) {{ return r.text(); }})
    .then(function (t) {{ window.__accountInfoRaw = t; }})
    .catch(function () {{}});
}});
</script>"""


def app_page(
    *,
    title: str,
    body: str,
    viewer: Viewer | None,
    login_url: str,
    with_rehydration: bool = True,
    with_header: bool = True,
    header_delay: float = 0.0,
    extra: str = "",
) -> str:
    rehydration = rehydration_block(viewer) if with_rehydration else ""
    header = header_script(viewer, login_url, header_delay) if with_header else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>
<body>
<header id="app-header" class="tiktok-header"><a href="/" class="logo">TikTok</a>
<input type="search" placeholder="Search accounts and videos"></header>
<main id="main-content">{body}</main>
{extra}
{COOKIE_BANNER}
{rehydration}
{header}
</body></html>"""


def login_page(redirect_url: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Log in | TikTok</title></head>
<body>
<div data-e2e="login-modal" class="login-container">
  <h2>Log in to TikTok</h2>
  <form method="post" action="/passport/web/login/">
    <input type="hidden" name="redirect_url" value="{html.escape(redirect_url)}">
    <label>Username <input name="username" autocomplete="username"></label>
    <label>Password <input name="password" type="password"></label>
    <button type="submit" data-e2e="login-button">Log in</button>
  </form>
  <p>Don't have an account? <a href="/signup">Sign up</a></p>
</div>
{COOKIE_BANNER}
</body></html>"""


def blocked_page(status: int) -> str:
    message = "Access denied" if status == 403 else "Too many requests, please try again later"
    return f"<!DOCTYPE html><html><head><title>{status}</title></head><body><h1>{message}</h1></body></html>"


EMPTY_PAGE = "<html><body></body></html>"
