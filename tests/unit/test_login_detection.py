"""Login detection without a page: `decide()` over the signals of SPEC §4, and the pure readers.

Every expected answer below is written out from the contract ("What counts as proof"), row by row; none
is computed. The invariant tests at the end sweep every combination for the properties that must hold
whatever the table says (a wall is never logged in, the header never proves a login, ...).
"""

from __future__ import annotations

import itertools
import json

import pytest

from app.services.tiktok.login.login_signals import (
    Decision,
    LoginState,
    Signal,
    Source,
    Verdict,
    decide,
)
from app.services.tiktok.login.signal_readers import (
    guard_expiry,
    read_account_info,
    read_cookies,
    read_header,
    read_redirect,
    read_rehydration,
    read_walls,
)

IN, OUT, WALL, NONE = Verdict.LOGGED_IN, Verdict.LOGGED_OUT, Verdict.WALL, Verdict.NONE
LI, LO, UN = LoginState.LOGGED_IN, LoginState.LOGGED_OUT, LoginState.UNCERTAIN

# What each collector can report, as the readers word it.
COOKIE_PRESENT = Signal(Source.COOKIES, NONE, "session cookie present: sessionid")
NO_COOKIE = Signal(Source.COOKIES, OUT, "no session cookie")
LOOKUP_USER = Signal(Source.ACCOUNT_API, IN, "account info success")
LOOKUP_EXPIRED = Signal(
    Source.ACCOUNT_API, OUT, "account info error: session_expired", reason="session_expired"
)
LOOKUP_ERROR = Signal(Source.ACCOUNT_API, OUT, "account info error: system_busy", reason="system_busy")
LOOKUP_SILENT = Signal(Source.ACCOUNT_API, NONE, "HTTP 500, body is not JSON")  # after its one retry
LOOKUP_WALL = Signal(Source.ACCOUNT_API, WALL, "account info HTTP 429")
PAGE_USER = Signal(Source.REHYDRATION, IN, "app context has a user")
PAGE_NO_USER = Signal(Source.REHYDRATION, OUT, "app context without a user")
NO_BLOCK = Signal(Source.REHYDRATION, NONE, "no rehydration block")
AT_LOGIN = Signal(Source.REDIRECT, OUT, "landed on /login")
NOT_REDIRECTED = Signal(Source.REDIRECT, NONE, "not redirected to login")
HEADER_IN = Signal(Source.HEADER, IN, '[data-e2e="profile-icon"]')
HEADER_OUT = Signal(Source.HEADER, OUT, '[data-e2e="top-login-button"]')
HEADER_NONE = Signal(Source.HEADER, NONE, "no header element")
PAGE_CLEAR = Signal(Source.WALLS, NONE, "page clear")
CAPTCHA = Signal(Source.WALLS, WALL, "captcha: #captcha-verify")

# A visit that has seen everything and learnt nothing: what "the rest is silent" means below.
SILENT = (COOKIE_PRESENT, LOOKUP_SILENT, NO_BLOCK, NOT_REDIRECTED, HEADER_NONE, PAGE_CLEAR)


def label(signal: Signal) -> str:
    return f"{signal.source.value}={signal.verdict.value}" + (f"/{signal.reason}" if signal.reason else "")


def ident(value: object) -> str | None:
    """Test ids: signals by what they say, everything else as pytest would name it."""
    if isinstance(value, Signal):
        return label(value)
    if isinstance(value, list) and all(isinstance(item, Signal) for item in value):
        return "+".join(map(label, value))
    return None


def rest_silent(*signals: Signal) -> list[Signal]:
    """The given signals, plus the silent answer of every source they leave out (input, not expectation)."""
    given = {signal.source for signal in signals}
    return [*signals, *(silent for silent in SILENT if silent.source not in given)]


def assert_decides(signals: list[Signal], state: LoginState, method: str, conclusive: bool) -> None:
    assert decide(signals) == Decision(state, method, conclusive), [label(s) for s in signals]


# --- every signal alone ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signal", "state", "method", "conclusive"),
    [
        (COOKIE_PRESENT, UN, "pending", False),
        (NO_COOKIE, LO, "cookies", True),
        (LOOKUP_USER, UN, "pending", False),
        (LOOKUP_EXPIRED, UN, "pending", False),
        (LOOKUP_ERROR, UN, "pending", False),
        (LOOKUP_SILENT, UN, "pending", False),
        (LOOKUP_WALL, UN, "account_api", True),
        (PAGE_USER, UN, "pending", False),
        (PAGE_NO_USER, UN, "pending", False),
        (NO_BLOCK, UN, "pending", False),
        (AT_LOGIN, UN, "pending", False),
        (NOT_REDIRECTED, UN, "pending", False),
        (HEADER_IN, UN, "pending", False),
        (HEADER_OUT, UN, "pending", False),
        (HEADER_NONE, UN, "pending", False),
        (PAGE_CLEAR, UN, "pending", False),
        (CAPTCHA, UN, "walls", True),
    ],
    ids=ident,
)
def test_each_signal_alone(signal: Signal, state: LoginState, method: str, conclusive: bool) -> None:
    # Only the cookie and the walls speak before the page was checked for walls.
    assert_decides([signal], state, method, conclusive)


def test_nothing_seen_is_pending() -> None:
    assert_decides([], UN, "pending", False)


