"""What the running application holds: built once by the lifespan, read through `app_state()`.

Starlette's `app.state` takes any attribute and types none; every reader here gets one typed object
instead, so a misspelt name fails at once and a reader can see what the application holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette

from app.core.config import Settings
from app.core.metrics import Metrics
from app.services.tiktok.service import TiktokService

if TYPE_CHECKING:  # forwarding reads the state too
    from app.api.forwarding import Forwarder

_ATTRIBUTE = "service_state"


@dataclass(frozen=True)
class AppState:
    settings: Settings
    metrics: Metrics
    # The accepted keys; None when AUTH_DISABLED=true (warned about at start).
    api_keys: tuple[str, ...] | None
    tiktok_service: TiktokService
    # Cluster mode (REDIS_URL) only: the forwarding of requests to the instance that owns a session.
    forwarder: Forwarder | None


def install_state(app: Starlette, state: AppState) -> None:
    setattr(app.state, _ATTRIBUTE, state)


def app_state(app: Starlette) -> AppState:
    """The state the lifespan built; LookupError before the application has started."""
    state = getattr(app.state, _ATTRIBUTE, None)
    if not isinstance(state, AppState):
        raise LookupError("the application has not started: its lifespan builds the state")
    return state
