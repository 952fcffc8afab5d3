"""Build real Chromium master profiles against the stand-in site.

The profiles are produced by the same Chromium the service runs, so their on-disk layout (cookie
database, encryption, lock files) is exactly what the service will have to clone.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlencode

import httpx
from playwright.async_api import async_playwright

from app.services.common.browser import chromium_flags

CHROMIUM_PATH = Path("/usr/bin/chromium")
# The service's own required flags, so test profiles are made by a browser started the same way.
CHROMIUM_FLAGS = list(chromium_flags())
NAV_TIMEOUT_MS = 15_000


def require_chromium() -> Path:
    if not CHROMIUM_PATH.exists():
        raise RuntimeError(
            f"{CHROMIUM_PATH} is missing: browser tests need Debian's Chromium (apt-get install chromium)"
        )
    return CHROMIUM_PATH


async def build_master_profile(
    profile_dir: Path,
    site_url: str,
    user: str | None,
    *,
    max_age: int | None = None,
    issued_ago: int | None = None,
) -> None:
    """Create `profile_dir` as a real Chromium profile that visited `site_url`.

    user=None leaves only guest cookies; otherwise the browser logs in as `user` through the
    stand-in's back door. `max_age`/`issued_ago` shape sid_guard (e.g. issued_ago > max_age gives a
    guard that is already past its expiry while the cookie itself stays in the browser).
    """
    executable = require_chromium()
    base = site_url.rstrip("/")
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            profile_dir, executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            if user is not None:
                params = {"user": user, "max_age": max_age, "issued_ago": issued_ago}
                query = urlencode({k: v for k, v in params.items() if v is not None})
                await page.goto(f"{base}/__standin/login?{query}", timeout=NAV_TIMEOUT_MS)
            await page.goto(f"{base}/", timeout=NAV_TIMEOUT_MS)
        finally:
            # A clean close is what makes Chromium flush its cookie store to Default/Cookies; a killed
            # browser would leave it behind (Chromium only commits cookies to disk every ~30 s).
            await context.close()
    cookies_db = profile_dir / "Default" / "Cookies"
    if not cookies_db.is_file():
        raise RuntimeError(f"Chromium did not write {cookies_db}; the profile would clone without cookies")


def install_master(src: Path, user_data_dir: Path, account: str = "default") -> Path:
    """Copy a built master profile to the account's `master/`, where the service expects it."""
    return _copy_profile(src, user_data_dir / "accounts" / account / "master")


def install_legacy_master(src: Path, user_data_dir: Path) -> Path:
    """Copy a built master profile to `user_data_dir/master`: the single-master layout of earlier
    versions, which the service turns into the account `default`."""
    return _copy_profile(src, user_data_dir / "master")


def _copy_profile(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # symlinks=True: Chromium's Singleton* entries are symlinks to nowhere while a browser runs.
    shutil.copytree(src, dest, symlinks=True)
    return dest


def export_cookies_txt(login_url: str, path: Path) -> None:
    """What a cookie-export extension writes after a person logs in: a Netscape cookies.txt."""
    with httpx.Client() as client:
        client.get(login_url, follow_redirects=False)
        lines = ["# Netscape HTTP Cookie File"]
        for cookie in client.cookies.jar:
            prefix = "#HttpOnly_" if cookie.has_nonstandard_attr("HttpOnly") else ""
            fields = [prefix + cookie.domain, "FALSE", cookie.path, "FALSE", str(cookie.expires or 0)]
            lines.append("\t".join([*fields, cookie.name, cookie.value or ""]))
    path.write_text("\n".join(lines) + "\n")