@pytest.mark.parametrize(
    ("signal", "state", "method", "conclusive"),
    [
        (COOKIE_PRESENT, UN, "pending", False),
        (NO_COOKIE, LO, "cookies", True),
        # The lookup's user: still waits for the page's own logged-out witnesses (rehydration, redirect).
        (LOOKUP_USER, UN, "pending", False),
        (LOOKUP_EXPIRED, LO, "account_api", True),
        # Another lookup error: waits for the page, which may show a user and make it uncertain.
        (LOOKUP_ERROR, UN, "pending", False),
        (LOOKUP_SILENT, UN, "pending", False),
        (LOOKUP_WALL, UN, "account_api", True),
        # A rehydration user waits for the lookup.
        (PAGE_USER, UN, "pending", False),
        (PAGE_NO_USER, LO, "rehydration", True),
        (NO_BLOCK, UN, "pending", False),
        (AT_LOGIN, LO, "redirect", True),
        (NOT_REDIRECTED, UN, "pending", False),
        (HEADER_IN, UN, "pending", False),
        (HEADER_OUT, UN, "pending", False),
        (HEADER_NONE, UN, "pending", False),
    ],
    ids=ident,
)
def test_each_signal_alone_on_a_page_found_clear(
    signal: Signal, state: LoginState, method: str, conclusive: bool
) -> None:
    assert_decides([signal, PAGE_CLEAR], state, method, conclusive)


@pytest.mark.parametrize(
    ("signal", "state", "method", "conclusive"),
    [
        (COOKIE_PRESENT, UN, "pending", False),
        (NO_COOKIE, LO, "cookies", True),
        (LOOKUP_USER, LI, "account_api", True),
        (LOOKUP_EXPIRED, LO, "account_api", True),
        (LOOKUP_ERROR, LO, "account_api", True),
        (LOOKUP_SILENT, UN, "pending", False),
        (LOOKUP_WALL, UN, "account_api", True),
        # The lookup is silent here (no answer after its retry): the rehydration user suffices.
        (PAGE_USER, LI, "rehydration", True),
        (PAGE_NO_USER, LO, "rehydration", True),
        (NO_BLOCK, UN, "pending", False),
        (AT_LOGIN, LO, "redirect", True),
        (NOT_REDIRECTED, UN, "pending", False),
        # The header never proves a login by itself; its login button breaks the tie.
        (HEADER_IN, UN, "pending", False),
        (HEADER_OUT, LO, "header", True),
        (HEADER_NONE, UN, "pending", False),
        (CAPTCHA, UN, "walls", True),
    ],
    ids=ident,
)
def test_each_signal_with_the_rest_silent(
    signal: Signal, state: LoginState, method: str, conclusive: bool
) -> None:
    assert_decides(rest_silent(signal), state, method, conclusive)


# --- each pair of contradicting signals, the rest silent ---------------------------------------------------


@pytest.mark.parametrize(
    ("says_in", "says_out", "state", "method", "conclusive"),
    [
        (LOOKUP_USER, NO_COOKIE, LO, "cookies", True),
        # A logged-out answer from any signal but the header may end detection at once: a page without a
        # user, or the login page, is never turned into a login.
        (LOOKUP_USER, PAGE_NO_USER, LO, "rehydration", True),
        (LOOKUP_USER, AT_LOGIN, LO, "redirect", True),
        (LOOKUP_USER, HEADER_OUT, LI, "account_api", True),
        (PAGE_USER, NO_COOKIE, LO, "cookies", True),
        # A server-rendered user whose session the server has ended.
        (PAGE_USER, LOOKUP_EXPIRED, LO, "account_api", True),
        (PAGE_USER, LOOKUP_ERROR, UN, "conflict:rehydration/account_api", False),
        (PAGE_USER, AT_LOGIN, LO, "redirect", True),
        # The lookup gave no answer, so the rehydration user suffices; the header only breaks ties.
        (PAGE_USER, HEADER_OUT, LI, "rehydration", True),
        (HEADER_IN, NO_COOKIE, LO, "cookies", True),
        (HEADER_IN, LOOKUP_EXPIRED, LO, "account_api", True),
        (HEADER_IN, LOOKUP_ERROR, UN, "conflict:header/account_api", False),
        (HEADER_IN, PAGE_NO_USER, LO, "rehydration", True),
        (HEADER_IN, AT_LOGIN, LO, "redirect", True),
    ],
    ids=ident,
)
def test_contradicting_pair(
    says_in: Signal, says_out: Signal, state: LoginState, method: str, conclusive: bool
) -> None:
    assert_decides(rest_silent(says_in, says_out), state, method, conclusive)
    assert_decides(rest_silent(says_out, says_in), state, method, conclusive)


@pytest.mark.parametrize(
    ("signals", "state", "method", "conclusive"),
    [
        # The same pairs before the other page signals have arrived (page checked, nothing else yet).
        ([LOOKUP_USER, PAGE_NO_USER, PAGE_CLEAR], LO, "rehydration", True),
        ([LOOKUP_USER, AT_LOGIN, PAGE_CLEAR], LO, "redirect", True),
        ([LOOKUP_USER, HEADER_OUT, PAGE_CLEAR], UN, "pending", False),
        ([PAGE_USER, LOOKUP_EXPIRED, PAGE_CLEAR], LO, "account_api", True),
        ([PAGE_USER, LOOKUP_ERROR, PAGE_CLEAR], UN, "conflict:rehydration/account_api", False),
        ([PAGE_USER, AT_LOGIN, PAGE_CLEAR], LO, "redirect", True),
        ([PAGE_USER, HEADER_OUT, PAGE_CLEAR], UN, "pending", False),
        ([HEADER_IN, LOOKUP_EXPIRED, PAGE_CLEAR], LO, "account_api", True),
        ([HEADER_IN, LOOKUP_ERROR, PAGE_CLEAR], UN, "conflict:header/account_api", False),
        ([HEADER_IN, PAGE_NO_USER, PAGE_CLEAR], LO, "rehydration", True),
        # Two logged-out answers: the strongest is named.
        ([LOOKUP_EXPIRED, PAGE_NO_USER, AT_LOGIN, PAGE_CLEAR], LO, "account_api", True),
        ([LOOKUP_ERROR, AT_LOGIN, PAGE_CLEAR], LO, "account_api", True),
        ([PAGE_NO_USER, AT_LOGIN, PAGE_CLEAR], LO, "rehydration", True),
        # A user on the page makes a lookup error uncertain, but the login page is a logged-out answer.
        ([PAGE_USER, LOOKUP_ERROR, AT_LOGIN, PAGE_CLEAR], LO, "account_api", True),
    ],
    ids=ident,
)
def test_contradictions_arriving_early(
    signals: list[Signal], state: LoginState, method: str, conclusive: bool
) -> None:
    assert_decides(signals, state, method, conclusive)


