"""An account's device (SPEC §12): made once, kept in `identity.json`, shown by every session of it.

TikTok ties a login to its device; a new device per session is a tell. So the fingerprint (screen and
window, hardware, WebGL, codecs, fonts), the locale, the time zone and the proxy are drawn or chosen
when the account is first used and then kept across sessions and restarts, warm or cold, until
`accounts rotate-identity` makes a new one. The User-Agent's version is not stored: it is the browser's
own (`fingerprint.user_agent_for`), so it follows Chromium's updates as a person's browser does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from browserforge.fingerprints import Fingerprint
from browserforge.fingerprints.generator import NavigatorFingerprint, ScreenFingerprint, VideoCard
from pydantic import SecretStr

from app.core.redaction import redact_proxy

IDENTITY_VERSION = 1


def host_timezone() -> str:
    """The machine's IANA time zone name (a steady default for a new account), UTC when unknown."""
    with contextlib.suppress(OSError):
        name = Path("/etc/timezone").read_text().strip()
        if name:
            return name
    with contextlib.suppress(OSError, ValueError):
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    return "UTC"


@dataclass(frozen=True)
class AccountIdentity:
    fingerprint: Fingerprint
    locale: str
    timezone: str
    proxy: SecretStr | None = None
    created_at: datetime = dataclasses.field(default_factory=lambda: datetime.now(UTC))

    @property
    def languages(self) -> list[str]:
        base = self.locale.split("-")[0]
        return [self.locale, base] if base != self.locale else [self.locale]

    def summary(self, user_agent: str | None = None) -> dict[str, Any]:
        """What `GET /tiktok/accounts` shows (no secret: the proxy is redacted)."""
        screen = self.fingerprint.screen
        card = self.fingerprint.videoCard
        return {
            "user_agent": user_agent,
            "platform": "Linux x86_64",
            "screen": f"{screen.width}x{screen.height}",
            "timezone": self.timezone,
            "locale": self.locale,
            "hardware_concurrency": self.fingerprint.navigator.hardwareConcurrency,
            "device_memory": self.fingerprint.navigator.deviceMemory,
            "webgl_renderer": card.renderer if card else None,
        }

    @property
    def redacted_proxy(self) -> str | None:
        return redact_proxy(self.proxy.get_secret_value()) if self.proxy else None

    def with_changes(self, **changes: Any) -> AccountIdentity:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": IDENTITY_VERSION,
                "created_at": self.created_at.isoformat(),
                "locale": self.locale,
                "timezone": self.timezone,
                "proxy": self.proxy.get_secret_value() if self.proxy else None,
                "fingerprint": dataclasses.asdict(self.fingerprint),
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> AccountIdentity:
        data = json.loads(text)
        raw = dict(data["fingerprint"])
        raw["screen"] = ScreenFingerprint(**raw["screen"])
        raw["navigator"] = NavigatorFingerprint(**raw["navigator"])
        raw["videoCard"] = VideoCard(**raw["videoCard"]) if raw.get("videoCard") else None
        return cls(
            fingerprint=Fingerprint(**raw),
            locale=data["locale"],
            timezone=data["timezone"],
            proxy=SecretStr(data["proxy"]) if data.get("proxy") else None,
            created_at=datetime.fromisoformat(data["created_at"]),
        )


def read_identity(path: Path) -> AccountIdentity | None:
    """The stored identity, or None when there is none yet. Blocking."""
    try:
        return AccountIdentity.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def write_identity(path: Path, identity: AccountIdentity, *, replace: bool) -> AccountIdentity:
    """Store `identity` (0600: it may hold the proxy's password). With `replace=False` a concurrent
    first use that stored one already wins, and that one is returned: one account, one device."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".identity.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(identity.to_json())
            file.flush()
            os.fsync(file.fileno())
        if replace:
            os.replace(temporary, path)
            return identity
        try:
            # link(2) fails if the name exists: exactly one first writer.
            os.link(temporary, path)
        except FileExistsError:
            stored = read_identity(path)
            assert stored is not None
            return stored
        return identity
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
