"""The sandbox each browser runs in (SPEC §11): one place that says what a browser can see and reach.

A browser is started by Patchright's driver through a launcher script (the "browser executable" the
driver is given) that wraps the real Chromium in bubblewrap:

- its own mount namespace: the system (`/usr`, a few files of `/etc`) read-only; the session's profile
  and its box (downloads, uploads, sockets) the only writable places; a private `/tmp`; nothing of
  `USER_DATA_DIR`, the service's code, `.env` or home;
- its own PID, IPC, UTS and network namespaces: the browser's only way out is the egress gate
  (`egress.py`) behind a unix socket, so every connection it makes is checked by the service;
- an unprivileged uid as seen from the host (when the service runs as root, `setpriv` drops to
  `SANDBOX_UID` before bubblewrap starts), and Chromium's own sandbox on, nested inside;
- an empty environment: no service setting reaches the browser.

Inside, two `socat` bridges join the browser's private loopback to the box's unix sockets: DevTools
(reachable by the service's relay alone) and the SOCKS port the browser is told to use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.services.common.browser import SANDBOX_DEVTOOLS_PORT as DEVTOOLS_PORT
from app.services.common.user_data import OwnedDir

logger = logging.getLogger(__name__)

# Inside the sandbox the browser has a loopback of its own, so fixed ports cannot collide.
SOCKS_PORT = 1080
# Where the box appears inside the sandbox: short and the same for every session.
BOX_MOUNT = Path("/session")
# Debian's Chromium reads its managed policies here.
POLICY_MOUNT = "/etc/chromium/policies/managed"
# The few files of /etc a headless or headful Chromium needs: libraries, fonts, TLS roots, time zone.
_ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "fonts",
    "ssl",
    "ca-certificates",
    "alternatives",
    "localtime",
    "mime.types",
    # Debian's /usr/bin/chromium wrapper sources every file here (and fails when the folder is missing).
    "chromium.d",
    "chromium/master_preferences",
)
PROBE_TIMEOUT = 10.0


class Isolation(StrEnum):
    SANDBOX = "sandbox"
    NONE = "none"


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be made on this machine; the message says why and how to opt out."""


class SessionBox(OwnedDir):
    """One browser's own folders: downloads, uploads, and the unix sockets joining it to the service."""

    def __init__(self, parent: Path, dir_id: str, owner_fd: int):
        super().__init__(parent, dir_id, owner_fd)
        self.downloads = self.path / "downloads"
        self.uploads = self.path / "uploads"
        self.devtools_socket = self.path / "devtools.sock"
        self.egress_socket = self.path / "egress.sock"
        # The sandbox's per-browser mounts, for bubblewrap's `--args`: beside the box, not in it, so
        # nothing inside the sandbox can change them.
        self.mounts_file = parent / f"{dir_id}.mounts"
        # Paths as the browser sees them: the box is mounted at BOX_MOUNT inside a sandbox.
        self.inside: Path = self.path

    @classmethod
    def create_sync(cls, parent: Path, dir_id: str, uid: int | None, sandboxed: bool) -> SessionBox:
        box = cls.claim_sync(parent, dir_id)
        try:
            for folder in (box.downloads, box.uploads):
                folder.mkdir(mode=0o700)
            if sandboxed:
                box.inside = BOX_MOUNT
            if uid is not None:
                # The browser's uid writes downloads and its socket; uploads stay the service's (read-only
                # inside), readable by the browser.
                os.chown(box.path, uid, uid)
                os.chown(box.downloads, uid, uid)
                os.chmod(box.uploads, 0o755)
        except BaseException:
            box.remove_sync()
            raise
        return box

    def browser_path(self, host_path: Path) -> str:
        """`<box>/uploads/a.mp4` as the browser sees it."""
        return str(self.inside / host_path.relative_to(self.path))

    def remove_sync(self) -> None:
        self.mounts_file.unlink(missing_ok=True)
        super().remove_sync()


