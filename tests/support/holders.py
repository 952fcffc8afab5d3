"""Another real process holding a profile lock or a clone's ownership until the test lets it go."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support import REPO_ROOT

READY_TIMEOUT = 10.0

_HOLDER = """
import asyncio, sys
from pathlib import Path
from app.services.common.profile_lock import ProfileLock
from app.services.common.user_data import Clone, UserDataLayout

async def main(what, path, clone_id=""):
    if what == "clone":
        Clone.create_sync(UserDataLayout(Path(path)), clone_id)
    else:
        await getattr(ProfileLock(Path(path)), what)(0)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)

asyncio.run(main(*sys.argv[1:]))
"""


@asynccontextmanager
async def held_by_other_process(
    what: str, path: Path, clone_id: str = ""
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`what` is `shared` or `exclusive` (path: the lock file) or `clone` (path: USER_DATA_DIR).

    The hold ends when the block ends (the process reads a line and exits) or when the test kills it.
    """
    args = [what, str(path)] + ([clone_id] if clone_id else [])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT) == b"ready\n"
        yield proc
    finally:
        if proc.returncode is None:
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), READY_TIMEOUT)
            except TimeoutError:
                proc.kill()
                await proc.wait()
