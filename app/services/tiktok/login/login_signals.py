"""What each login signal says, and the one pure rule that turns signals into a decision.

Collectors (in `login_detection`) drive the page and produce `Signal`s; `decide()` never touches a page,
so every combination of signals, contradictions included, is table-tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.schemas.tiktok import TikTokLoginState


class Verdict(StrEnum):
    LOGGED_IN = "logged_in"
    LOGGED_OUT = "logged_out"
    WALL = "wall"  # captcha, 403/429, ban notice, empty page: the page cannot tell us anything
    NONE = "none"  # the signal was looked at and said nothing conclusive


class Source(StrEnum):
    COOKIES = "cookies"
    ACCOUNT_API = "account_api"
    REHYDRATION = "rehydration"
    REDIRECT = "redirect"
    HEADER = "header"
    WALLS = "walls"


# The API's enum, used by detection as it is: one login-state type from the page to the client.
LoginState = TikTokLoginState


# The account lookup's error name for a session the server has ended.
SESSION_EXPIRED = "session_expired"


@dataclass(frozen=True)
class Signal:
    source: Source
    verdict: Verdict
    evidence: str = ""  # short text for people (logs, error details); decide() never reads it
    # Machine-readable detail decide() may use: the account lookup's error name (`session_expired`, …).
    reason: str | None = None
    # The logged-in user's name when the signal shows it (account lookup, rehydration); never decides.
    username: str | None = None


@dataclass(frozen=True)
class Decision:
    state: LoginState
    method: str
    conclusive: bool


PENDING = Decision(LoginState.UNCERTAIN, "pending", conclusive=False)


def decide(signals: Iterable[Signal]) -> Decision:
    """Turn what has been seen so far into a decision; `conclusive=False` means keep looking.

    A wrong "logged in" is the worst outcome (SPEC §4, "What counts as proof"):
    - any wall → uncertain; no session cookie → logged out, without the page;
    - everything read from the page counts only once the wall check found the page clear (a captcha or
      ban page shows no user either);
    - a logged-out answer from the lookup (`session_expired`), the rehydration data or a redirect to the
      login page ends detection at once. Another lookup error is logged out too, unless the page shows
      a user: that contradiction is uncertain;
    - logged in needs the account lookup's user, or, when the lookup gave no answer at all after its
      retry, the rehydration user. Either waits until the page's own logged-out witnesses
      (rehydration, redirect) have reported, so arrival order cannot turn a logged-out page into a
      login;
    - the header never proves a login. Its login button breaks the tie only when every other source
      reported nothing.
    """
    seen = _latest(signals)

    walls = [s for s in seen.values() if s.verdict is Verdict.WALL]
    if walls:
        return Decision(LoginState.UNCERTAIN, walls[0].source.value, conclusive=True)
    if _says(seen, Source.COOKIES, Verdict.LOGGED_OUT):
        return _final(LoginState.LOGGED_OUT, Source.COOKIES)
    if Source.WALLS not in seen:
        return PENDING

    lookup = seen.get(Source.ACCOUNT_API)
    lookup_out = lookup is not None and lookup.verdict is Verdict.LOGGED_OUT
    if lookup_out and lookup.reason == SESSION_EXPIRED:
        return _final(LoginState.LOGGED_OUT, Source.ACCOUNT_API)
    page_out = [src for src in (Source.REHYDRATION, Source.REDIRECT) if _says(seen, src, Verdict.LOGGED_OUT)]
    if page_out:
        return _final(LoginState.LOGGED_OUT, Source.ACCOUNT_API if lookup_out else page_out[0])
    if lookup_out:
        return _lookup_error(seen)

    page_reported = Source.REHYDRATION in seen and Source.REDIRECT in seen
    if lookup is None or not page_reported:
        return PENDING
    if lookup.verdict is Verdict.LOGGED_IN:
        return _final(LoginState.LOGGED_IN, Source.ACCOUNT_API)
    # The lookup gave no answer at all: only now may the rehydration user stand in for it.
    if _says(seen, Source.REHYDRATION, Verdict.LOGGED_IN):
        return _final(LoginState.LOGGED_IN, Source.REHYDRATION)
    if _says(seen, Source.HEADER, Verdict.LOGGED_OUT):
        return _final(LoginState.LOGGED_OUT, Source.HEADER)
    return PENDING


def _lookup_error(seen: dict[Source, Signal]) -> Decision:
    """A lookup error other than `session_expired`: logged out, unless a user on the page contradicts it.

    The page's word is needed before answering, so it waits for the rehydration data and the header.
    """
    for witness in (Source.REHYDRATION, Source.HEADER):
        if _says(seen, witness, Verdict.LOGGED_IN):
            conflict = f"conflict:{witness.value}/{Source.ACCOUNT_API.value}"
            return Decision(LoginState.UNCERTAIN, conflict, conclusive=False)
    if Source.REHYDRATION in seen and Source.HEADER in seen:
        return _final(LoginState.LOGGED_OUT, Source.ACCOUNT_API)
    return PENDING


def _latest(signals: Iterable[Signal]) -> dict[Source, Signal]:
    """The last word of each source (e.g. a JS redirect to /login after the first load looked fine).

    Except that the lookup's "no answer" never erases an answer the lookup gave before (the page's own
    call, read from its response): "no answer" must mean the lookup said nothing at all.
    """
    seen: dict[Source, Signal] = {}
    for signal in signals:
        earlier = seen.get(signal.source)
        if (
            signal.source is Source.ACCOUNT_API
            and signal.verdict is Verdict.NONE
            and earlier is not None
            and earlier.verdict is not Verdict.NONE
        ):
            continue
        seen[signal.source] = signal
    return seen


def _says(seen: dict[Source, Signal], source: Source, verdict: Verdict) -> bool:
    signal = seen.get(source)
    return signal is not None and signal.verdict is verdict


def _final(state: LoginState, source: Source) -> Decision:
    return Decision(state, source.value, conclusive=True)