@dataclass(frozen=True)
class Sandbox:
    """The launcher and policy files this service installed, and the uid its browsers run as."""

    launcher: Path
    policies: Path
    uid: int | None  # None: the service is not root and its browsers run as its own uid
    boxes: Path

    @classmethod
    def install(cls, state_dir: Path, boxes: Path, configured_uid: int) -> Sandbox:
        """Write the launcher and the policy file (owner-only, outside every sandbox). Blocking."""
        missing = [tool for tool in ("bwrap", "socat") if shutil.which(tool) is None]
        uid = configured_uid if os.geteuid() == 0 else None
        if uid is not None and shutil.which("setpriv") is None:
            missing.append("setpriv")
        if missing:
            raise SandboxUnavailable(
                f"{', '.join(missing)} not installed (apt-get install bubblewrap socat util-linux, "
                "or `make install`)"
            )
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        policies = state_dir / "policies"
        policies.mkdir(mode=0o755, exist_ok=True)
        _write(policies / "isolation.json", json.dumps(browser_policy(), indent=1), 0o644)
        passwd = state_dir / "passwd"
        shown_uid = uid if uid is not None else os.geteuid()
        _write(passwd, f"chromium:x:{shown_uid}:{shown_uid}:Chromium:/tmp:/usr/sbin/nologin\n", 0o644)
        group = state_dir / "group"
        _write(group, f"chromium:x:{shown_uid}:\n", 0o644)
        launcher = state_dir / "launcher.sh"
        _write(launcher, _launcher_script(uid, policies, passwd, group), 0o700)
        sandbox = cls(launcher=launcher, policies=policies, uid=uid, boxes=boxes)
        sandbox.probe()
        return sandbox

    def probe(self) -> None:
        """Run `true` in the very sandbox browsers get: user namespaces off, a seccomp filter, a missing
        tool all show here, once at start, instead of as a failed session."""
        box_parent = self.boxes
        box = SessionBox.create_sync(box_parent, "probe-" + os.urandom(4).hex(), self.uid, sandboxed=True)
        try:
            env = self.launch_env(box, box.downloads, Path("/bin/true")) | {"TSS_PROBE": "1"}
            result = subprocess.run(
                [str(self.launcher)],
                env=env,
                capture_output=True,
                timeout=PROBE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SandboxUnavailable("bubblewrap did not start within 10 s") from None
        finally:
            box.remove_sync()
        if result.returncode != 0:
            reason = result.stderr.decode(errors="replace").strip().splitlines()
            raise SandboxUnavailable(
                f"bubblewrap cannot make the sandbox here ({reason[-1] if reason else result.returncode}); "
                "user namespaces may be off (sysctl kernel.unprivileged_userns_clone=1) or forbidden by "
                "the container's seccomp profile"
            )

    def launch_env(self, box: SessionBox, profile_dir: Path, browser: Path) -> dict[str, str]:
        """The launcher's whole environment (the browser inside gets none of it). Writes the browser's
        own mounts: its profile at its own path (Playwright names it on the command line), its box."""
        profile = profile_dir.resolve()
        mounts: list[str] = []
        real = browser.resolve()
        if not real.is_relative_to("/usr"):
            # A Chrome under /opt, say: its folder, read-only, before the profile (which may lie below it).
            mounts += _passable_parents(real.parent) + ["--ro-bind", str(real.parent), str(real.parent)]
        mounts += ["--setenv", "TSS_BROWSER", str(real)]
        mounts += _passable_parents(profile)
        mounts += ["--bind", str(profile), str(profile), "--bind", str(box.path), str(BOX_MOUNT)]
        mounts += ["--ro-bind", str(box.uploads), str(BOX_MOUNT / "uploads")]
        display = os.environ.get("DISPLAY", "")
        if display and Path("/tmp/.X11-unix").is_dir():
            # The network namespace hides X's abstract socket: the file socket is the way to the screen.
            mounts += ["--ro-bind", "/tmp/.X11-unix", "/tmp/.X11-unix", "--setenv", "DISPLAY", display]
        _write(box.mounts_file, "".join(f"{part}\0" for part in mounts), 0o600)
        return {"PATH": "/usr/bin:/bin", "TSS_MOUNTS": str(box.mounts_file)}

    def adopt_sync(self, profile_dir: Path) -> None:
        """Hand the profile to the browser's uid: it is the one writable profile inside. Blocking."""
        if self.uid is None:
            return
        uid = self.uid
        os.chown(profile_dir, uid, uid)
        for root, dirs, files in os.walk(profile_dir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)

    async def adopt(self, profile_dir: Path) -> None:
        await asyncio.to_thread(self.adopt_sync, profile_dir)


def _passable_parents(path: Path) -> list[str]:
    """bubblewrap makes missing parents of a mount point root-only: the browser's uid must pass."""
    return [
        arg
        for parent in reversed(path.parents)
        if parent != Path("/")
        for arg in ("--perms", "0755", "--dir", str(parent))
    ]


def browser_policy() -> dict[str, object]:
    """Chromium's managed policy inside the sandbox: no local files, whatever the client asks.

    Addresses are refused by the egress gate, which sees every connection; `file:` never reaches it.
    """
    return {
        "URLBlocklist": ["file://*", "view-source:file://*", "filesystem:file://*"],
    }


def _launcher_script(uid: int | None, policies: Path, passwd: Path, group: Path) -> str:
    binds: list[str] = ["--ro-bind", "/usr", "/usr", "--tmpfs", "/usr/local"]
    # bubblewrap makes missing parents root-only: the browser's uid must pass through these.
    for parent in ("/etc", "/etc/chromium", "/etc/chromium/policies", "/var", "/var/cache"):
        binds += ["--perms", "0755", "--dir", parent]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            binds += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            binds += ["--ro-bind", str(path), str(path)]
    for entry in _ETC_ENTRIES:
        binds += ["--ro-bind-try", f"/etc/{entry}", f"/etc/{entry}"]
    # Without the font cache fontconfig rescans every font at each launch (+0.2 s).
    binds += ["--ro-bind-try", "/var/cache/fontconfig", "/var/cache/fontconfig"]
    if uid is not None:
        # As root, bubblewrap makes the namespaces and mounts itself (so it can open every path it binds)
        # and keeps only the right to change uid, which `setpriv` uses up at once: nothing in the sandbox
        # runs as root, and Chromium's own (user namespace) sandbox starts as the unprivileged uid.
        namespaces = "--unshare-ipc --unshare-pid --unshare-net --unshare-uts --unshare-cgroup-try"
        namespaces += " --cap-add CAP_SETUID --cap-add CAP_SETGID"
        drop = f"setpriv --reuid={uid} --regid={uid} --clear-groups --inh-caps=-all -- "
    else:
        namespaces = "--unshare-all"
        drop = ""
    inner = (
        "exec 5<&-; "
        '[ -n "$TSS_PROBE" ] && exit 0; '
        f"socat UNIX-LISTEN:{BOX_MOUNT}/devtools.sock,fork,mode=600,unlink-early "
        f"TCP4:127.0.0.1:{DEVTOOLS_PORT} & "
        f"socat TCP4-LISTEN:{SOCKS_PORT},bind=127.0.0.1,fork,reuseaddr "
        f"UNIX-CONNECT:{BOX_MOUNT}/egress.sock & "
        'exec "$TSS_BROWSER" "$@"'
    )
    return f"""#!/bin/sh
# Started by the Patchright driver as the browser: runs Chromium in its own sandbox (SPEC §11).
# Written by app/services/common/sandbox.py at start. Its environment names the file that holds the
# browser's own mounts (NUL-separated bubblewrap arguments); fd 5 is free (3 and 4 are Playwright's pipe).
set -e
exec 5<"$TSS_MOUNTS"
exec bwrap {namespaces} --die-with-parent --new-session \\
  {" ".join(shlex.quote(part) for part in binds)} \\
  --proc /proc --dev /dev --perms 1777 --tmpfs /tmp --perms 1777 --tmpfs /dev/shm \\
  --ro-bind {shlex.quote(str(policies))} {POLICY_MOUNT} \\
  --ro-bind {shlex.quote(str(passwd))} /etc/passwd --ro-bind {shlex.quote(str(group))} /etc/group \\
  --clearenv --setenv HOME /tmp --setenv PATH /usr/bin:/bin --setenv TSS_PROBE "$TSS_PROBE" \\
  --args 5 --chdir /tmp \\
  -- {drop}/bin/sh -c {shlex.quote(inner)} chromium "$@"
"""


def _write(path: Path, text: str, mode: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