# --- walls with each signal ------------------------------------------------------------------------------

PAGE_AND_COOKIE_SIGNALS = (
    COOKIE_PRESENT,
    NO_COOKIE,
    LOOKUP_USER,
    LOOKUP_EXPIRED,
    LOOKUP_ERROR,
    LOOKUP_SILENT,
    PAGE_USER,
    PAGE_NO_USER,
    NO_BLOCK,
    AT_LOGIN,
    NOT_REDIRECTED,
    HEADER_IN,
    HEADER_OUT,
    HEADER_NONE,
)


@pytest.mark.parametrize("signal", PAGE_AND_COOKIE_SIGNALS, ids=label)
def test_a_captcha_with_any_signal_is_uncertain_by_walls(signal: Signal) -> None:
    assert_decides([signal, CAPTCHA], UN, "walls", True)
    assert_decides([CAPTCHA, signal], UN, "walls", True)
    assert_decides(rest_silent(signal, CAPTCHA), UN, "walls", True)


@pytest.mark.parametrize(
    "signal",
    (
        COOKIE_PRESENT,
        NO_COOKIE,
        PAGE_USER,
        PAGE_NO_USER,
        NO_BLOCK,
        AT_LOGIN,
        NOT_REDIRECTED,
        HEADER_IN,
        HEADER_OUT,
        HEADER_NONE,
        PAGE_CLEAR,
    ),
    ids=ident,
)
def test_an_account_lookup_wall_with_any_signal_is_uncertain_by_account_api(signal: Signal) -> None:
    assert_decides([signal, LOOKUP_WALL], UN, "account_api", True)
    assert_decides(rest_silent(signal, LOOKUP_WALL), UN, "account_api", True)


@pytest.mark.parametrize(
    ("signals", "state", "method", "conclusive"),
    [
        pytest.param(
            [COOKIE_PRESENT, LOOKUP_USER, PAGE_USER, NOT_REDIRECTED, HEADER_IN],
            UN,
            "pending",
            False,
            id="every-signal-logged-in-but-walls-not-checked",
        ),
        pytest.param(
            [COOKIE_PRESENT, LOOKUP_EXPIRED, PAGE_NO_USER, AT_LOGIN, HEADER_OUT],
            UN,
            "pending",
            False,
            id="every-page-signal-logged-out-but-walls-not-checked",
        ),
        pytest.param([NO_COOKIE], LO, "cookies", True, id="no-cookie-needs-no-walls-check"),
        pytest.param(
            [COOKIE_PRESENT, LOOKUP_USER, PAGE_USER, NOT_REDIRECTED, HEADER_IN, PAGE_CLEAR],
            LI,
            "account_api",
            True,
            id="every-signal-logged-in-and-page-clear",
        ),
        pytest.param(
            [COOKIE_PRESENT, LOOKUP_USER, PAGE_USER, NOT_REDIRECTED, HEADER_IN, CAPTCHA],
            UN,
            "walls",
            True,
            id="every-signal-logged-in-behind-a-captcha",
        ),
        pytest.param(
            # A ban page has no user either: its "no user" is not a logged-out answer.
            [COOKIE_PRESENT, LOOKUP_USER, PAGE_NO_USER, NOT_REDIRECTED, CAPTCHA],
            UN,
            "walls",
            True,
            id="ban-page-without-a-user",
        ),
        pytest.param(
            [CAPTCHA, LOOKUP_WALL], UN, "walls", True, id="captcha-then-lookup-wall-names-the-first"
        ),
        pytest.param(
            [LOOKUP_WALL, CAPTCHA], UN, "account_api", True, id="lookup-wall-then-captcha-names-the-first"
        ),
    ],
)
def test_walls_gate_every_page_answer(
    signals: list[Signal], state: LoginState, method: str, conclusive: bool
) -> None:
    assert_decides(signals, state, method, conclusive)


# --- header ties -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signals", "state", "method", "conclusive"),
    [
        pytest.param(rest_silent(HEADER_OUT), LO, "header", True, id="login-button-everything-else-silent"),
        pytest.param(rest_silent(HEADER_IN), UN, "pending", False, id="profile-icon-everything-else-silent"),
        pytest.param(rest_silent(HEADER_NONE), UN, "pending", False, id="no-header-everything-else-silent"),
        pytest.param(
            [COOKIE_PRESENT, NO_BLOCK, NOT_REDIRECTED, HEADER_OUT, PAGE_CLEAR],
            UN,
            "pending",
            False,
            id="login-button-before-the-lookup",
        ),
        pytest.param(
            [COOKIE_PRESENT, LOOKUP_SILENT, NOT_REDIRECTED, HEADER_OUT, PAGE_CLEAR],
            UN,
            "pending",
            False,
            id="login-button-before-the-rehydration",
        ),
        pytest.param(
            [COOKIE_PRESENT, LOOKUP_SILENT, NO_BLOCK, HEADER_OUT, PAGE_CLEAR],
            UN,
            "pending",
            False,
            id="login-button-before-the-redirect-check",
        ),
        pytest.param(
            [COOKIE_PRESENT, LOOKUP_SILENT, NO_BLOCK, NOT_REDIRECTED, HEADER_OUT],
            UN,
            "pending",
            False,
            id="login-button-before-the-walls-check",
        ),
        pytest.param(
            [LOOKUP_SILENT, NO_BLOCK, NOT_REDIRECTED, HEADER_OUT, PAGE_CLEAR],
            LO,
            "header",
            True,
            id="login-button-without-a-cookie-signal",
        ),
        pytest.param(
            # A session cookie proves nothing, so it does not turn the header into a proof either.
            [COOKIE_PRESENT, LOOKUP_SILENT, NO_BLOCK, NOT_REDIRECTED, HEADER_IN, PAGE_CLEAR],
            UN,
            "pending",
            False,
            id="profile-icon-with-a-session-cookie",
        ),
        pytest.param(rest_silent(HEADER_OUT, CAPTCHA), UN, "walls", True, id="login-button-behind-a-captcha"),
        pytest.param(
            rest_silent(HEADER_OUT, LOOKUP_USER),
            LI,
            "account_api",
            True,
            id="login-button-against-the-lookup",
        ),
        pytest.param(
            rest_silent(HEADER_IN, LOOKUP_USER), LI, "account_api", True, id="profile-icon-with-the-lookup"
        ),
        pytest.param(
            rest_silent(HEADER_IN, PAGE_USER), LI, "rehydration", True, id="profile-icon-with-a-page-user"
        ),
    ],
)
def test_header_only_breaks_ties(
    signals: list[Signal], state: LoginState, method: str, conclusive: bool
) -> None:
    assert_decides(signals, state, method, conclusive)


