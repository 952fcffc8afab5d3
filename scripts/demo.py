"""`make demo`: the main job end to end against the bundled TikTok stand-in.

Starts the stand-in site, makes two accounts with the CLI (`demo`: logs in there and exports the
cookies like a desktop browser would, then imports them; `spare`: never logged in), starts the
service (each browser in its own sandbox), lists the accounts, creates a session, shows it, drives it
over CDP as a client would, ends it, and shows that two sessions of one account are one device.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import httpx
from playwright.sync_api import sync_playwright

from tests.support import REPO_ROOT, free_port
from tests.support.profiles import export_cookies_txt
from tests.support.standin.server import StandinServer

DEMO_DIR = REPO_ROOT / ".demo"
DEMO_KEY = "demo-key-change-me"


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def show(response: httpx.Response) -> None:
    session_header = response.headers.get("X-Session-Id")
    suffix = f"  (X-Session-Id: {session_header})" if session_header else ""
    print(f"{response.request.method} {response.request.url.path} -> {response.status_code}{suffix}")
    print(json.dumps(response.json(), indent=2))


def drive(cdp_url: str, account_info_url: str) -> None:
    """What a client does with a session: attach, use the logged-in context, leave it running."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(cdp_url)
        context = browser.contexts[0]
        page = context.new_page()
        page.goto(account_info_url)
        account = json.loads(page.inner_text("body"))
        print(f"attached: {len(context.pages)} pages; the account lookup says {account['message']}:")
        print(f"  username={account['data'].get('username')} user_id={account['data'].get('user_id_str')}")
        page.close()
        browser.close()  # disconnects this client; the session stays live until DELETE


def device(info: httpx.Response) -> str:
    """What a page of the session sees of its device."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.connect_over_cdp(info.json()["cdp_url"])
        page = browser.contexts[0].pages[0]
        seen = page.evaluate(
            "() => [navigator.userAgent.split(') ')[0] + ')', `${screen.width}x${screen.height}`,"
            " navigator.hardwareConcurrency + ' cores', navigator.languages.join(','),"
            " Intl.DateTimeFormat().resolvedOptions().timeZone].join(' | ')"
        )
        browser.close()
    return seen


def wait_for_health(base_url: str, service: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise SystemExit(f"the service exited with {service.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("the service did not become healthy within 30 s")


def main() -> None:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    with StandinServer() as site:
        step(f"TikTok stand-in running at {site.url}")
        port = free_port()
        env = {
            **os.environ,
            "USER_DATA_DIR": str(DEMO_DIR / "user_data"),
            "TIKTOK_URL": site.url,
            "API_KEYS": DEMO_KEY,
            "PORT": str(port),
        }

        step("Two accounts: `demo` (log in, export cookies.txt, import it) and `spare` (never logged in)")
        cli = [sys.executable, "-m", "app.cli"]
        cookies_file = DEMO_DIR / "cookies.txt"
        export_cookies_txt(site.url_for("__standin/login?user=demo"), cookies_file)
        subprocess.run(
            [*cli, "accounts", "create", "demo", "--timezone", "Europe/Berlin"], env=env, check=True
        )
        subprocess.run(
            [*cli, "profile", "import-cookies", "--account", "demo", str(cookies_file)], env=env, check=True
        )
        subprocess.run([*cli, "accounts", "create", "spare"], env=env, check=True)
        subprocess.run([*cli, "accounts", "list"], env=env, check=True)

        step(f"Starting the service on port {port}")
        base_url = f"http://127.0.0.1:{port}"
        service = subprocess.Popen([sys.executable, "-m", "app"], env=env, cwd=REPO_ROOT)
        try:
            wait_for_health(base_url, service)
            with httpx.Client(base_url=base_url, headers={"X-API-Key": DEMO_KEY}, timeout=60) as client:
                step("The accounts")
                show(client.get("/tiktok/accounts"))

                step("Creating a session of any account that can serve (clone, launch, prove the login)")
                started = time.monotonic()
                created = client.post("/tiktok/session")
                print(f"took {time.monotonic() - started:.2f} s")
                show(created)
                if created.status_code != 200:
                    raise SystemExit("the demo session was not created")
                session_id = created.json()["session_id"]

                step("Showing it")
                info = client.get(f"/tiktok/session/{session_id}")
                show(info)
                show(client.get("/tiktok/sessions"))

                step("Driving it over CDP (Playwright connect_over_cdp through the service's relay)")
                drive(info.json()["cdp_url"], site.url_for("passport/web/account/info/?aid=1988"))
                print(f"live view for a person: {info.json()['view_url']}")

                step("Ending it")
                show(client.delete(f"/tiktok/session/{session_id}"))
                show(client.get(f"/tiktok/session/{session_id}"))
                left = list((DEMO_DIR / "user_data" / "clones").iterdir())
                print(f"clones left on disk: {len(left)}")

                step("Two sessions of account `demo`: the same device, as a person's own laptop")
                for _ in range(2):
                    created = client.post("/tiktok/session", json={"account": "demo"})
                    session_id = created.json()["session_id"]
                    print(f"session {session_id[:8]}: {device(client.get(f'/tiktok/session/{session_id}'))}")
                    client.delete(f"/tiktok/session/{session_id}")
                step("Account `spare` is not logged in: an honest 409")
                show(client.post("/tiktok/session", json={"account": "spare"}))
                show(client.get("/tiktok/accounts/demo"))
        finally:
            service.terminate()
            service.wait(timeout=15)
    step("Done")


if __name__ == "__main__":
    main()
