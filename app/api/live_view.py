"""The live view (SPEC §13): one self-contained HTML page (no CDN) for a person, in their own browser.

The page opens the session's stream (`view/stream`, a WebSocket: app/services/common/live_view.py)
with the token it was opened with. Pictures arrive as JPEGs; `#screen` is sized to the page's
viewport's aspect ratio and scaled to the window, so its box maps linearly onto the viewport: a point
at fraction (fx, fy) of the picture is (fx * viewport width, fy * viewport height) in the page, which
is what the page sends as mouse coordinates. With an interactive link the mouse, wheel, keyboard and
paste go to the page; with a view-only link the page sends nothing and says so (and the server would
refuse it anyway). Where WebSockets do not get through, it falls back to `view/frame`, a still
picture a second.

`done_url`: for a remote-login session (SPEC §13) the page shows a **Done** button that POSTs there
with the same token.
"""

from __future__ import annotations

import html
import json
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from app.schemas.tiktok import SessionInfo, TikTokLoginState
from app.services.common.access import Scope

_LOGIN_CLASS = {TikTokLoginState.LOGGED_IN: "ok", TikTokLoginState.LOGGED_OUT: "bad"}

_VIEW_ONLY_NOTICE = (
    '<div class="notice" role="note"><strong>This is a view only link.</strong> '
    "You can watch the session; your clicks and keys are not sent to it.</div>"
)
_INTERACTIVE_HINT = (
    "This link is interactive: click the picture, then use your mouse and keyboard on the page."
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>Live view · session __SHORT_ID__</title>
<style>
:root{--bg:#0e1014;--panel:#161920;--raised:#1e222b;--line:#2b313c;--text:#e8eaef;--muted:#9aa3b2;
 --green:#3ecf8e;--amber:#f5b945;--red:#f26d6d;--blue:#62a8ff;color-scheme:dark}
*{box-sizing:border-box}
html,body{height:100%;margin:0}
body{display:flex;flex-direction:column;background:var(--bg);color:var(--text);
 font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Ubuntu,sans-serif}
header{display:flex;align-items:center;gap:.5rem;flex-wrap:wrap;padding:.55rem .9rem;background:var(--panel);
 border-bottom:1px solid var(--line)}
.brand{font-weight:650;margin-right:.35rem;white-space:nowrap}
.brand::before{content:"";display:inline-block;width:.6rem;height:.6rem;margin-right:.45rem;border-radius:50%;
 background:var(--red);box-shadow:0 0 0 3px rgba(242,109,109,.25);vertical-align:.05rem}
body.ended .brand::before{background:var(--muted);box-shadow:none}
.chip{display:inline-flex;align-items:center;gap:.4rem;padding:.16rem .6rem;border-radius:999px;
 background:var(--raised);border:1px solid var(--line);color:var(--muted);white-space:nowrap}
.chip b{color:var(--text);font-weight:600}
.chip code{color:var(--text);font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.chip .dot{width:.5rem;height:.5rem;border-radius:50%;background:var(--muted)}
.chip.ok .dot{background:var(--green)} .chip.ok b{color:var(--green)}
.chip.warn .dot{background:var(--amber)} .chip.warn b{color:var(--amber)}
.chip.bad .dot{background:var(--red)} .chip.bad b{color:var(--red)}
.badge{padding:.2rem .65rem;border-radius:.35rem;font-weight:700;font-size:.8rem;letter-spacing:.03em;
 white-space:nowrap}
.badge.interactive{background:#132c4a;color:var(--blue);border:1px solid #27517f}
.badge.viewonly{background:#3b2e0b;color:var(--amber);border:1px solid #70561a}
.spacer{flex:1}
button{font:inherit;color:inherit}
#done{background:var(--green);color:#06140d;border:0;border-radius:.45rem;padding:.42rem 1.2rem;
 font-weight:700;cursor:pointer}
#done:hover{filter:brightness(1.08)} #done:disabled{opacity:.6;cursor:progress}
#saved{color:var(--green);font-weight:700}
nav{display:flex;gap:.3rem;padding:.4rem .9rem 0;background:var(--panel);border-bottom:1px solid var(--line);
 overflow-x:auto;min-height:2.35rem}
nav button{display:block;max-width:17rem;padding:.36rem .85rem;background:transparent;
 border:1px solid transparent;border-bottom:0;border-radius:.5rem .5rem 0 0;color:var(--muted);
 overflow:hidden;text-overflow:ellipsis;white-space:nowrap;cursor:pointer}
nav button:hover{background:var(--raised);color:var(--text)}
nav button[aria-selected=true]{background:var(--bg);border-color:var(--line);color:var(--text);
 font-weight:600;cursor:default}
nav button[aria-disabled=true]{cursor:default}
.notice{padding:.6rem .9rem;background:#3b2e0b;color:#ffdc8f;border-bottom:1px solid #70561a}
main{flex:1;min-height:0;position:relative;display:flex;align-items:center;justify-content:center;overflow:hidden}
#screen{display:block;flex:none;width:640px;height:360px;background:#000;border-radius:3px;
 box-shadow:0 0 0 1px var(--line),0 14px 44px rgba(0,0,0,.55);user-select:none;-webkit-user-drag:none}
#screen:focus{outline:none;box-shadow:0 0 0 2px var(--blue),0 14px 44px rgba(0,0,0,.55)}
#screen.ended{filter:grayscale(1) brightness(.45)}
body.interactive #screen{cursor:crosshair}
#overlay{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;pointer-events:none}
#overlay[hidden]{display:none}
#overlay div{max-width:30rem;padding:1rem 1.4rem;border-radius:.7rem;background:rgba(14,16,20,.9);
 border:1px solid var(--line);font-size:1.05rem;text-align:center}
#toast{position:absolute;left:50%;bottom:1rem;transform:translateX(-50%);padding:.5rem 1rem;
 border-radius:.5rem;background:#4a1d1d;color:#ffd0d0;border:1px solid #7a3333;pointer-events:none}
#toast[hidden]{display:none}
footer{display:flex;gap:1rem;align-items:center;padding:.32rem .9rem;background:var(--panel);
 border-top:1px solid var(--line);color:var(--muted);font-size:.82rem}
footer.focused #hint{color:var(--blue)}
</style></head>
<body class="__ACCESS_CLASS__">
<header>
 <span class="brand">Live view</span>
 <span class="chip" title="__ID__">session <code>__SHORT_ID__</code></span>
 <span class="chip warn" id="state"><span class="dot"></span>state <b>connecting</b></span>
 <span class="chip" id="account"__ACCOUNT_HIDDEN__><span class="dot"></span>account <b>__ACCOUNT__</b></span>
 <span class="chip __LOGIN_CLASS__" id="login"><span class="dot"></span>login <b>__LOGIN__</b></span>
 <span class="chip" id="left"><span class="dot"></span>time left <b>–</b></span>
 __BADGE__
 <span class="spacer"></span>
 <span id="saved" role="status" hidden>Saved — you can close this tab</span>
 <button id="done" type="button"__DONE_HIDDEN__>Done</button>
</header>
<nav id="tabs" role="tablist" aria-label="The session's tabs"></nav>
__NOTICE__
<main id="stage">
 <img id="screen" alt="The session's page" draggable="false"__SCREEN_FOCUS__>
 <div id="overlay"><div id="overlay-text">Connecting…</div></div>
 <div id="toast" role="status" hidden></div>
</main>
<footer id="footer">
 <span id="hint">__HINT__</span><span class="spacer"></span><span id="stats"></span>
</footer>
<script>
(() => {
'use strict';
const config = __CONFIG__;
const $ = (id) => document.getElementById(id);
const screen = $('screen'), stage = $('stage'), overlay = $('overlay'), overlayText = $('overlay-text');
const tabsNav = $('tabs'), toast = $('toast'), stats = $('stats'), hint = $('hint'), footer = $('footer');
const interactive = config.interactive;
const REASONS = {idle: 'nothing was sent to it for too long', max_duration: 'its time ran out',
  deleted: 'it was closed through the API', client_closed: 'a client closed its browser',
  browser_closed: 'its browser closed', last_page_closed: 'its last tab was closed',
  shutdown: 'the service stopped', done: 'saved'};
let viewport = null, expiresAt = Date.parse(config.expiresAt);
let socket = null, finished = false, saved = false, polling = false, retries = 0;
let sentSize = '', sizeTimer = 0, shown = null, pending = [], frames = 0, lastCount = 0, frameSize = '';
let toastTimer = 0;

function setOverlay(text) { overlayText.textContent = text; overlay.hidden = !text; }
function flash(text) {
  toast.textContent = text; toast.hidden = false;
  clearTimeout(toastTimer); toastTimer = setTimeout(() => { toast.hidden = true; }, 3000);
}
function setChip(chip, value, tone) {
  chip.classList.remove('ok', 'warn', 'bad');
  if (tone) chip.classList.add(tone);
  chip.querySelector('b').textContent = value;
}
function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
}

// --- the picture: its box keeps the viewport's aspect ratio, so it maps linearly onto the page ---
function room() {
  const box = stage.getBoundingClientRect();
  return {width: Math.max(64, box.width - 24), height: Math.max(64, box.height - 24)};
}
function layout() {
  const space = room();
  const width = viewport ? viewport.width : 16, height = viewport ? viewport.height : 9;
  const scale = Math.min(space.width / width, space.height / height, viewport ? 1 : Infinity);
  screen.style.width = (width * scale) + 'px';
  screen.style.height = (height * scale) + 'px';
  clearTimeout(sizeTimer);
  sizeTimer = setTimeout(askForSize, 150);
}
function askForSize() {
  // Frames no larger than the room they are shown in (in device pixels): the screencast keeps the
  // page's aspect ratio inside these bounds.
  const dpr = window.devicePixelRatio || 1, space = room();
  const clamp = (n) => Math.max(16, Math.min(8192, Math.round(n * dpr)));
  const size = {type: 'size', width: clamp(space.width), height: clamp(space.height)};
  const key = size.width + 'x' + size.height;
  if (key !== sentSize && socket && socket.readyState === WebSocket.OPEN) { sentSize = key; send(size); }
}
window.addEventListener('resize', layout);

function showPicture(blob, info) {
  if (info && info.viewport.width > 0 && (!viewport || viewport.width !== info.viewport.width ||
      viewport.height !== info.viewport.height)) {
    viewport = {width: info.viewport.width, height: info.viewport.height};
    layout();
  }
  const url = URL.createObjectURL(blob);
  pending.push(url);
  screen.src = url;
  frames += 1;
  screen.dataset.frames = String(frames);
  if (info) frameSize = info.width + '×' + info.height;
  if (!shown && !finished) setOverlay('');
  shown = url;
}
screen.addEventListener('load', () => {
  // Every older picture is replaced now: free them.
  const keep = screen.src;
  pending = pending.filter((url) => {
    if (url === keep) return true;
    URL.revokeObjectURL(url);
    return false;
  });
});

// --- the session: state, account, login, time left, tabs ---
function showState(state) {
  setChip($('state'), state.state, {live: 'ok', starting: 'warn', closing: 'warn'}[state.state] || 'bad');
  if (state.account) { $('account').hidden = false; setChip($('account'), state.account, ''); }
  const login = state.login.state;
  setChip($('login'), login.replace('_', ' '), {logged_in: 'ok', logged_out: 'bad'}[login] || 'warn');
  $('login').title = 'how it was proven: ' + state.login.method;
  expiresAt = Date.parse(state.expires_at);
  tick();
}
function tick() {
  if (finished) return;
  const left = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  const two = (n) => String(n).padStart(2, '0');
  const text = left >= 3600
    ? `${Math.floor(left / 3600)}:${two(Math.floor(left / 60) % 60)}:${two(left % 60)}`
    : `${Math.floor(left / 60)}:${two(left % 60)}`;
  setChip($('left'), text, left < 30 ? 'bad' : left < 120 ? 'warn' : 'ok');
}
function showTabs(tabs) {
  tabsNav.replaceChildren(...tabs.map((tab) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.setAttribute('role', 'tab');
    button.setAttribute('aria-selected', String(tab.active));
    button.dataset.index = String(tab.index);
    button.textContent = tab.title || tab.url || 'New tab';
    button.title = tab.url;
    if (interactive && !finished) {
      if (!tab.active) button.addEventListener('click', () => send({type: 'switch_tab', index: tab.index}));
    } else {
      button.setAttribute('aria-disabled', 'true');
    }
    return button;
  }));
}
function finish(kind, reason) {
  if (finished) return;
  finished = true;
  if (socket) socket.close();
  document.body.classList.add('ended');
  stats.textContent = '';
  screen.classList.add('ended');
  screen.blur();
  for (const button of tabsNav.querySelectorAll('button')) button.setAttribute('aria-disabled', 'true');
  setChip($('left'), '–', '');
  if (kind === 'revoked') {
    setChip($('state'), 'link closed', 'bad');
    setOverlay('This link was revoked or has expired. Ask for a new one.');
  } else {
    setChip($('state'), 'ended', 'bad');
    const why = REASONS[reason] || reason;
    const ended = 'This session has ended' + (why ? ' (' + why + ').' : '.');
    setOverlay(saved ? 'Saved — you can close this tab' : ended);
  }
}

// --- the stream ---
function streamUrl() {
  const url = new URL(config.stream, location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}
function connect() {
  if (finished) return;
  const ws = new WebSocket(streamUrl());
  let opened = false, info = null;
  ws.binaryType = 'blob';
  socket = ws;
  ws.onopen = () => {
    opened = true; retries = 0; sentSize = '';
    askForSize();
    if (!shown) setOverlay('Waiting for the page…');
  };
  ws.onmessage = (event) => {
    if (typeof event.data !== 'string') {
      showPicture(new Blob([event.data], {type: 'image/jpeg'}), info);
      info = null;
      return;
    }
    let message;
    try { message = JSON.parse(event.data); } catch (error) { return; }
    if (message.type === 'frame') info = message;
    else if (message.type === 'state') showState(message);
    else if (message.type === 'tabs') showTabs(message.tabs);
    else if (message.type === 'ended') finish('ended', message.reason);
    else if (message.type === 'revoked') finish('revoked');
    else if (message.type === 'error') flash(message.message);
  };
  ws.onclose = (event) => {
    if (socket === ws) socket = null;
    if (finished) return;
    if (event.code === 1000) finish('ended');
    else if (event.code === 1008) finish('revoked');
    else if (!opened) diagnose();
    else retry();
  };
}
function retry() {
  retries += 1;
  setOverlay('Connection lost. Reconnecting…');
  setTimeout(connect, Math.min(5000, 300 * 2 ** Math.min(retries, 4)));
}
async function diagnose() {
  // The upgrade was refused, or never reached the service: the picture route says why.
  try {
    const response = await fetch(config.frame, {cache: 'no-store', credentials: 'same-origin'});
    if (response.status === 404) return finish('ended');
    if (response.status === 401 || response.status === 403) return finish('revoked');
    if (response.status === 429) {
      setOverlay('Too many connections to this session are open. Retrying…');
      retries += 1;
      return setTimeout(connect, 3000);
    }
    if (response.ok && retries >= 2) return startPolling();
  } catch (error) { /* the service restarts, or the network blips */ }
  retry();
}
function startPolling() {
  // WebSockets do not get through (a proxy in the way?): a still picture every second instead.
  polling = true;
  setOverlay('');
  hint.textContent = 'The live stream cannot reach this browser: showing a still picture every second.';
  const poll = async () => {
    if (finished) return;
    try {
      const response = await fetch(config.frame, {cache: 'no-store', credentials: 'same-origin'});
      if (response.status === 404) return finish('ended');
      if (response.status === 401 || response.status === 403) return finish('revoked');
      if (response.ok) showPicture(await response.blob(), null);
    } catch (error) { /* try again next second */ }
    setTimeout(poll, 1000);
  };
  screen.addEventListener('load', () => {
    if (polling && !viewport && screen.naturalWidth) {
      viewport = {width: screen.naturalWidth, height: screen.naturalHeight};
      layout();
    }
  });
  poll();
}

// --- input: only with an interactive link (the server refuses it otherwise) ---
function ready() {
  return interactive && !finished && viewport && socket && socket.readyState === WebSocket.OPEN;
}
if (interactive) {
  const BUTTONS = ['left', 'middle', 'right', 'back', 'forward'];
  const mac = /Mac|iPhone|iPad/.test(navigator.platform);
  const keysDown = new Map();
  let held = 0, move = null, wheel = null;
  const point = (event) => {
    const box = screen.getBoundingClientRect();
    const round = (n) => Math.round(n * 100) / 100;
    return {x: round((event.clientX - box.left) / box.width * viewport.width),
            y: round((event.clientY - box.top) / box.height * viewport.height)};
  };
  const modifiers = (event) => {
    const altGraph = event.getModifierState && event.getModifierState('AltGraph');
    const held = new Set();
    if (event.altKey && !altGraph) held.add('alt');
    if (event.ctrlKey && !altGraph) held.add('ctrl');
    // The session's Chromium runs on Linux, where shortcuts use Ctrl: a Mac's Cmd+A is Ctrl+A there.
    if (event.metaKey) held.add(mac ? 'ctrl' : 'meta');
    if (event.shiftKey) held.add('shift');
    return [...held];
  };
  const flushMove = () => { if (move) { send(move); move = null; } };
  screen.addEventListener('mousedown', (event) => {
    if (!ready()) return;
    event.preventDefault();
    screen.focus({preventScroll: true});
    flushMove();
    held |= 1 << event.button;
    send({type: 'mousedown', ...point(event), button: BUTTONS[event.button] || 'left',
          clickCount: Math.min(3, Math.max(1, event.detail || 1)), modifiers: modifiers(event)});
  });
  window.addEventListener('mouseup', (event) => {
    if (!ready() || !(held & (1 << event.button))) return;
    held &= ~(1 << event.button);
    flushMove();
    send({type: 'mouseup', ...point(event), button: BUTTONS[event.button] || 'left',
          clickCount: Math.min(3, Math.max(1, event.detail || 1)), modifiers: modifiers(event)});
  });
  window.addEventListener('mousemove', (event) => {
    if (!ready() || (event.target !== screen && !held)) return;
    // One move a display frame is as smooth as the person's own pointer, and no flood.
    if (!move) requestAnimationFrame(flushMove);
    move = {type: 'mousemove', ...point(event), modifiers: modifiers(event)};
  });
  screen.addEventListener('wheel', (event) => {
    if (!ready()) return;
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 40 : event.deltaMode === 2 ? viewport.height : 1;
    if (!wheel) {
      wheel = {type: 'wheel', ...point(event), deltaX: 0, deltaY: 0, modifiers: modifiers(event)};
      requestAnimationFrame(() => { send(wheel); wheel = null; });
    }
    wheel.deltaX += event.deltaX * unit;
    wheel.deltaY += event.deltaY * unit;
  }, {passive: false});
  screen.addEventListener('contextmenu', (event) => event.preventDefault());
  screen.addEventListener('dragstart', (event) => event.preventDefault());
  screen.addEventListener('keydown', (event) => {
    if (!ready() || event.isComposing || event.key === 'Process' || event.key === 'Unidentified') return;
    // Ctrl/Cmd+V: the browser fires 'paste' with the person's own clipboard, sent on below.
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === 'v') return;
    event.preventDefault();
    const key = {type: 'keydown', key: event.key, code: event.code, modifiers: modifiers(event),
                 repeat: event.repeat, location: event.location};
    keysDown.set(event.code || event.key, key);
    send(key);
  });
  screen.addEventListener('keyup', (event) => {
    const id = event.code || event.key;
    if (!keysDown.has(id)) return;
    keysDown.delete(id);
    event.preventDefault();
    send({type: 'keyup', key: event.key, code: event.code, modifiers: modifiers(event),
          location: event.location});
  });
  document.addEventListener('paste', (event) => {
    if (!ready() || document.activeElement !== screen) return;
    event.preventDefault();
    const text = event.clipboardData ? event.clipboardData.getData('text/plain') : '';
    if (text) send({type: 'paste', text: text.slice(0, 100000)});
  });
  screen.addEventListener('focus', () => {
    footer.classList.add('focused');
    hint.textContent = 'Your keyboard goes to the page. Click outside the picture to take it back.';
  });
  screen.addEventListener('blur', () => {
    // No key stays held down in the page when the person looks elsewhere.
    for (const key of keysDown.values()) send({...key, type: 'keyup', repeat: false});
    keysDown.clear();
    footer.classList.remove('focused');
    hint.textContent = config.hint;
  });
}

// --- Done (remote login): the session ends and its login is saved ---
const done = $('done');
if (config.doneUrl) {
  done.addEventListener('click', async () => {
    done.disabled = true;
    done.textContent = 'Saving…';
    try {
      const response = await fetch(config.doneUrl, {method: 'POST', credentials: 'same-origin'});
      if (response.ok) {
        saved = true;
        done.hidden = true;
        $('saved').hidden = false;
        finish('ended', 'done');
        setOverlay('Saved — you can close this tab');
        return;
      }
      const body = await response.json().catch(() => null);
      flash((body && body.message) || `Could not save (HTTP ${response.status})`);
    } catch (error) {
      flash('Could not reach the service; try again.');
    }
    done.disabled = false;
    done.textContent = 'Done';
  });
}

setInterval(() => {
  tick();
  if (!finished && frames) {
    const rate = frames - lastCount;
    stats.textContent = (rate ? `${rate} fps` : 'page still') + (frameSize ? ` · ${frameSize}` : '');
  }
  lastCount = frames;
}, 1000);
layout();
tick();
connect();
})();
</script></body></html>
"""


def _with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), ("token", token)])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def render_view(info: SessionInfo, token: str | None, scope: Scope, done_url: str | None = None) -> str:
    """The view page for a caller of `scope`, its requests carrying `token` (None: an API key cookie).

    `done_url`: a remote-login session's "Done" endpoint; the button is shown only with one.
    """
    interactive = scope.allows(Scope.INTERACTIVE_VIEW)
    hint = _INTERACTIVE_HINT if interactive else ""
    # Relative to the view page (…/session/<id>/view): works behind any PUBLIC_URL path prefix.
    config = {
        "stream": _with_token("view/stream", token),
        "frame": _with_token("view/frame", token),
        "expiresAt": info.expires_at.isoformat(),
        "interactive": interactive,
        "doneUrl": _with_token(done_url, token) if done_url else None,
        "hint": hint,
    }
    # json.dumps does not escape "</": done by hand so no value can close the script element.
    config_js = json.dumps(config).replace("</", "<\\/")
    badge = (
        '<span class="badge interactive" id="access">Interactive</span>'
        if interactive
        else '<span class="badge viewonly" id="access">View only</span>'
    )
    values = {
        "__ACCESS_CLASS__": "interactive" if interactive else "viewonly",
        "__SHORT_ID__": html.escape(info.session_id[:8]),
        "__ID__": html.escape(info.session_id),
        "__ACCOUNT__": html.escape(info.account or ""),
        "__ACCOUNT_HIDDEN__": "" if info.account else " hidden",
        "__LOGIN__": html.escape(info.login.state.value.replace("_", " ")),
        "__LOGIN_CLASS__": _LOGIN_CLASS.get(info.login.state, "warn"),
        "__BADGE__": badge,
        "__NOTICE__": "" if interactive else _VIEW_ONLY_NOTICE,
        "__SCREEN_FOCUS__": ' tabindex="0"' if interactive else "",
        "__HINT__": html.escape(hint),
        "__DONE_HIDDEN__": "" if done_url else " hidden",
        # Last: no value put in before can then be mistaken for a placeholder.
        "__CONFIG__": config_js,
    }
    page = _PAGE
    for placeholder, value in values.items():
        page = page.replace(placeholder, value)
    return page