# --- rehydration × account lookup × header, on a clear page with a session cookie, not redirected ---------

REHYDRATION = {"user": PAGE_USER, "no user": PAGE_NO_USER, "no block": NO_BLOCK, "-": None}
LOOKUP = {
    "success": LOOKUP_USER,
    "session_expired": LOOKUP_EXPIRED,
    "other error": LOOKUP_ERROR,
    "no answer": LOOKUP_SILENT,
    "-": None,
}
HEADER = {"in": HEADER_IN, "out": HEADER_OUT, "none": HEADER_NONE, "-": None}
# "-" means the collector has not reported yet.
PRODUCT = [
    # rehydration, lookup, header -> state, method, conclusive
    ("user", "success", "in", LI, "account_api", True),
    ("user", "success", "out", LI, "account_api", True),
    ("user", "success", "none", LI, "account_api", True),
    ("user", "success", "-", LI, "account_api", True),
    ("user", "session_expired", "in", LO, "account_api", True),
    ("user", "session_expired", "out", LO, "account_api", True),
    ("user", "session_expired", "none", LO, "account_api", True),
    ("user", "session_expired", "-", LO, "account_api", True),
    ("user", "other error", "in", UN, "conflict:rehydration/account_api", False),
    ("user", "other error", "out", UN, "conflict:rehydration/account_api", False),
    ("user", "other error", "none", UN, "conflict:rehydration/account_api", False),
    ("user", "other error", "-", UN, "conflict:rehydration/account_api", False),
    ("user", "no answer", "in", LI, "rehydration", True),
    ("user", "no answer", "out", LI, "rehydration", True),
    ("user", "no answer", "none", LI, "rehydration", True),
    ("user", "no answer", "-", LI, "rehydration", True),
    ("user", "-", "in", UN, "pending", False),
    ("user", "-", "out", UN, "pending", False),
    ("user", "-", "none", UN, "pending", False),
    ("user", "-", "-", UN, "pending", False),
    ("no user", "success", "in", LO, "rehydration", True),
    ("no user", "success", "out", LO, "rehydration", True),
    ("no user", "success", "none", LO, "rehydration", True),
    ("no user", "success", "-", LO, "rehydration", True),
    ("no user", "session_expired", "in", LO, "account_api", True),
    ("no user", "session_expired", "out", LO, "account_api", True),
    ("no user", "session_expired", "none", LO, "account_api", True),
    ("no user", "session_expired", "-", LO, "account_api", True),
    ("no user", "other error", "in", LO, "account_api", True),
    ("no user", "other error", "out", LO, "account_api", True),
    ("no user", "other error", "none", LO, "account_api", True),
    ("no user", "other error", "-", LO, "account_api", True),
    ("no user", "no answer", "in", LO, "rehydration", True),
    ("no user", "no answer", "out", LO, "rehydration", True),
    ("no user", "no answer", "none", LO, "rehydration", True),
    ("no user", "no answer", "-", LO, "rehydration", True),
    ("no user", "-", "in", LO, "rehydration", True),
    ("no user", "-", "out", LO, "rehydration", True),
    ("no user", "-", "none", LO, "rehydration", True),
    ("no user", "-", "-", LO, "rehydration", True),
    ("no block", "success", "in", LI, "account_api", True),
    ("no block", "success", "out", LI, "account_api", True),
    ("no block", "success", "none", LI, "account_api", True),
    ("no block", "success", "-", LI, "account_api", True),
    ("no block", "session_expired", "in", LO, "account_api", True),
    ("no block", "session_expired", "out", LO, "account_api", True),
    ("no block", "session_expired", "none", LO, "account_api", True),
    ("no block", "session_expired", "-", LO, "account_api", True),
    ("no block", "other error", "in", UN, "conflict:header/account_api", False),
    ("no block", "other error", "out", LO, "account_api", True),
    ("no block", "other error", "none", LO, "account_api", True),
    ("no block", "other error", "-", UN, "pending", False),
    ("no block", "no answer", "in", UN, "pending", False),
    ("no block", "no answer", "out", LO, "header", True),
    ("no block", "no answer", "none", UN, "pending", False),
    ("no block", "no answer", "-", UN, "pending", False),
    ("no block", "-", "in", UN, "pending", False),
    ("no block", "-", "out", UN, "pending", False),
    ("no block", "-", "none", UN, "pending", False),
    ("no block", "-", "-", UN, "pending", False),
    ("-", "success", "in", UN, "pending", False),
    ("-", "success", "out", UN, "pending", False),
    ("-", "success", "none", UN, "pending", False),
    ("-", "success", "-", UN, "pending", False),
    ("-", "session_expired", "in", LO, "account_api", True),
    ("-", "session_expired", "out", LO, "account_api", True),
    ("-", "session_expired", "none", LO, "account_api", True),
    ("-", "session_expired", "-", LO, "account_api", True),
    ("-", "other error", "in", UN, "conflict:header/account_api", False),
    ("-", "other error", "out", UN, "pending", False),
    ("-", "other error", "none", UN, "pending", False),
    ("-", "other error", "-", UN, "pending", False),
    ("-", "no answer", "in", UN, "pending", False),
    ("-", "no answer", "out", UN, "pending", False),
    ("-", "no answer", "none", UN, "pending", False),
    ("-", "no answer", "-", UN, "pending", False),
    ("-", "-", "in", UN, "pending", False),
    ("-", "-", "out", UN, "pending", False),
    ("-", "-", "none", UN, "pending", False),
    ("-", "-", "-", UN, "pending", False),
]


