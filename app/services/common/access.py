"""What a credential may do with one session (SPEC §11): the scopes, the session's tokens, its view links.

A session has one **control token** (in `cdp_url`: CDP, screenshot, view, downloads, files, keepalive)
and any number of **view tokens** (in `view_url` and in links minted by `/view-links`: the view page and
its stream only, interactive or not, each with its own expiry). Tokens are random, compared in
constant time, and die with the session; revoking the view links kills every view token at once.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class Scope(StrEnum):
    """What a caller may do with a session, weakest first."""

    VIEW = "view"  # watch the live view
    INTERACTIVE_VIEW = "interactive_view"  # watch it and send input through it
    CONTROL = "control"  # everything: CDP, screenshot, downloads, files, keepalive, view links

    def allows(self, needed: Scope) -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {Scope.VIEW: 0, Scope.INTERACTIVE_VIEW: 1, Scope.CONTROL: 2}


@dataclass(frozen=True)
class ViewLink:
    token: str
    interactive: bool
    expires_at: datetime
    _deadline: float  # monotonic: a clock change neither extends nor cuts a link

    @property
    def scope(self) -> Scope:
        return Scope.INTERACTIVE_VIEW if self.interactive else Scope.VIEW

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._deadline


class SessionTokens:
    """The control token and the view links of one session."""

    def __init__(self, view_ttl: float) -> None:
        self.control = secrets.token_urlsafe(32)
        self._default_view_ttl = view_ttl
        self._links: list[ViewLink] = []
        # The view-only link shown in the session's info (`view_url`).
        self.view = self.mint(interactive=False, ttl=view_ttl)
        # Bumped by every revocation: open views compare it to close themselves.
        self.revocations = 0

    def mint(self, *, interactive: bool, ttl: float) -> ViewLink:
        link = ViewLink(
            token=secrets.token_urlsafe(32),
            interactive=interactive,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
            _deadline=time.monotonic() + ttl,
        )
        self._links = [existing for existing in self._links if not existing.expired] + [link]
        return link

    def revoke_views(self) -> None:
        """Every view link dies; `view_url` gets a fresh view-only token, so the info stays usable."""
        self._links = []
        self.revocations += 1
        self.view = self.mint(interactive=False, ttl=self._default_view_ttl)

    def scope_of(self, token: str | None) -> Scope | None:
        """The scope `token` grants on this session, or None."""
        if not token:
            return None
        # Bytes: compare_digest refuses non-ASCII text, and a client may send any characters.
        candidate = token.encode()
        if hmac.compare_digest(candidate, self.control.encode()):
            return Scope.CONTROL
        for link in self._links:
            if hmac.compare_digest(candidate, link.token.encode()) and not link.expired:
                return link.scope
        return None
