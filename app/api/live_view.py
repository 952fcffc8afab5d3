"""The live view: one self-contained HTML page (no CDN) that refreshes the session's picture.

Its pictures come from `/view/frame` with the token the page was opened with, so a view-only link
shows the page and can do nothing else (SPEC §11).
"""

from __future__ import annotations

import html
import json
from urllib.parse import urlencode

from app.schemas.tiktok import SessionInfo
from app.services.common.access import Scope

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TikTok session __SHORT_ID__</title>
<meta name="referrer" content="no-referrer">
<style>
 body{margin:0;font:14px system-ui,sans-serif;background:#111;color:#eee}
 header{display:flex;gap:1.5em;padding:.6em 1em;background:#222;align-items:baseline}
 #state{font-weight:bold} #state.live{color:#4c4} #state.ended{color:#e55}
 img{display:block;max-width:100%;margin:0 auto}
</style></head>
<body><header><span>Session <code>__ID__</code></span><span id="state" class="live">live</span>
<span>login: __LOGIN__</span><span id="access">__ACCESS__</span><span id="left"></span></header>
<img id="shot" alt="the session's active page">
<script>
const config = __CONFIG__;
const shot = document.getElementById('shot'), state = document.getElementById('state');
const left = document.getElementById('left');
let ended = false;
function tick() {
  const seconds = Math.max(0, Math.round((Date.parse(config.expiresAt) - Date.now()) / 1000));
  left.textContent = ended ? '' : `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')} left`;
}
async function refresh() {
  if (ended) return;
  try {
    const response = await fetch(config.frame, {cache: 'no-store', credentials: 'same-origin'});
    if (response.status === 404 || response.status === 401 || response.status === 403) {
      ended = true; state.className = 'ended';
      state.textContent = response.status === 404 ? 'ended' : 'link revoked or expired';
      tick(); return;
    }
    if (response.ok) {
      const old = shot.src;
      shot.src = URL.createObjectURL(await response.blob());
      if (old) URL.revokeObjectURL(old);
    }
  } catch (error) { /* the service restarts or the network blips: try again next second */ }
  setTimeout(refresh, 1000);
}
tick(); setInterval(tick, 1000); refresh();
</script></body></html>
"""


def render_view(info: SessionInfo, token: str | None, scope: Scope) -> str:
    # Relative to the view page (…/session/<id>/view): works behind any PUBLIC_URL path prefix.
    frame = "view/frame"
    if token:
        frame += "?" + urlencode({"token": token})
    config = {"frame": frame, "expiresAt": info.expires_at.isoformat()}
    # json.dumps does not escape "</": done by hand so no value can close the script element.
    config_js = json.dumps(config).replace("</", "<\\/")
    login = f"{info.login.state.value} ({info.login.method})"
    access = "view only" if scope is Scope.VIEW else "interactive"
    return (
        _PAGE.replace("__CONFIG__", config_js)
        .replace("__SHORT_ID__", html.escape(info.session_id[:8]))
        .replace("__ID__", html.escape(info.session_id))
        .replace("__LOGIN__", html.escape(login))
        .replace("__ACCESS__", access)
    )