@pytest.mark.parametrize(
    ("rehydration", "lookup", "header", "state", "method", "conclusive"),
    PRODUCT,
    ids=[f"rehydration={r}|lookup={lk}|header={h}" for r, lk, h, *_ in PRODUCT],
)
def test_rehydration_lookup_header(
    rehydration: str, lookup: str, header: str, state: LoginState, method: str, conclusive: bool
) -> None:
    given = (REHYDRATION[rehydration], LOOKUP[lookup], HEADER[header])
    signals = [COOKIE_PRESENT, NOT_REDIRECTED, PAGE_CLEAR, *(s for s in given if s is not None)]
    assert_decides(signals, state, method, conclusive)
    assert_decides(list(reversed(signals)), state, method, conclusive)


def test_the_product_table_has_every_row_once() -> None:
    rows = [(r, lk, h) for r, lk, h, *_ in PRODUCT]
    assert len(rows) == len(set(rows)) == len(REHYDRATION) * len(LOOKUP) * len(HEADER) == 80


# --- later signals, and what the lookup's "no answer" means ----------------------------------------------


@pytest.mark.parametrize(
    ("signals", "state", "method", "conclusive"),
    [
        pytest.param(
            [PAGE_CLEAR, NOT_REDIRECTED, AT_LOGIN], LO, "redirect", True, id="late-js-redirect-to-login"
        ),
        pytest.param(
            [LOOKUP_USER, PAGE_CLEAR, LOOKUP_EXPIRED], LO, "account_api", True, id="lookup-turns-expired"
        ),
        pytest.param(
            [LOOKUP_WALL, LOOKUP_USER, NO_BLOCK, NOT_REDIRECTED, PAGE_CLEAR],
            LI,
            "account_api",
            True,
            id="lookup-wall-then-answer",
        ),
        pytest.param(
            [CAPTCHA, PAGE_CLEAR, LOOKUP_USER, PAGE_USER, NOT_REDIRECTED],
            LI,
            "account_api",
            True,
            id="captcha-solved",
        ),
        pytest.param(
            [COOKIE_PRESENT, LOOKUP_USER, PAGE_USER, NOT_REDIRECTED, PAGE_CLEAR, CAPTCHA],
            UN,
            "walls",
            True,
            id="captcha-appears-later",
        ),
        pytest.param(
            # The page's own lookup was read from its response; our fetch then came back empty.
            [LOOKUP_EXPIRED, LOOKUP_SILENT, PAGE_USER, NOT_REDIRECTED, PAGE_CLEAR],
            LO,
            "account_api",
            True,
            id="silent-fetch-after-an-expired-answer",
        ),
        pytest.param(
            [LOOKUP_ERROR, LOOKUP_SILENT, PAGE_USER, NOT_REDIRECTED, HEADER_IN, PAGE_CLEAR],
            UN,
            "conflict:rehydration/account_api",
            False,
            id="silent-fetch-after-an-error-answer",
        ),
        pytest.param(
            [LOOKUP_USER, LOOKUP_SILENT, PAGE_USER, NOT_REDIRECTED, PAGE_CLEAR],
            LI,
            "account_api",
            True,
            id="silent-fetch-after-a-user-answer",
        ),
        pytest.param(
            [LOOKUP_WALL, LOOKUP_SILENT, PAGE_USER, NOT_REDIRECTED, PAGE_CLEAR],
            UN,
            "account_api",
            True,
            id="silent-fetch-after-a-wall",
        ),
        pytest.param(
            [LOOKUP_SILENT, PAGE_USER, NOT_REDIRECTED, PAGE_CLEAR, LOOKUP_EXPIRED],
            LO,
            "account_api",
            True,
            id="expired-answer-after-a-silent-fetch",
        ),
    ],
)
def test_later_signals(signals: list[Signal], state: LoginState, method: str, conclusive: bool) -> None:
    assert_decides(signals, state, method, conclusive)


def test_session_expired_is_read_from_the_reason_not_from_the_evidence() -> None:
    worded_only = Signal(Source.ACCOUNT_API, OUT, "account info error: session_expired")
    assert_decides(rest_silent(PAGE_USER, worded_only), UN, "conflict:rehydration/account_api", False)
    named_only = Signal(Source.ACCOUNT_API, OUT, "error", reason="session_expired")
    assert_decides(rest_silent(PAGE_USER, named_only), LO, "account_api", True)


def test_lookup_error_without_a_name_is_an_other_error() -> None:
    unnamed = Signal(Source.ACCOUNT_API, OUT, "account info error: error")
    assert_decides(rest_silent(unnamed), LO, "account_api", True)
    assert_decides(rest_silent(unnamed, PAGE_USER), UN, "conflict:rehydration/account_api", False)


# --- invariants over every combination -------------------------------------------------------------------

OPTIONS: dict[Source, tuple[Signal | None, ...]] = {
    Source.COOKIES: (None, COOKIE_PRESENT, NO_COOKIE),
    Source.ACCOUNT_API: (None, LOOKUP_SILENT, LOOKUP_USER, LOOKUP_EXPIRED, LOOKUP_ERROR, LOOKUP_WALL),
    Source.REHYDRATION: (None, NO_BLOCK, PAGE_USER, PAGE_NO_USER),
    Source.REDIRECT: (None, NOT_REDIRECTED, AT_LOGIN),
    Source.HEADER: (None, HEADER_NONE, HEADER_IN, HEADER_OUT),
    Source.WALLS: (None, PAGE_CLEAR, CAPTCHA),
}
ALL_COMBOS: list[list[Signal]] = [
    [signal for signal in combo if signal is not None] for combo in itertools.product(*OPTIONS.values())
]


