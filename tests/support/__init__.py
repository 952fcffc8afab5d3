"""Everything the tests (and the bench and the demo scripts) run the service against.

`harness` runs the app in-process, `service_process` as `python -m app`; `standin` is the local
TikTok site; `profiles` builds master profiles with it; `holders`, `redis_server`, `processes` and
`playwright_client` are the other real processes a test needs beside the service.
"""

from __future__ import annotations

import socket
from pathlib import Path

# The working directory of every `python -m tests.support…` child, so the package resolves there.
REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
