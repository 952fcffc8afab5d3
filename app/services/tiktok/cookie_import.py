"""Cookies exported from a desktop browser → Playwright cookies. Pure parsing, no browser here.

Two formats: the JSON array written by common export extensions (Cookie-Editor, EditThisCookie:
`name`, `value`, `domain`, `path`, `expirationDate`, `httpOnly`, `secure`, `sameSite`, `hostOnly`)
and Netscape `cookies.txt` (tab-separated, `#HttpOnly_` prefix on HttpOnly lines).

`--domain-map FROM=TO` rewrites cookie domains before they are matched against the TikTok host, so an
export made on tiktok.com loads for another host (a stand-in site, a regional domain).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from typing import Any

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


def parse_domain_map(spec: str) -> DomainMap:
    """`FROM=TO` (e.g. `.tiktok.com=127.0.0.1`) → `("tiktok.com", "127.0.0.1")`; ValueError says why not."""
    source, separator, target = spec.partition("=")
    source, target = source.strip().lower().lstrip("."), target.strip().lower().lstrip(".")
    if not separator or not source or not target:
        raise ValueError(f"{spec!r} is not FROM=TO, e.g. .tiktok.com=127.0.0.1")
    for domain in (source, target):
        if any(character.isspace() or character in "/=" for character in domain):
            raise ValueError(f"{domain!r} is not a cookie domain (no scheme, path or spaces)")
        if ":" in domain and not _is_ip_address(domain):
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
        if _is_ip_address(target):
            return target
        return ("." if domain.startswith(".") else "") + prefix + target
    return domain


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