def describe(signals: list[Signal]) -> str:
    return ",".join(map(label, signals))


def test_every_combination_is_swept() -> None:
    assert len(ALL_COMBOS) == 3 * 6 * 4 * 3 * 4 * 3


def test_the_combinations_reach_exactly_these_outcomes() -> None:
    outcomes = {(d.state, d.method.split(":")[0], d.conclusive) for d in map(decide, ALL_COMBOS)}
    # No (logged_in, header, ...): the header never proves a login.
    assert outcomes == {
        (UN, "walls", True),
        (UN, "account_api", True),
        (LO, "cookies", True),
        (UN, "conflict", False),
        (LO, "account_api", True),
        (LO, "rehydration", True),
        (LO, "redirect", True),
        (LI, "account_api", True),
        (LI, "rehydration", True),
        (LO, "header", True),
        (UN, "pending", False),
    }


def test_logged_in_only_with_the_lookups_user_or_its_silence_and_a_page_user_on_a_clear_page() -> None:
    for signals in ALL_COMBOS:
        if decide(signals).state is LI:
            seen = {signal.source: signal for signal in signals}
            assert seen[Source.WALLS] is PAGE_CLEAR, describe(signals)
            lookup = seen[Source.ACCOUNT_API]
            assert lookup is LOOKUP_USER or (
                lookup is LOOKUP_SILENT and seen[Source.REHYDRATION] is PAGE_USER
            )


def test_the_header_never_makes_a_login() -> None:
    for signals in ALL_COMBOS:
        if decide(signals).state is LI:
            without_header = [signal for signal in signals if signal.source is not Source.HEADER]
            assert decide(without_header).state is LI, describe(signals)


def test_never_logged_in_while_a_signal_other_than_the_header_says_logged_out_or_any_wall() -> None:
    for signals in ALL_COMBOS:
        if any(s.verdict is WALL or (s.verdict is OUT and s.source is not Source.HEADER) for s in signals):
            assert decide(signals).state is not LI, describe(signals)


def test_page_based_answers_only_after_the_page_was_found_clear() -> None:
    for signals in ALL_COMBOS:
        decision = decide(signals)
        if decision.conclusive and decision.state is not UN and decision.method != "cookies":
            assert PAGE_CLEAR in signals, describe(signals)


def test_a_wall_is_never_logged_in_or_out() -> None:
    for signals in ALL_COMBOS:
        if any(signal.verdict is WALL for signal in signals):
            decision = decide(signals)
            assert (decision.state, decision.conclusive) == (UN, True), describe(signals)


def test_arrival_order_does_not_change_the_answer() -> None:
    for signals in ALL_COMBOS:
        forward, backward = decide(signals), decide(list(reversed(signals)))
        assert (forward.state, forward.conclusive) == (backward.state, backward.conclusive), describe(signals)
        if sum(signal.verdict is WALL for signal in signals) < 2:  # with two walls either one may be named
            assert forward.method == backward.method, describe(signals)


def test_a_conclusive_answer_holds_whatever_page_signal_arrives_next() -> None:
    # The detector stops at the first conclusive answer, so a page signal still on its way must not be
    # one that would have changed it. Walls are re-probed before answering, and the cookie is read
    # before the page is opened, so those two are left out.
    later_sources = (Source.ACCOUNT_API, Source.REHYDRATION, Source.REDIRECT, Source.HEADER)
    for signals in ALL_COMBOS:
        decision = decide(signals)
        if not decision.conclusive or decision.state is UN:
            continue
        seen = {signal.source for signal in signals}
        for source in later_sources:
            if source in seen:
                continue
            for late in OPTIONS[source]:
                if late is not None and late.verdict is not WALL:
                    later = decide([*signals, late])
                    assert later.state is decision.state, describe([*signals, late])


# --- the behaviours that matter most, by name ------------------------------------------------------------


def test_a_server_rendered_user_whose_session_ended_is_logged_out_by_the_account_lookup() -> None:
    signals = [COOKIE_PRESENT, PAGE_USER, NOT_REDIRECTED, HEADER_IN, PAGE_CLEAR, LOOKUP_EXPIRED]
    assert_decides(signals, LO, "account_api", True)


def test_a_rehydration_user_waits_for_the_account_lookup() -> None:
    signals = [COOKIE_PRESENT, PAGE_USER, NOT_REDIRECTED, HEADER_IN, PAGE_CLEAR]
    assert_decides(signals, UN, "pending", False)
    assert_decides([*signals, LOOKUP_USER], LI, "account_api", True)


def test_a_rehydration_user_suffices_only_once_the_lookup_gave_no_answer() -> None:
    signals = [COOKIE_PRESENT, PAGE_USER, NOT_REDIRECTED, PAGE_CLEAR, LOOKUP_SILENT]
    assert_decides(signals, LI, "rehydration", True)


def test_revoked_session_cookie_present_but_account_lookup_expired_is_logged_out() -> None:
    assert_decides([COOKIE_PRESENT, LOOKUP_EXPIRED, PAGE_CLEAR], LO, "account_api", True)


def test_missing_session_cookie_beats_a_logged_in_page() -> None:
    assert_decides([NO_COOKIE, LOOKUP_USER, PAGE_USER, NOT_REDIRECTED, PAGE_CLEAR], LO, "cookies", True)


# --- readers: cookies ------------------------------------------------------------------------------------

SESSION_COOKIES = ("sessionid", "sessionid_ss", "sid_tt")
GUARD = "sid_guard"
GUEST_COOKIES = (
    "ttwid",
    "msToken",
    "tt_chain_token",
    "tt_csrf_token",
    "s_v_web_id",
    "odin_tt",
    "passport_csrf_token",
)
ISSUED, MAX_AGE = 1_700_000_000, 5_184_000


