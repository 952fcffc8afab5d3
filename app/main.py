"""Builds the application: settings, logging, lifespan, routers, error handlers. Nothing else.

`uvicorn app.main:app`, `fastapi run app/main.py` and `python -m app` (`make run`) all serve the same app.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI

from app.api import forwarding
from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.request_log import RequestLog
from app.api.routes import router
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.security import load_or_create_keys
from app.services.cluster.registry import ClusterRegistry
from app.services.common.cdp_relay import CLIENT_MAX_MESSAGE_BYTES
from app.services.tiktok.service import TiktokService

logger = logging.getLogger(__name__)


def uvicorn_options() -> dict[str, Any]:
    """What `python -m app` passes to uvicorn beside host and port."""
    return {
        "log_config": None,  # our handler and redaction filter, not uvicorn's own
        "access_log": False,  # `app.api.request_log` writes one line per request, with its id
        # The sans-I/O implementation stops reading a client's socket until the relay took its last
        # message: the client half of the relay's back pressure.
        "ws": "websockets-sansio",
        # A CDP client may send large commands (page content, file payloads); 16 MiB is uvicorn's default.
        "ws_max_size": CLIENT_MAX_MESSAGE_BYTES,
        # CDP clients do not compress; deflating a 30 MB screenshot on the event loop would stall everyone.
        "ws_per_message_deflate": False,
        # Pings still find dead clients, but Chromium can take many seconds to swallow a big command
        # while the client's pongs wait unread behind it: 20 s (the default) would cut healthy clients.
        "ws_ping_timeout": 60,
        # Longer than common clients' idle-connection expiry (httpx: 5 s), so the server never closes a
        # kept-alive connection at the moment a client reuses it.
        "timeout_keep_alive": 30,
    }


class Server(uvicorn.Server):
    """uvicorn's server, ending the sessions before it drains connections.

    uvicorn waits for every response in flight before the lifespan shutdown runs, and sends 1012 to
    every WebSocket: a wait-mode POST (answered only when its session ends) would hold SIGTERM up until
    MAX_SESSION_DURATION, and CDP clients would never get their normal close frame. Ending the sessions
    first answers both. `python -m app` (`make run`) runs this server.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        service = getattr(getattr(self.config.app, "state", None), "tiktok_service", None)
        if service is not None:
            await service.end_all_sessions()
        await super().shutdown(sockets)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    api_keys = [key.get_secret_value() for key in settings.API_KEYS]
    proxy = settings.PROXY.get_secret_value() if settings.PROXY else ""
    redis_password = urlsplit(settings.REDIS_URL.get_secret_value()).password if settings.REDIS_URL else None
    configure_logging(
        settings.LOG_LEVEL, settings.LOG_FORMAT, secrets=(*api_keys, proxy, redis_password or "")
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Again at start: a launcher (`fastapi run`, uvicorn's --log-config) may have installed its
        # own handlers after the app was built; ours, with the redaction filter, must be the last word.
        configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT, secrets=(*api_keys, proxy))
        if settings.AUTH_DISABLED:
            logger.warning("auth.disabled AUTH_DISABLED=true: every client may create sessions")
            app.state.api_keys = None
        else:
            app.state.api_keys = load_or_create_keys(api_keys, settings.USER_DATA_DIR)
        # Cluster mode (REDIS_URL): the registry shared with the other instances, and the forwarding to them.
        cluster = ClusterRegistry(settings) if settings.REDIS_URL else None
        if cluster is not None:
            await cluster.start()
        app.state.forwarder = forwarding.Forwarder(settings) if cluster is not None else None
        service = TiktokService(settings, app.state.metrics, cluster)
        await service.start()
        app.state.settings = settings
        app.state.tiktok_service = service
        try:
            yield
        finally:
            await service.shutdown()
            if cluster is not None:
                await app.state.forwarder.aclose()
                await cluster.stop()

    app = FastAPI(
        title="TikTok Session Service",
        version="0.2.0",
        description="Hands out live TikTok web sessions, proven logged in, on copies of a master profile.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.metrics = Metrics()
    install_error_handlers(app)
    forwarding.install(app)
    app.add_middleware(RequestLog)
    install_docs(app)
    app.include_router(router)
    return app


def __getattr__(name: str) -> FastAPI:
    # `app.main:app` for uvicorn and `fastapi run`, built on first use so that importing this module
    # (tests, the CLI) reads no configuration.
    if name == "app":
        globals()["app"] = application = create_app()
        return application
    raise AttributeError(name)


def __dir__() -> list[str]:
    # `fastapi run` looks for `app` among the module's names before asking for it.
    return sorted({*globals(), "app"})
