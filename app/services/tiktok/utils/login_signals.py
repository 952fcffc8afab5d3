"""What each login signal says, and the one pure rule that turns signals into a decision.

Collectors (in `login_detection`) drive the page and produce `Signal`s; `decide()` never touches a page,
so every combination of signals, contradictions included, is table-tested.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


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


class LoginState(StrEnum):
    LOGGED_IN = "logged_in"
    LOGGED_OUT = "logged_out"
    UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class Signal:
    source: Source
    verdict: Verdict
    evidence: str = ""


@dataclass(frozen=True)
class Decision:
    state: LoginState
    method: str
    conclusive: bool


# Signals that may decide alone, strongest first. The header is only a tie-breaker: it renders late
# and its layout is A/B tested, so it speaks only after every one of these has had its say.
PAGE_SOURCES = (Source.ACCOUNT_API, Source.REHYDRATION, Source.REDIRECT)

PENDING = Decision(LoginState.UNCERTAIN, "pending", conclusive=False)


def decide(signals: Iterable[Signal]) -> Decision:
    """Turn what has been seen so far into a decision; `conclusive=False` means keep looking.

    A later signal from the same source replaces an earlier one (e.g. a JS redirect to /login after
    the first load looked fine). A wrong "logged in" is the worst outcome, so logged-in needs a
    positive strong signal, no contradiction, and a wall check that found the page clear; a page
    saying "logged out" also needs that check, since walls must end as uncertain.
    """
    by_source: dict[Source, Signal] = {}
    for signal in signals:
        by_source[signal.source] = signal

    walls = [s for s in by_source.values() if s.verdict is Verdict.WALL]
    if walls:
        return Decision(LoginState.UNCERTAIN, walls[0].source.value, conclusive=True)

    cookies = by_source.get(Source.COOKIES)
    if cookies is not None and cookies.verdict is Verdict.LOGGED_OUT:
        return Decision(LoginState.LOGGED_OUT, Source.COOKIES.value, conclusive=True)

    strong = [by_source[source] for source in PAGE_SOURCES if source in by_source]
    says_in = [s for s in strong if s.verdict is Verdict.LOGGED_IN]
    says_out = [s for s in strong if s.verdict is Verdict.LOGGED_OUT]
    if says_in and says_out:
        conflict = f"conflict:{says_in[0].source.value}/{says_out[0].source.value}"
        return Decision(LoginState.UNCERTAIN, conflict, conclusive=False)
    # A ban notice or captcha page also lacks a user: what the page says counts only once the
    # wall check has found the page clear.
    page_clear = Source.WALLS in by_source
    if says_out:
        if page_clear:
            return Decision(LoginState.LOGGED_OUT, says_out[0].source.value, conclusive=True)
        return PENDING
    if says_in:
        if page_clear:
            return Decision(LoginState.LOGGED_IN, says_in[0].source.value, conclusive=True)
        return PENDING

    every_strong_source_silent = len(strong) == len(PAGE_SOURCES)
    header = by_source.get(Source.HEADER)
    if header is None or not every_strong_source_silent:
        return PENDING
    if header.verdict is Verdict.LOGGED_OUT and page_clear:
        return Decision(LoginState.LOGGED_OUT, Source.HEADER.value, conclusive=True)
    # A logged-in header alone is accepted only with a session cookie present (a server-side
    # revocation also flips the header to the login button) and a clear page.
    if header.verdict is Verdict.LOGGED_IN and cookies is not None and page_clear:
        return Decision(LoginState.LOGGED_IN, Source.HEADER.value, conclusive=True)
    return PENDING
