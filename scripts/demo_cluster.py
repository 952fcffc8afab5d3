"""`make demo-cluster`: two instances sharing one Redis (SPEC §10), on loopback, against the stand-in.

Starts the stand-in site and a Redis server of its own (no persistence), gives each instance its own
master (the same cookie export imported on each, as in production), starts instances A and B, creates
a session on A, then lists it, drives it over CDP and ends it through B.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from scripts.demo import DEMO_KEY, drive, show, step, wait_for_health
from tests.support import REPO_ROOT, free_port
from tests.support.profiles import export_cookies_txt
from tests.support.standin.server import StandinServer

DEMO_DIR = REPO_ROOT / ".demo" / "cluster"


def start_redis(port: int) -> subprocess.Popen[bytes]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit("redis-server is missing: `make install` installs Debian's redis-server")
    server = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=1).ping():
                return server
        except redis.RedisError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("redis-server did not start within 10 s")


def main() -> None:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    processes: list[subprocess.Popen[bytes]] = []
    with StandinServer() as site:
        step(f"TikTok stand-in running at {site.url}")
        redis_port = free_port()
        processes.append(start_redis(redis_port))
        print(f"redis-server on 127.0.0.1:{redis_port}")

        cookies_file = DEMO_DIR / "cookies.txt"
        export_cookies_txt(site.url_for("__standin/login?user=demo"), cookies_file)
        instances: dict[str, tuple[str, Path]] = {}
        try:
            for name in ("A", "B"):
                port = free_port()
                base_url = f"http://127.0.0.1:{port}"
                user_data = DEMO_DIR / f"user_data_{name.lower()}"
                env = {
                    **os.environ,
                    "USER_DATA_DIR": str(user_data),
                    "TIKTOK_URL": site.url,
                    "API_KEYS": DEMO_KEY,
                    "PORT": str(port),
                    "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                    "INSTANCE_URL": base_url,
                    "CLUSTER_MAX_SESSIONS": "4",
                }
                step(f"Instance {name}: importing the same cookie export into its own master")
                subprocess.run(
                    [sys.executable, "-m", "app.cli", "profile", "import-cookies", str(cookies_file)],
                    env=env,
                    check=True,
                )
                processes.append(subprocess.Popen([sys.executable, "-m", "app"], env=env, cwd=REPO_ROOT))
                wait_for_health(base_url, processes[-1])
                print(f"instance {name} listening at {base_url}")
                instances[name] = (base_url, user_data)

            (a_url, a_data), (b_url, _) = instances["A"], instances["B"]
            headers = {"X-API-Key": DEMO_KEY}
            with (
                httpx.Client(base_url=a_url, headers=headers, timeout=60) as a,
                httpx.Client(base_url=b_url, headers=headers, timeout=60) as b,
            ):
                step("Creating a session on A")
                created = a.post("/tiktok/session")
                if created.status_code == 429:
                    # A new Redis looks like one that lost its data: the cluster's first REGISTRY_TTL
                    # seconds grant no session (SPEC §10). A client waits as Retry-After says.
                    show(created)
                    time.sleep(int(created.headers["Retry-After"]))
                    created = a.post("/tiktok/session")
                show(created)
                if created.status_code != 200:
                    raise SystemExit("the demo session was not created")
                session_id = created.json()["session_id"]

                step("Listing the cluster's sessions on B (A owns the session)")
                show(b.get("/tiktok/sessions"))
                info = b.get(f"/tiktok/session/{session_id}").json()

                step("Driving it over CDP through B (B relays to A's relay, byte for byte)")
                print(f"cdp_url from B: {info['cdp_url'].split('?')[0]}?token=…")
                drive(info["cdp_url"], site.url_for("passport/web/account/info/?aid=1988"))

                step("Ending it through B (forwarded to A, which closes the browser and deletes the clone)")
                show(b.delete(f"/tiktok/session/{session_id}"))
                show(a.get(f"/tiktok/session/{session_id}"))
                left = list((a_data / "clones").iterdir())
                listed = b.get("/tiktok/sessions").json()["sessions"]
                print(f"clones left on A: {len(left)}; sessions listed on B: {json.dumps(listed)}")
        finally:
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                process.wait(timeout=15)
    step("Done")


if __name__ == "__main__":
    main()
