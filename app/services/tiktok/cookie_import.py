"""Cookies exported from a desktop browser → Playwright cookies. Pure parsing, no browser here.

Three formats: the JSON array written by common export extensions (Cookie-Editor, EditThisCookie:
`name`, `value`, `domain`, `path`, `expirationDate`, `httpOnly`, `secure`, `sameSite`, `hostOnly`),
Playwright's `storage_state` JSON (`{"cookies": [...], "origins": [...]}`, `expires` -1 for a session
cookie) and Netscape `cookies.txt` (tab-separated, `#HttpOnly_` prefix on HttpOnly lines).

`--domain-map FROM=TO` rewrites cookie domains before they are matched against the TikTok host, so an
export made on tiktok.com loads for another host (a stand-in site, a regional domain).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from app.services.tiktok.login.cookie_rules import (
    domain_matches,
    has_live_session_cookie,
    is_ip_address,
    is_session_cookie,
)

# (FROM, TO), both lower-case and without a leading dot.
DomainMap = tuple[str, str]


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
    if isinstance(entries, dict) and isinstance(entries.get("cookies"), list):
        entries = entries["cookies"]  # Playwright's storage_state
    if not isinstance(entries, list):
        raise CookieFileError(
            "the JSON cookie file must be an array of cookie objects (an export extension's) or "
            'Playwright\'s storage_state ({"cookies": [...]})'
        )
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
    # Every cookie counts as a domain cookie here: an export does not reliably mark one with a leading
    # dot (cookies.txt says so in its own column, which the parser drops).
    return [cookie for cookie in cookies if domain_matches(cookie["domain"], host)]


def same_site_family(cookie_domain: str, host: str) -> bool:
    """Whether a cookie belongs to the TikTok site of `host`: its registrable domain (tiktok.com for
    www.tiktok.com: also m.tiktok.com, .tiktok.com), or exactly the host when it is an address."""
    domain = cookie_domain.lstrip(".").lower()
    host = host.lower()
    if is_ip_address(host) or "." not in host:
        return domain == host
    site = ".".join(host.split(".")[-2:])
    # The cookie's domain is the site or under it: where a cookie of the whole site is sent.
    return domain_matches(site, domain)


def require_session_cookie(
    cookies: Sequence[dict[str, Any]], session_names: Sequence[str], host: str, now: float | None = None
) -> None:
    """A file with a session cookie for `host` that has not expired; otherwise it says what is wrong."""
    now = time.time() if now is None else now
    if has_live_session_cookie(cookies, session_names, now):
        return
    session = [cookie for cookie in cookies if is_session_cookie(cookie, session_names)]
    if not session:
        raise CookieFileError(
            f"no TikTok session cookie ({', '.join(session_names)}) for {host} in the file: "
            "export the cookies while logged in to TikTok"
        )
    # Session cookies, none of them alive: every one has expired.
    last = max(cookie["expires"] for cookie in session)
    expired_on = datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%d")
    raise CookieFileError(
        f"the file's TikTok session cookies ({', '.join(sorted({c['name'] for c in session}))}) all "
        f"expired (the last on {expired_on}): log in to TikTok in your browser and export them again"
    )


def require_cookies_for_host(
    cookies: Sequence[dict[str, Any]], selected: Sequence[dict[str, Any]], host: str
) -> None:
    """No cookie matches TIKTOK_URL's host: name the domains the file holds and the way to map them."""
    if selected:
        return
    domains = sorted({cookie["domain"].lstrip(".").lower() for cookie in cookies})
    shown = ", ".join(domains[:8]) + (f" and {len(domains) - 8} more" if len(domains) > 8 else "")
    example = next((d for d in domains if "tiktok" in d), domains[0] if domains else "tiktok.com")
    raise CookieFileError(
        f"no cookie in the file is for {host} (TIKTOK_URL's host); the file holds cookies for: "
        f"{shown or 'nothing'}. If they are the account's, map them: --domain-map .{example}={host}"
    )


def parse_domain_map(spec: str) -> DomainMap:
    """`FROM=TO` (e.g. `.tiktok.com=127.0.0.1`) → `("tiktok.com", "127.0.0.1")`; ValueError says why not."""
    source, separator, target = spec.partition("=")
    source, target = source.strip().lower().lstrip("."), target.strip().lower().lstrip(".")
    if not separator or not source or not target:
        raise ValueError(f"{spec!r} is not FROM=TO, e.g. .tiktok.com=127.0.0.1")
    for domain in (source, target):
        if any(character.isspace() or character in "/=" for character in domain):
            raise ValueError(f"{domain!r} is not a cookie domain (no scheme, path or spaces)")
        if ":" in domain and not is_ip_address(domain):
            raise ValueError(f"{domain!r} has a port; cookie domains have none (use the bare host)")
    return source, target


def map_cookie_domains(
    cookies: Iterable[dict[str, Any]], mapping: Sequence[DomainMap]
) -> list[dict[str, Any]]:
    """Rewrite each cookie's domain by the first rule that matches it; unmatched cookies stay as they are.

    FROM matches itself and its subdomains, whose prefix is kept (`www.tiktok.com` → `www.<TO>`); a
    domain cookie (leading dot) stays one and a host-only cookie stays host-only. An IP address has no
    subdomains and takes no domain cookies, so every cookie mapped onto one becomes host-only for it.
    """
    return [dict(cookie, domain=_mapped_domain(cookie["domain"], mapping)) for cookie in cookies]


def _mapped_domain(domain: str, mapping: Sequence[DomainMap]) -> str:
    bare = domain.lstrip(".").lower()
    for source, target in mapping:
        if bare == source:
            prefix = ""
        elif bare.endswith("." + source):
            prefix = bare[: -len(source)]
        else:
            continue
        if is_ip_address(target):
            return target
        return ("." if domain.startswith(".") else "") + prefix + target
    return domain