def cookie(name: str, value: str = "v4lue") -> dict[str, str]:
    return {"name": name, "value": value, "domain": ".tiktok.com"}


def read(cookies: list[dict[str, str]], now: float = ISSUED + 60) -> Signal:
    return read_cookies(cookies, SESSION_COOKIES, GUARD, now)


@pytest.mark.parametrize(
    "value",
    [
        "abc%7C1700000000%7C5184000%7CSat%2C+30-Jan-2027+11%3A10%3A05+GMT",
        "abc|1700000000|5184000|Sat, 30-Jan-2027 11:10:05 GMT",
        "abc|1700000000|5184000",
    ],
    ids=["url-encoded", "plain", "no-date"],
)
def test_sid_guard_expiry_is_issued_plus_max_age(value: str) -> None:
    assert guard_expiry(value) == ISSUED + MAX_AGE


@pytest.mark.parametrize(
    "value", ["", "garbage", "abc|1700000000", "abc|yesterday|5184000", "abc%7Cx%7Cy%7Cz"]
)
def test_unparseable_sid_guard_has_no_expiry(value: str) -> None:
    assert guard_expiry(value) is None


@pytest.mark.parametrize("name", SESSION_COOKIES)
def test_any_session_cookie_present_says_nothing(name: str) -> None:
    assert read([cookie("ttwid"), cookie(name)]).verdict is NONE


def test_guard_past_its_expiry_is_logged_out() -> None:
    guard = cookie(GUARD, "abc%7C1700000000%7C3600%7CSat%2C+30-Jan-2027+11%3A10%3A05+GMT")
    signal = read([cookie("sessionid"), guard], now=ISSUED + 3600)
    assert (signal.source, signal.verdict) == (Source.COOKIES, OUT)


def test_guard_before_its_expiry_says_nothing() -> None:
    guard = cookie(GUARD, "abc%7C1700000000%7C3600%7CSat%2C+30-Jan-2027+11%3A10%3A05+GMT")
    assert read([cookie("sessionid"), guard], now=ISSUED + 3599).verdict is NONE


def test_unparseable_guard_with_a_session_cookie_says_nothing() -> None:
    assert read([cookie("sessionid"), cookie(GUARD, "garbage")]).verdict is NONE


def test_guest_cookies_only_is_logged_out() -> None:
    assert read([cookie(name) for name in GUEST_COOKIES]).verdict is OUT


def test_no_cookies_is_logged_out() -> None:
    assert read([]).verdict is OUT


def test_empty_session_cookie_value_counts_as_absent() -> None:
    assert read([cookie(name, "") for name in SESSION_COOKIES]).verdict is OUT


# --- readers: account info -------------------------------------------------------------------------------


def account_body(message: str, **data: object) -> str:
    return json.dumps({"message": message, "data": data})


@pytest.mark.parametrize(
    ("status", "body", "verdict", "reason"),
    [
        (200, account_body("success", user_id_str="6811", username="alice"), IN, None),
        (200, account_body("error", name="session_expired"), OUT, "session_expired"),
        (200, account_body("error", name="invalid_request"), OUT, "invalid_request"),
        (200, json.dumps({"message": "error"}), OUT, None),
        (200, account_body("error", name=""), OUT, None),
        (200, account_body("success"), NONE, None),
        (200, "", NONE, None),
        (200, "<html>not json</html>", NONE, None),
        (200, "[]", NONE, None),
        (200, "null", NONE, None),
        (200, '"success"', NONE, None),
        (200, json.dumps({"status": "ok"}), NONE, None),
        (200, None, NONE, None),
        (None, None, NONE, None),
        (None, account_body("error", name="session_expired"), NONE, None),
        (500, "<html>oops</html>", NONE, None),
        (500, account_body("error", name="session_expired"), NONE, None),
        (503, "", NONE, None),
        (403, account_body("success", user_id_str="6811"), WALL, None),
        (429, "", WALL, None),
        (429, account_body("error", name="session_expired"), WALL, None),
    ],
    ids=[
        "success-with-user",
        "session-expired",
        "other-error",
        "error-without-data",
        "error-with-empty-name",
        "success-without-user",
        "empty-body",
        "bad-json",
        "json-array",
        "json-null",
        "json-string",
        "unknown-object",
        "no-body",
        "no-answer",
        "no-status",
        "http-500-html",
        "http-500-error-body",
        "http-503-empty",
        "http-403",
        "http-429-empty",
        "http-429-error-body",
    ],
)
def test_account_info(status: int | None, body: str | None, verdict: Verdict, reason: str | None) -> None:
    signal = read_account_info(status, body)
    assert (signal.source, signal.verdict, signal.reason) == (Source.ACCOUNT_API, verdict, reason)


def test_account_info_error_keeps_its_name_in_the_evidence_for_people() -> None:
    signal = read_account_info(200, account_body("error", name="session_expired"))
    assert signal.evidence == "account info error: session_expired"


# --- readers: rehydration --------------------------------------------------------------------------------


def rehydration(app_context: object) -> str:
    return json.dumps({"__DEFAULT_SCOPE__": {"webapp.app-context": app_context, "webapp.other": {}}})


@pytest.mark.parametrize(
    ("script", "verdict"),
    [
        (rehydration({"user": {"uniqueId": "alice", "uid": "6811"}, "language": "en"}), IN),
        (rehydration({"language": "en"}), OUT),
        (rehydration({"user": {}, "language": "en"}), OUT),
        (None, NONE),
        ("", NONE),
        ("{not json", NONE),
        (json.dumps({"__DEFAULT_SCOPE__": {"webapp.video-detail": {}}}), NONE),
        (json.dumps({"other": {}}), NONE),
        (rehydration("not an object"), NONE),
        ("[1, 2]", NONE),
    ],
    ids=[
        "user-with-uniqueId",
        "app-context-without-user",
        "empty-user",
        "missing-block",
        "empty-block",
        "bad-json",
        "no-app-context",
        "no-default-scope",
        "app-context-not-object",
        "json-array",
    ],
)
def test_rehydration(script: str | None, verdict: Verdict) -> None:
    signal = read_rehydration(script)
    assert (signal.source, signal.verdict) == (Source.REHYDRATION, verdict)


