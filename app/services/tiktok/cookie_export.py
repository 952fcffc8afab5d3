"""Playwright cookies → the two formats `cookie_import` reads, and a file only its owner can read.

The JSON array is what Cookie-Editor and EditThisCookie write (`chrome.cookies` field names and
`sameSite` spellings), so the export also loads into those extensions; cookies.txt is the Netscape
format curl, yt-dlp and browser add-ons share.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

ExportFormat = Literal["json", "netscape"]
FORMATS: tuple[ExportFormat, ...] = ("json", "netscape")

# Playwright's spelling → chrome.cookies' (what the extensions write and `cookie_import` reads back).
_SAME_SITE = {"None": "no_restriction", "Lax": "lax", "Strict": "strict"}

NETSCAPE_HEADER = (
    "# Netscape HTTP Cookie File\n"
    "# The TikTok login of the master profile: anyone holding this file is logged in as the account.\n"
)


def render_cookies(cookies: Iterable[dict[str, Any]], export_format: ExportFormat) -> str:
    ordered = sorted(cookies, key=lambda c: (c["domain"].lstrip("."), c["domain"], c["path"], c["name"]))
    if export_format == "json":
        return to_extension_json(ordered)
    return to_netscape(ordered)


def to_extension_json(cookies: Iterable[dict[str, Any]]) -> str:
    entries = []
    for cookie in cookies:
        session = _is_session(cookie)
        entry: dict[str, Any] = {
            "domain": cookie["domain"],
            "hostOnly": not cookie["domain"].startswith("."),
            "httpOnly": bool(cookie.get("httpOnly")),
            "name": cookie["name"],
            "path": cookie.get("path") or "/",
            "sameSite": _SAME_SITE.get(cookie.get("sameSite", ""), "unspecified"),
            "secure": bool(cookie.get("secure")),
            "session": session,
            "storeId": None,
            "value": cookie["value"],
        }
        if not session:
            # The extensions leave expirationDate out for session cookies rather than writing 0.
            entry["expirationDate"] = float(cookie["expires"])
        entries.append(entry)
    return json.dumps(entries, indent=2) + "\n"


def to_netscape(cookies: Iterable[dict[str, Any]]) -> str:
    lines = [NETSCAPE_HEADER]
    for cookie in cookies:
        domain = cookie["domain"]
        fields = [
            ("#HttpOnly_" if cookie.get("httpOnly") else "") + domain,
            "TRUE" if domain.startswith(".") else "FALSE",  # include subdomains: a domain cookie
            cookie.get("path") or "/",
            "TRUE" if cookie.get("secure") else "FALSE",
            "0" if _is_session(cookie) else str(int(cookie["expires"])),
            cookie["name"],
            cookie["value"],
        ]
        lines.append("\t".join(fields) + "\n")
    return "".join(lines)


def _is_session(cookie: dict[str, Any]) -> bool:
    # Playwright reports a session cookie's expiry as -1.
    expires = cookie.get("expires", -1)
    return not isinstance(expires, int | float) or expires <= 0
