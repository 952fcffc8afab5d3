"""Prometheus metrics (SPEC §9), with the official client, on a registry of the app's own.

Counters and histograms are recorded where things happen; what is a state rather than an event (live
sessions by mode, warm sessions ready, relays open) is read from the service when Prometheus scrapes,
so it can never drift from the truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: a cold session takes about one; a warm hand-out a few milliseconds; a slow site up to 30.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60)


class ServiceState(Protocol):
    """What the service tells the collector at scrape time."""

    def live_by_mode(self) -> dict[str, int]: ...

    def warm_ready(self) -> int: ...

    def relays_open(self) -> int: ...

    def isolation(self) -> str: ...

    def egress_refused(self) -> int: ...

    def account_states(self) -> dict[str, tuple[int, str | None]]: ...


class _StateCollector(Collector):
    def __init__(self) -> None:
        self.state: ServiceState | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        state = self.state
        live = GaugeMetricFamily("tiktok_sessions_live", "Live (handed-out) sessions", labels=["mode"])
        for mode in ("read", "write"):
            live.add_metric([mode], (state.live_by_mode().get(mode, 0) if state else 0))
        yield live
        yield GaugeMetricFamily(
            "tiktok_warm_sessions_ready",
            "Warm sessions ready for hand-out",
            value=state.warm_ready() if state else 0,
        )
        yield GaugeMetricFamily(
            "tiktok_cdp_relays_open",
            "CDP relays open to remote clients",
            value=state.relays_open() if state else 0,
        )
        isolation = GaugeMetricFamily(
            "tiktok_session_isolation",
            "SESSION_ISOLATION in force (1 for the mode that runs)",
            labels=["mode"],
        )
        for mode in ("sandbox", "none"):
            isolation.add_metric([mode], 1 if state and state.isolation() == mode else 0)
        yield isolation
        live_by_account = GaugeMetricFamily(
            "tiktok_account_sessions_live", "Live sessions, by account", labels=["account"]
        )
        logged_in = GaugeMetricFamily(
            "tiktok_account_logged_in",
            "1 when the account's last proof (for its current master) says logged in, 0 when it says "
            "otherwise; absent until proven",
            labels=["account"],
        )
        for account, (live_count, login) in (state.account_states() if state else {}).items():
            live_by_account.add_metric([account], live_count)
            if login is not None:
                logged_in.add_metric([account], 1 if login == "logged_in" else 0)
        yield live_by_account
        yield logged_in
        yield CounterMetricFamily(
            "tiktok_egress_refused",
            "Connections of session browsers refused by the egress gate (local, link-local, blocked)",
            value=state.egress_refused() if state else 0,
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._state = _StateCollector()
        self.registry.register(self._state)
        self.sessions_created = Counter(
            "tiktok_sessions_created",
            "POST /tiktok/session outcomes, by answer code (ok for a 200)",
            ["outcome"],
            registry=self.registry,
        )
        self.session_ends = Counter(
            "tiktok_session_ends", "Sessions ended, by reason", ["reason"], registry=self.registry
        )
        self.login_decisions = Counter(
            "tiktok_login_decisions",
            "Login detection decisions, by deciding method and state",
            ["method", "state"],
            registry=self.registry,
        )
        self.creation_seconds = Histogram(
            "tiktok_session_creation_seconds",
            "Time to answer a POST /tiktok/session, by whether a warm session was used",
            ["source"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.detection_seconds = Histogram(
            "tiktok_login_detection_seconds",
            "Login detection time",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.clone_bytes = Counter(
            "tiktok_clone_bytes", "Bytes copied from the master into clones", registry=self.registry
        )
        self.clone_seconds = Histogram(
            "tiktok_clone_seconds",
            "Time to copy the master into a clone",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch(self, state: ServiceState) -> None:
        self._state.state = state

    def render(self) -> bytes:
        return generate_latest(self.registry)
