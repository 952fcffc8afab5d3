"""Cookies exported from a desktop browser → Playwright cookies. Pure parsing, no browser here.

Two formats: the JSON array written by common export extensions (Cookie-Editor, EditThisCookie:
`name`, `value`, `domain`, `path`, `expirationDate`, `httpOnly`, `secure`, `sameSite`, `hostOnly`)
and Netscape `cookies.txt` (tab-separated, `#HttpOnly_` prefix on HttpOnly lines).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class CookieFileError(ValueError):
    """The file cannot be used; the message says why in words a person can act on."""


_SAME_SITE = {"no_restriction": "None", "none": "None", "lax": "Lax", "strict": "Strict"}


def parse_cookie_file(text: str) -> list[dict[str, Any]]:
    stripped = text.lstrip()
    if stripped.startswith(("[", "{")):
        return _parse_json(stripped)
    return _parse_netscape(text)


def _parse_json(text: str) -> list[dict[str, Any]]:
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise CookieFileError(
            f"the JSON cookie file does not parse: {error.msg} (line {error.lineno})"
        ) from None
    if not isinstance(entries, list):
        raise CookieFileError("the JSON cookie file must be an array of cookie objects")
    cookies = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("name") or "domain" not in entry:
            raise CookieFileError(f"cookie #{index + 1} has no name or domain")
        cookie: dict[str, Any] = {
            "name": str(entry["name"]),
            "value": str(entry.get("value", "")),
            "domain": str(entry["domain"]),
            "path": str(entry.get("path") or "/"),
            "httpOnly": bool(entry.get("httpOnly", False)),
            "secure": bool(entry.get("secure", False)),
        }
        if entry.get("hostOnly"):
            cookie["domain"] = cookie["domain"].lstrip(".")
        expires = entry.get("expirationDate", entry.get("expires"))
        if isinstance(expires, int | float) and not entry.get("session", False) and expires > 0:
            cookie["expires"] = float(expires)
        same_site = _SAME_SITE.get(str(entry.get("sameSite", "")).lower())
        if same_site == "None" and not cookie["secure"]:
            same_site = "Lax"  # Chromium refuses SameSite=None without Secure
        if same_site:
            cookie["sameSite"] = same_site
        cookies.append(cookie)
    return cookies


def _parse_netscape(text: str) -> list[dict[str, Any]]:
    cookies = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        http_only = line.startswith("#HttpOnly_")
        if http_only:
            line = line.removeprefix("#HttpOnly_")
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 7:
            raise CookieFileError(
                f"line {number} is neither JSON nor Netscape cookies.txt (7 tab-separated fields)"
            )
        domain, _subdomains, path, secure, expires, name, value = fields
        cookie: dict[str, Any] = {
            "name": name,
            "value": value,
            "domain": domain,
            "path": path or "/",
            "httpOnly": http_only,
            "secure": secure.upper() == "TRUE",
        }
        if expires.isdigit() and int(expires) > 0:
            cookie["expires"] = float(expires)
        cookies.append(cookie)
    return cookies


def cookies_for_host(cookies: Iterable[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    """The cookies a browser would send to `host` (domain cookies match subdomains)."""
    selected = []
    for cookie in cookies:
        domain = cookie["domain"].lstrip(".").lower()
        if host.lower() == domain or host.lower().endswith("." + domain):
            selected.append(cookie)
    return selected


def require_session_cookie(
    cookies: Iterable[dict[str, Any]], session_names: Iterable[str], host: str
) -> None:
    names = {cookie["name"] for cookie in cookies if cookie.get("value")}
    if not names & set(session_names):
        raise CookieFileError(
            f"no TikTok session cookie ({', '.join(session_names)}) for {host} in the file: "
            "export the cookies while logged in to TikTok"
        )
