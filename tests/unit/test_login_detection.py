"""Login detection without a page: `decide()` over every combination of signals, and the pure readers.

The table checks `decide()` against `expected_decision()`, a second statement of the rules written from
the contract (SPEC §4), so a change to either one shows up as a disagreement.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest

from app.services.tiktok.utils.login_signals import Decision, LoginState, Signal, Source, Verdict, decide
from app.services.tiktok.utils.signal_readers import (
    guard_expiry,
    read_account_info,
    read_cookies,
    read_header,
    read_redirect,
    read_rehydration,
    read_walls,
)

IN, OUT, WALL, NONE = Verdict.LOGGED_IN, Verdict.LOGGED_OUT, Verdict.WALL, Verdict.NONE
ABSENT = None

# What each source can say; ABSENT means the collector has not reported yet.
VERDICTS_BY_SOURCE: dict[Source, tuple[Verdict | None, ...]] = {
    Source.COOKIES: (ABSENT, NONE, OUT),
    Source.ACCOUNT_API: (ABSENT, NONE, IN, OUT, WALL),
    Source.REHYDRATION: (ABSENT, NONE, IN, OUT),
    Source.REDIRECT: (ABSENT, NONE, OUT),
    Source.HEADER: (ABSENT, NONE, IN, OUT),
    Source.WALLS: (ABSENT, NONE, WALL),
}
SOURCES = tuple(VERDICTS_BY_SOURCE)
STRONG_SOURCES_STRONGEST_FIRST = (Source.ACCOUNT_API, Source.REHYDRATION, Source.REDIRECT)

Combo = tuple[Verdict | None, ...]
ALL_COMBOS: list[Combo] = list(itertools.product(*VERDICTS_BY_SOURCE.values()))

_SHORT = {ABSENT: "-", NONE: "none", IN: "in", OUT: "out", WALL: "wall"}
_SOURCE_SHORT = {
    Source.COOKIES: "cookies",
    Source.ACCOUNT_API: "api",
    Source.REHYDRATION: "rehyd",
    Source.REDIRECT: "redir",
    Source.HEADER: "header",
    Source.WALLS: "walls",
}


def combo_id(combo: Combo) -> str:
    return ",".join(f"{_SOURCE_SHORT[s]}={_SHORT[v]}" for s, v in zip(SOURCES, combo, strict=True))


def signals_of(combo: Combo) -> list[Signal]:
    return [Signal(source, verdict) for source, verdict in zip(SOURCES, combo, strict=True) if verdict]


def seen_of(combo: Combo) -> dict[Source, Verdict]:
    return {source: verdict for source, verdict in zip(SOURCES, combo, strict=True) if verdict}


@dataclass(frozen=True)
class Expected:
    state: LoginState
    conclusive: bool
    # Acceptable methods; None means "a conflict:… method" (two strong sources disagree).
    methods: frozenset[str] | None


def _expect(state: LoginState, method: str, conclusive: bool = True) -> Expected:
    return Expected(state, conclusive, frozenset({method}))


PENDING = _expect(LoginState.UNCERTAIN, "pending", conclusive=False)


def expected_decision(seen: dict[Source, Verdict]) -> Expected:
    """The rules of SPEC §4 restated, in the order they take precedence."""

    def says(source: Source, verdict: Verdict) -> bool:
        return seen.get(source) is verdict

    # 1. Anything hiding the account (captcha, 403/429...) settles it: we cannot know.
    walled = frozenset(source.value for source, verdict in seen.items() if verdict is WALL)
    if walled:
        return Expected(LoginState.UNCERTAIN, True, walled)
    # 2. No (valid) session cookie: logged out, whatever the page shows.
    if says(Source.COOKIES, OUT):
        return _expect(LoginState.LOGGED_OUT, "cookies")
    # 3. The strong sources.
    strong_in = [s for s in STRONG_SOURCES_STRONGEST_FIRST if says(s, IN)]
    strong_out = [s for s in STRONG_SOURCES_STRONGEST_FIRST if says(s, OUT)]
    if strong_in and strong_out:
        return Expected(LoginState.UNCERTAIN, False, None)
    # What the page says, either way, counts only once the wall check found it clear: a captcha or ban
    # page has no user either, and a wall must end as uncertain.
    page_checked_and_clear = says(Source.WALLS, NONE)
    if strong_out:
        return _expect(LoginState.LOGGED_OUT, strong_out[0].value) if page_checked_and_clear else PENDING
    if strong_in:
        return _expect(LoginState.LOGGED_IN, strong_in[0].value) if page_checked_and_clear else PENDING
    # 4. The header breaks the tie only once every strong source has reported nothing.
    if all(says(s, NONE) for s in STRONG_SOURCES_STRONGEST_FIRST):
        if says(Source.HEADER, OUT) and page_checked_and_clear:
            return _expect(LoginState.LOGGED_OUT, "header")
        if says(Source.HEADER, IN) and Source.COOKIES in seen and page_checked_and_clear:
            return _expect(LoginState.LOGGED_IN, "header")
    # 5. Keep looking.
    return PENDING


def assert_matches(decision: Decision, expected: Expected) -> None:
    assert (decision.state, decision.conclusive) == (expected.state, expected.conclusive), decision
    if expected.methods is None:
        assert decision.method.startswith("conflict:"), decision
    else:
        assert decision.method in expected.methods, decision


# --- decide(): the whole table -------------------------------------------------------------------------


@pytest.mark.parametrize("combo", ALL_COMBOS, ids=[combo_id(c) for c in ALL_COMBOS])
def test_decide_agrees_with_the_rules(combo: Combo) -> None:
    assert_matches(decide(signals_of(combo)), expected_decision(seen_of(combo)))


def test_the_table_covers_every_outcome() -> None:
    outcomes = {
        (d.state, d.method.split(":")[0], d.conclusive) for d in map(decide, map(signals_of, ALL_COMBOS))
    }
    assert outcomes == {
        (LoginState.UNCERTAIN, "walls", True),
        (LoginState.UNCERTAIN, "account_api", True),
        (LoginState.LOGGED_OUT, "cookies", True),
        (LoginState.UNCERTAIN, "conflict", False),
        (LoginState.LOGGED_OUT, "account_api", True),
        (LoginState.LOGGED_OUT, "rehydration", True),
        (LoginState.LOGGED_OUT, "redirect", True),
        (LoginState.LOGGED_IN, "account_api", True),
        (LoginState.LOGGED_IN, "rehydration", True),
        (LoginState.LOGGED_OUT, "header", True),
        (LoginState.LOGGED_IN, "header", True),
        (LoginState.UNCERTAIN, "pending", False),
    }


def test_logged_in_only_when_some_source_said_so_and_the_page_was_clear() -> None:
    for combo in ALL_COMBOS:
        seen = seen_of(combo)
        if decide(signals_of(combo)).state is LoginState.LOGGED_IN:
            assert IN in seen.values(), combo_id(combo)
            assert seen.get(Source.WALLS) is NONE, combo_id(combo)


def test_never_logged_in_while_a_cookie_or_strong_source_says_logged_out_or_any_wall() -> None:
    # The header is left out on purpose: it only breaks ties, so a strong "logged in" outranks it.
    for combo in ALL_COMBOS:
        seen = seen_of(combo)
        deciding = {v for src, v in seen.items() if src is not Source.HEADER}
        if OUT in deciding or WALL in seen.values():
            assert decide(signals_of(combo)).state is not LoginState.LOGGED_IN, combo_id(combo)


def test_page_based_answers_only_after_the_page_was_found_clear() -> None:
    for combo in ALL_COMBOS:
        decision = decide(signals_of(combo))
        if (
            decision.conclusive
            and decision.state is not LoginState.UNCERTAIN
            and decision.method != "cookies"
        ):
            assert seen_of(combo).get(Source.WALLS) is NONE, combo_id(combo)


def test_a_wall_is_never_logged_in_or_out() -> None:
    for combo in ALL_COMBOS:
        if WALL in combo:
            decision = decide(signals_of(combo))
            assert (decision.state, decision.conclusive) == (LoginState.UNCERTAIN, True), combo_id(combo)


def test_arrival_order_does_not_change_the_answer() -> None:
    for combo in ALL_COMBOS:
        forward, backward = decide(signals_of(combo)), decide(list(reversed(signals_of(combo))))
        assert (forward.state, forward.conclusive) == (backward.state, backward.conclusive), combo_id(combo)
        if combo.count(WALL) < 2:  # with two walls either one may be named
            assert forward.method == backward.method, combo_id(combo)


# --- decide(): the cases that matter most, by name ---------------------------------------------------------


def s(source: Source, verdict: Verdict) -> Signal:
    return Signal(source, verdict, "test")


def test_revoked_session_cookie_present_but_account_api_logged_out_is_logged_out() -> None:
    decision = decide([s(Source.COOKIES, NONE), s(Source.ACCOUNT_API, OUT), s(Source.WALLS, NONE)])
    assert decision == Decision(LoginState.LOGGED_OUT, "account_api", conclusive=True)


def test_captcha_with_account_api_logged_in_is_uncertain() -> None:
    decision = decide([s(Source.COOKIES, NONE), s(Source.ACCOUNT_API, IN), s(Source.WALLS, WALL)])
    assert decision == Decision(LoginState.UNCERTAIN, "walls", conclusive=True)


def test_account_api_wall_with_rehydration_logged_in_is_uncertain() -> None:
    decision = decide([s(Source.ACCOUNT_API, WALL), s(Source.REHYDRATION, IN), s(Source.WALLS, NONE)])
    assert decision == Decision(LoginState.UNCERTAIN, "account_api", conclusive=True)


def test_header_logged_in_without_a_walls_check_is_pending() -> None:
    signals = [s(Source.COOKIES, NONE), *(s(src, NONE) for src in STRONG_SOURCES_STRONGEST_FIRST)]
    assert decide([*signals, s(Source.HEADER, IN)]) == Decision(LoginState.UNCERTAIN, "pending", False)


def test_header_logged_in_without_a_cookie_signal_is_pending() -> None:
    signals = [*(s(src, NONE) for src in STRONG_SOURCES_STRONGEST_FIRST), s(Source.WALLS, NONE)]
    assert decide([*signals, s(Source.HEADER, IN)]) == Decision(LoginState.UNCERTAIN, "pending", False)


def test_header_logged_in_with_cookie_and_clear_page_after_silent_strong_sources_is_logged_in() -> None:
    signals = [s(Source.COOKIES, NONE), *(s(src, NONE) for src in STRONG_SOURCES_STRONGEST_FIRST)]
    decision = decide([*signals, s(Source.WALLS, NONE), s(Source.HEADER, IN)])
    assert decision == Decision(LoginState.LOGGED_IN, "header", conclusive=True)


def test_header_waits_until_every_strong_source_reported() -> None:
    signals = [s(Source.COOKIES, NONE), s(Source.ACCOUNT_API, NONE), s(Source.REHYDRATION, NONE)]
    assert decide([*signals, s(Source.WALLS, NONE), s(Source.HEADER, OUT)]).conclusive is False
    assert decide([*signals, s(Source.WALLS, NONE), s(Source.HEADER, IN)]).conclusive is False


def test_header_logged_out_after_silent_strong_sources_and_clear_page_is_logged_out() -> None:
    signals = [*(s(src, NONE) for src in STRONG_SOURCES_STRONGEST_FIRST), s(Source.HEADER, OUT)]
    assert decide(signals).conclusive is False
    assert decide([*signals, s(Source.WALLS, NONE)]) == Decision(LoginState.LOGGED_OUT, "header", True)


def test_page_logged_out_without_a_walls_check_is_pending() -> None:
    decision = decide([s(Source.COOKIES, NONE), s(Source.REHYDRATION, OUT), s(Source.REDIRECT, OUT)])
    assert decision == Decision(LoginState.UNCERTAIN, "pending", conclusive=False)


def test_ban_page_without_a_user_is_uncertain_not_logged_out() -> None:
    decision = decide([s(Source.COOKIES, NONE), s(Source.REHYDRATION, OUT), s(Source.WALLS, WALL)])
    assert decision == Decision(LoginState.UNCERTAIN, "walls", conclusive=True)


def test_contradiction_between_strong_sources_is_uncertain_and_not_conclusive() -> None:
    decision = decide(
        [s(Source.COOKIES, NONE), s(Source.ACCOUNT_API, IN), s(Source.REDIRECT, OUT), s(Source.WALLS, NONE)]
    )
    assert decision.state is LoginState.UNCERTAIN
    assert decision.conclusive is False
    assert decision.method.startswith("conflict:")


def test_strong_logged_in_without_a_walls_check_is_pending() -> None:
    decision = decide([s(Source.COOKIES, NONE), s(Source.ACCOUNT_API, IN)])
    assert decision == Decision(LoginState.UNCERTAIN, "pending", conclusive=False)


def test_strong_logged_in_with_clear_page_is_logged_in() -> None:
    decision = decide([s(Source.REHYDRATION, IN), s(Source.WALLS, NONE)])
    assert decision == Decision(LoginState.LOGGED_IN, "rehydration", conclusive=True)


def test_missing_session_cookie_beats_a_logged_in_page() -> None:
    decision = decide([s(Source.COOKIES, OUT), s(Source.ACCOUNT_API, IN), s(Source.WALLS, NONE)])
    assert decision == Decision(LoginState.LOGGED_OUT, "cookies", conclusive=True)


def test_header_never_overrides_a_strong_logged_in() -> None:
    decision = decide([s(Source.ACCOUNT_API, IN), s(Source.HEADER, OUT), s(Source.WALLS, NONE)])
    assert decision == Decision(LoginState.LOGGED_IN, "account_api", conclusive=True)


def test_nothing_seen_is_pending() -> None:
    assert decide([]) == Decision(LoginState.UNCERTAIN, "pending", conclusive=False)


@pytest.mark.parametrize(
    ("signals", "method"),
    [
        ([s(Source.REDIRECT, OUT), s(Source.ACCOUNT_API, OUT), s(Source.WALLS, NONE)], "account_api"),
        ([s(Source.REDIRECT, OUT), s(Source.REHYDRATION, OUT), s(Source.WALLS, NONE)], "rehydration"),
        ([s(Source.REHYDRATION, IN), s(Source.ACCOUNT_API, IN), s(Source.WALLS, NONE)], "account_api"),
    ],
    ids=["api-before-redirect", "rehydration-before-redirect", "api-before-rehydration"],
)
def test_the_strongest_agreeing_source_is_reported(signals: list[Signal], method: str) -> None:
    assert decide(signals).method == method


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        (
            [s(Source.WALLS, NONE), s(Source.REDIRECT, NONE), s(Source.REDIRECT, OUT)],
            Decision(LoginState.LOGGED_OUT, "redirect", True),
        ),
        (
            [s(Source.ACCOUNT_API, IN), s(Source.WALLS, NONE), s(Source.ACCOUNT_API, OUT)],
            Decision(LoginState.LOGGED_OUT, "account_api", True),
        ),
        (
            [s(Source.ACCOUNT_API, WALL), s(Source.ACCOUNT_API, IN), s(Source.WALLS, NONE)],
            Decision(LoginState.LOGGED_IN, "account_api", True),
        ),
        (
            [s(Source.WALLS, WALL), s(Source.WALLS, NONE), s(Source.REHYDRATION, IN)],
            Decision(LoginState.LOGGED_IN, "rehydration", True),
        ),
        (
            [
                s(Source.COOKIES, NONE),
                s(Source.ACCOUNT_API, IN),
                s(Source.WALLS, NONE),
                s(Source.WALLS, WALL),
            ],
            Decision(LoginState.UNCERTAIN, "walls", True),
        ),
    ],
    ids=[
        "late-js-redirect-to-login",
        "api-turns-logged-out",
        "api-wall-then-answer",
        "captcha-solved",
        "captcha-appears-later",
    ],
)
def test_a_later_signal_replaces_an_earlier_one_of_the_same_source(
    signals: list[Signal], expected: Decision
) -> None:
    assert decide(signals) == expected


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
    ("status", "body", "verdict"),
    [
        (200, account_body("success", user_id_str="6811", username="alice"), IN),
        (200, account_body("error", name="session_expired"), OUT),
        (200, account_body("error", name="invalid_request"), OUT),
        (200, json.dumps({"message": "error"}), OUT),
        (200, account_body("success"), NONE),
        (200, "", NONE),
        (200, "<html>not json</html>", NONE),
        (200, "[]", NONE),
        (200, "null", NONE),
        (200, '"success"', NONE),
        (200, json.dumps({"status": "ok"}), NONE),
        (200, None, NONE),
        (None, None, NONE),
        (None, account_body("error", name="session_expired"), NONE),
        (403, account_body("success", user_id_str="6811"), WALL),
        (429, "", WALL),
        (429, account_body("error", name="session_expired"), WALL),
    ],
    ids=[
        "success-with-user",
        "session-expired",
        "other-error",
        "error-without-data",
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
        "http-403",
        "http-429-empty",
        "http-429-error-body",
    ],
)
def test_account_info(status: int | None, body: str | None, verdict: Verdict) -> None:
    signal = read_account_info(status, body)
    assert (signal.source, signal.verdict) == (Source.ACCOUNT_API, verdict)


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
    ],
)
def test_walls(
    status: int | None, captcha: list[str], ban: list[str], empty: bool, verdict: Verdict, reason: str
) -> None:
    signal = read_walls(status, captcha, ban, empty)
    assert (signal.source, signal.verdict) == (Source.WALLS, verdict)
    assert reason in signal.evidence


# --- readers into decide(): the revoked session end to end -----------------------------------------------


def test_revoked_session_read_from_raw_observations_is_logged_out() -> None:
    signals = [
        read([cookie("sessionid"), cookie("sid_tt"), cookie("ttwid")]),
        read_account_info(200, account_body("error", name="session_expired")),
        read_rehydration(rehydration({"language": "en"})),
        read_walls(200, [], [], False),
    ]
    assert decide(signals) == Decision(LoginState.LOGGED_OUT, "account_api", conclusive=True)
