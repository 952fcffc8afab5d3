"""Which cookies reach a host, and which of them are a live TikTok session. Pure functions.

Shared by the look at a profile's cookie store (before a browser starts), the cookie import and the
CLI's export warning, so all three agree on what "a session cookie for this host" means.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from typing import Any


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def domain_matches(cookie_domain: str, host: str, *, host_only: bool = False) -> bool:
    """Whether a cookie of `cookie_domain` is sent to `host` (RFC 6265 §5.1.3, "domain-match").

    Case does not matter and a leading dot is ignored. A domain cookie reaches the domain and its
    subdomains, never a look-alike (`eviltiktok.com` is not under `tiktok.com`); a `host_only` cookie
    (set without a Domain attribute) reaches its own host alone, and so does any cookie of an IP
    address, which has no subdomains.
    """
    domain = cookie_domain.lstrip(".").lower()
    host = host.lower()
    if host == domain:
        return True
    return not host_only and not is_ip_address(host) and host.endswith("." + domain)


def has_live_session_cookie(
    cookies: Iterable[Mapping[str, Any]], session_names: Collection[str], now: float
) -> bool:
    """Whether `cookies` (Playwright's shape) hold a session cookie with a value that has not expired."""
    return any(
        is_session_cookie(cookie, session_names) and not _is_expired(cookie, now) for cookie in cookies
    )


def is_session_cookie(cookie: Mapping[str, Any], session_names: Collection[str]) -> bool:
    # An empty value is how a site clears a cookie: it proves nothing.
    return bool(cookie.get("value")) and cookie["name"] in session_names


def _is_expired(cookie: Mapping[str, Any], now: float) -> bool:
    # No `expires`, or Playwright's -1: a cookie for the browser's lifetime, which has no date to pass.
    expires = cookie.get("expires")
    return expires is not None and 0 < expires <= now