# --- readers: redirect, header, walls --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "verdict"),
    [
        ("https://www.tiktok.com/login?redirect_url=https%3A%2F%2Fwww.tiktok.com%2Fforyou", OUT),
        ("https://www.tiktok.com/login", OUT),
        ("https://www.tiktok.com/login/", OUT),
        ("https://www.tiktok.com/login/phone-or-email", OUT),
        ("http://127.0.0.1:8123/login?lang=en", OUT),
        ("https://www.tiktok.com/loginx", NONE),
        ("https://www.tiktok.com/foryou", NONE),
        ("https://www.tiktok.com/", NONE),
        ("https://www.tiktok.com/@alice?from=/login", NONE),
    ],
    ids=[
        "login-with-redirect-url",
        "login",
        "login-trailing-slash",
        "login-subpage",
        "standin-login",
        "loginx",
        "foryou",
        "home",
        "login-in-query-only",
    ],
)
def test_redirect(url: str, verdict: Verdict) -> None:
    signal = read_redirect(url, "/login")
    assert (signal.source, signal.verdict) == (Source.REDIRECT, verdict)


@pytest.mark.parametrize(
    ("logged_in_hits", "logged_out_hits", "verdict"),
    [
        (['[data-e2e="profile-icon"]'], [], IN),
        ([], ['[data-e2e="top-login-button"]'], OUT),
        (['[data-e2e="profile-icon"]'], ['[data-e2e="login-modal"]'], NONE),
        ([], [], NONE),
    ],
    ids=["logged-in-element", "login-button", "both", "neither"],
)
def test_header(logged_in_hits: list[str], logged_out_hits: list[str], verdict: Verdict) -> None:
    signal = read_header(logged_in_hits, logged_out_hits)
    assert (signal.source, signal.verdict) == (Source.HEADER, verdict)


@pytest.mark.parametrize(
    ("status", "captcha", "ban", "empty", "verdict", "reason"),
    [
        (200, [], [], False, NONE, ""),
        (None, [], [], False, NONE, ""),
        (403, [], [], False, WALL, "403"),
        (429, [], [], False, WALL, "429"),
        (200, ["#captcha-verify"], [], False, WALL, "captcha"),
        (200, [], ['[data-e2e="ban-notice"]'], False, WALL, "ban"),
        (200, [], [], True, WALL, "empty"),
        (403, ["#captcha-verify"], ["ban"], True, WALL, "403"),
        (200, ["#captcha-verify"], ["ban"], True, WALL, "captcha"),
        (200, [], ["ban"], True, WALL, "ban"),
        (502, [], [], False, WALL, "page HTTP 502"),
        (500, [], [], True, WALL, "page HTTP 500"),
        (404, [], [], False, NONE, "page clear"),
    ],
    ids=[
        "clear",
        "clear-no-status",
        "http-403",
        "http-429",
        "captcha",
        "ban-notice",
        "empty-page",
        "status-before-captcha",
        "captcha-before-ban",
        "ban-before-empty",
        "http-502",
        "http-500-before-empty",
        "http-404-is-not-a-wall",
    ],
)
def test_walls(
    status: int | None, captcha: list[str], ban: list[str], empty: bool, verdict: Verdict, reason: str
) -> None:
    signal = read_walls(status, captcha, ban, empty)
    assert (signal.source, signal.verdict) == (Source.WALLS, verdict)
    assert reason in signal.evidence


# --- readers into decide(): raw observations end to end --------------------------------------------------


def clear_home_page() -> list[Signal]:
    return [read_redirect("https://www.tiktok.com/foryou", "/login"), read_walls(200, [], [], False)]


def test_revoked_session_read_from_raw_observations_is_logged_out() -> None:
    signals = [
        read([cookie("sessionid"), cookie("sid_tt"), cookie("ttwid")]),
        read_account_info(200, account_body("error", name="session_expired")),
        read_rehydration(rehydration({"language": "en"})),
        *clear_home_page(),
    ]
    assert decide(signals) == Decision(LO, "account_api", conclusive=True)


def test_stale_render_read_from_raw_observations_is_logged_out() -> None:
    signals = [
        read([cookie("sessionid"), cookie("ttwid")]),
        read_rehydration(rehydration({"user": {"uniqueId": "alice"}})),
        read_header(['[data-e2e="profile-icon"]'], []),
        *clear_home_page(),
        read_account_info(200, account_body("error", name="session_expired")),
    ]
    assert decide(signals) == Decision(LO, "account_api", conclusive=True)


def test_other_lookup_error_under_a_page_user_read_from_raw_observations_is_uncertain() -> None:
    signals = [
        read([cookie("sessionid")]),
        read_rehydration(rehydration({"user": {"uniqueId": "alice"}})),
        *clear_home_page(),
        read_account_info(200, account_body("error", name="system_busy")),
    ]
    assert decide(signals) == Decision(UN, "conflict:rehydration/account_api", conclusive=False)


def test_broken_lookup_read_from_raw_observations_lets_the_page_user_prove_the_login() -> None:
    signals = [
        read([cookie("sessionid")]),
        read_rehydration(rehydration({"user": {"uniqueId": "alice"}})),
        *clear_home_page(),
        read_account_info(500, "<html>oops</html>"),
    ]
    assert decide(signals) == Decision(LI, "rehydration", conclusive=True)


def test_header_only_page_read_from_raw_observations_proves_nothing() -> None:
    signals = [
        read([cookie("sessionid")]),
        read_account_info(404, ""),
        read_rehydration(None),
        read_header(['[data-e2e="profile-icon"]', 'a[data-e2e="nav-profile"][href^="/@"]'], []),
        *clear_home_page(),
    ]
    assert decide(signals) == Decision(UN, "pending", conclusive=False)
