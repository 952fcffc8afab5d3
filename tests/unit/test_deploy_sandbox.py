"""deploy/: the pod gets exactly what each browser's sandbox needs (SPEC §11), and the seccomp profile
shipped beside the manifests says so.

Offline checks of the files, plus (where runc and root are at hand) the profile tried for real: bubblewrap
and Chromium's own sandbox in a container shaped like the pod, and the same container without each of
the two things the pod is given (the sandbox's system calls, an unmasked /proc) refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROFILE = DEPLOY / "seccomp" / "tiktok-sessions.json"

# What bubblewrap needs beyond the runtime default (which keeps these for CAP_SYS_ADMIN): new namespaces
# (clone and unshare with CLONE_NEW*), and the mounts that build the browser's view of the system.
# Chromium's own sandbox nests namespaces (clone) and chroots its renderers into an empty directory.
SANDBOX_CALLS = {"clone", "clone3", "unshare", "mount", "umount2", "pivot_root", "chroot"}
# Refused by the runtime default for a container without capabilities, and needed by no part of the
# service: none of them may be allowed. (`setns` too: neither bubblewrap nor Chromium joins a namespace.)
NEVER_ALLOWED = {
    "setns",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "swapon",
    "swapoff",
    "acct",
    "settimeofday",
    "clock_settime",
    "adjtimex",
    "open_by_handle_at",
    "iopl",
    "ioperm",
    "syslog",
    "quotactl",
    "lookup_dcookie",
    "vhangup",
    "sethostname",
    "setdomainname",
    "fsopen",
    "fsconfig",
    "fsmount",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "io_uring_setup",
}
ACTIONS = {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"}
OPERATORS = {"SCMP_CMP_NE", "SCMP_CMP_EQ", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GE", "SCMP_CMP_GT"}
OPERATORS |= {"SCMP_CMP_MASKED_EQ"}
AF_VSOCK = 40


def profile() -> dict[str, Any]:
    return json.loads(PROFILE.read_text())


def allow_rules(seccomp: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"]


def unconditionally_allowed(seccomp: dict[str, Any]) -> set[str]:
    """Calls allowed whatever their arguments, the capabilities and the architecture."""
    return {
        name
        for rule in allow_rules(seccomp)
        if not rule.get("args") and not rule.get("includes") and not rule.get("excludes")
        for name in rule["names"]
    }


def statefulset() -> dict[str, Any]:
    (found,) = [
        doc
        for doc in yaml.safe_load_all((DEPLOY / "statefulset.yaml").read_text())
        if doc and doc["kind"] == "StatefulSet"
    ]
    return found


def pod() -> dict[str, Any]:
    return statefulset()["spec"]["template"]


def service_container() -> dict[str, Any]:
    (container,) = pod()["spec"]["containers"]
    return container


# --- the profile file --------------------------------------------------------------------------------


def test_the_profile_is_a_runtime_seccomp_profile_that_refuses_by_default() -> None:
    seccomp = profile()
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO"
    assert seccomp["defaultErrnoRet"] == 1  # EPERM, as the runtime default
    architectures = {entry["architecture"] for entry in seccomp["archMap"]}
    assert architectures == {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"}
    for rule in seccomp["syscalls"]:
        assert rule["action"] in ACTIONS
        assert rule["names"] and all(re.fullmatch(r"[a-z0-9_]+", name) for name in rule["names"])
        for argument in rule.get("args", []):
            assert argument["op"] in OPERATORS and isinstance(argument["value"], int)
        assert set(rule) <= {"comment", "names", "action", "args", "errnoRet", "includes", "excludes"}


def test_the_profile_allows_every_call_of_the_sandbox_whatever_its_flags() -> None:
    missing = SANDBOX_CALLS - unconditionally_allowed(profile())
    assert missing == set()


def test_the_profile_allows_nothing_the_runtime_default_refuses_a_container_without_capabilities() -> None:
    allowed = {name for rule in allow_rules(profile()) for name in rule["names"]}
    assert allowed & NEVER_ALLOWED == set()


def test_sockets_are_allowed_except_vsock_as_in_the_runtime_default() -> None:
    (rule,) = [rule for rule in allow_rules(profile()) if "socket" in rule["names"]]
    assert rule["names"] == ["socket"]
    assert rule["args"] == [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]


def test_the_plain_calls_of_a_python_service_and_a_browser_are_allowed() -> None:
    everyday = {"read", "write", "openat", "close", "mmap", "futex", "epoll_wait", "execve", "wait4"}
    everyday |= {"connect", "accept4", "sendmsg", "recvmsg", "clone3", "prctl", "seccomp", "getrandom"}
    assert everyday - unconditionally_allowed(profile()) == set()


# --- the pod ----------------------------------------------------------------------------------------


def test_the_pod_uses_the_shipped_profile_by_its_file_name() -> None:
    seccomp = pod()["spec"]["securityContext"]["seccompProfile"]
    assert seccomp == {"type": "Localhost", "localhostProfile": PROFILE.name}
    # Nothing in a container may widen what the pod's profile allows.
    assert "seccompProfile" not in service_container().get("securityContext", {})


def test_the_pod_is_not_privileged_and_adds_no_capability() -> None:
    spec = pod()["spec"]
    for host_namespace in ("hostPID", "hostIPC", "hostNetwork"):
        assert not spec.get(host_namespace)
    context = service_container()["securityContext"]
    assert not context.get("privileged")
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0


def test_the_pod_gets_its_own_user_namespace_and_an_unmasked_proc() -> None:
    # Kubernetes allows an unmasked /proc only to a pod in a user namespace of its own.
    assert pod()["spec"]["hostUsers"] is False
    assert service_container()["securityContext"]["procMount"] == "Unmasked"


def test_apparmor_is_lifted_for_the_service_container_alone() -> None:
    annotations = pod()["metadata"]["annotations"]
    apparmor = {key: value for key, value in annotations.items() if "apparmor" in key}
    assert apparmor == {"container.apparmor.security.beta.kubernetes.io/service": "unconfined"}


def test_the_image_installs_the_sandbox_tools_and_runs_as_the_pods_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    installed = re.search(r"apt-get install[^&]*", dockerfile)
    assert installed is not None
    for package in ("chromium", "bubblewrap", "socat", "util-linux"):
        assert re.search(rf"\b{package}\b", installed.group(0)), package
    users = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert users == [str(pod()["spec"]["securityContext"]["runAsUser"])]


# --- the profile tried for real: runc, a container shaped like the pod --------------------------------

NEEDS_RUNC = pytest.mark.skipif(
    shutil.which("runc") is None or shutil.which("bwrap") is None or os.geteuid() != 0,
    reason="needs runc, bubblewrap and root (apt-get install runc bubblewrap)",
)
POD_UID = 10001
BWRAP = (
    "bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr --symlink usr/bin /bin "
    "--symlink usr/lib /lib --symlink usr/lib64 /lib64 --ro-bind /etc /etc --proc /proc --dev /dev "
    "--tmpfs /tmp --setenv HOME /tmp -- "
)


def oci_seccomp(docker_format: dict[str, Any]) -> dict[str, Any]:
    """The profile as the runtime hands it to runc: the x86-64 rules, for a process without capabilities."""
    rules = []
    for rule in docker_format["syscalls"]:
        includes, excludes = rule.get("includes", {}), rule.get("excludes", {})
        if includes.get("caps") or "amd64" not in includes.get("arches", ["amd64"]):
            continue
        if "amd64" in excludes.get("arches", []):
            continue
        rules.append({key: rule[key] for key in ("names", "action", "args", "errnoRet") if key in rule})
    return {
        "defaultAction": docker_format["defaultAction"],
        "defaultErrnoRet": docker_format["defaultErrnoRet"],
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": rules,
    }


@pytest.fixture
def container() -> Iterator[Any]:
    """run(command, seccomp, masked_proc) → CompletedProcess: one runc container like the pod (uid 10001,
    no capabilities, no_new_privs, its own user namespace, a read-only system)."""
    # Not under pytest's tmp_path: the container's root (an unprivileged id of the host) must reach it.
    work = Path(tempfile.mkdtemp(prefix="tss-runc-"))
    work.chmod(0o755)
    names: list[str] = []

    def run(command: str, seccomp: dict[str, Any], masked_proc: bool) -> subprocess.CompletedProcess[str]:
        bundle = work / uuid.uuid4().hex[:8]
        rootfs = bundle / "rootfs"
        for folder in ("usr", "etc", "proc", "dev", "sys", "tmp", "var/cache/fontconfig"):
            (rootfs / folder).mkdir(parents=True)
        for link in ("bin", "lib", "lib64", "sbin"):
            (rootfs / link).symlink_to(f"usr/{link}")
        config = pod_like_config(seccomp, masked_proc)
        config["root"] = {"path": str(rootfs), "readonly": True}
        config["process"]["args"] = ["/bin/sh", "-c", command]
        (bundle / "config.json").write_text(json.dumps(config))
        name = f"tss-{bundle.name}"
        names.append(name)
        return subprocess.run(
            ["runc", "run", "--bundle", str(bundle), name], capture_output=True, text=True, timeout=60
        )

    yield run
    for name in names:
        subprocess.run(["runc", "delete", "--force", name], capture_output=True, check=False)
    shutil.rmtree(work, ignore_errors=True)


def pod_like_config(seccomp: dict[str, Any], masked_proc: bool) -> dict[str, Any]:
    bind = ["rbind", "ro", "nosuid", "nodev"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": POD_UID, "gid": POD_UID},
            "args": [],
            "env": ["PATH=/usr/bin:/bin", "HOME=/tmp"],
            "cwd": "/tmp",
            "capabilities": {"bounding": [], "effective": [], "permitted": [], "ambient": []},
            "noNewPrivileges": True,
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev"]},
            {"destination": "/sys", "type": "bind", "source": "/sys", "options": bind},
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": bind},
            {"destination": "/etc", "type": "bind", "source": "/etc", "options": bind},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]},
            {
                "destination": "/var/cache/fontconfig",
                "type": "bind",
                "source": "/var/cache/fontconfig",
                "options": bind,
            },
        ],
        "linux": {
            # hostUsers: false — the pod's ids are unprivileged ids of the host.
            "uidMappings": [{"containerID": 0, "hostID": 300000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 300000, "size": 65536}],
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user", "network")],
            "maskedPaths": (
                ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"] if masked_proc else []
            ),
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus"] if masked_proc else [],
            "seccomp": seccomp,
        },
    }


def without(seccomp: dict[str, Any], calls: set[str]) -> dict[str, Any]:
    trimmed = json.loads(json.dumps(seccomp))
    for rule in trimmed["syscalls"]:
        rule["names"] = [name for name in rule["names"] if name not in calls]
    trimmed["syscalls"] = [rule for rule in trimmed["syscalls"] if rule["names"]]
    return trimmed


@NEEDS_RUNC
def test_in_a_pod_like_container_bubblewrap_and_chromiums_own_sandbox_start(container: Any) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    result = container(
        BWRAP + f"{chromium} --headless --disable-gpu --dump-dom 'data:text/html,<p>inside</p>' 2>/dev/null",
        oci_seccomp(profile()),
        masked_proc=False,
    )
    assert result.returncode == 0, result.stderr
    assert "<p>inside</p>" in result.stdout


@NEEDS_RUNC
def test_without_chroot_chromiums_own_sandbox_cannot_start(container: Any) -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    result = container(
        BWRAP + f"{chromium} --headless --disable-gpu --dump-dom 'data:text/html,<p>inside</p>' 2>/dev/null",
        oci_seccomp(without(profile(), {"chroot"})),
        masked_proc=False,
    )
    assert "<p>inside</p>" not in result.stdout


@NEEDS_RUNC
def test_without_the_sandbox_calls_bubblewrap_cannot_start(container: Any) -> None:
    result = container(BWRAP + "true", oci_seccomp(without(profile(), SANDBOX_CALLS)), masked_proc=False)
    assert result.returncode != 0
    assert "bwrap" in result.stderr


@NEEDS_RUNC
def test_with_a_masked_proc_bubblewrap_cannot_mount_the_browsers_own(container: Any) -> None:
    result = container(BWRAP + "true", oci_seccomp(profile()), masked_proc=True)
    assert result.returncode != 0
    assert "Can't mount proc" in result.stderr
