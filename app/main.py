"""Builds the application: settings, logging, lifespan, routers, error handlers. Nothing else.

Importing this module reads no configuration: `create_app()` does. `app.asgi:app` is the built app for
`uvicorn app.asgi:app` and `fastapi run app/asgi.py`; `python -m app` (`make run`) builds its own.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from functools import partial

import anyio
import fastapi.routing
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute, NoMatchFound

from app.api import forwarding
from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.request_log import RequestLog
from app.api.routes import router
from app.api.state import AppState, install_state
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.redaction import log_secrets
from app.core.security import load_or_create_keys
from app.services.cluster.registry import ClusterRegistry
from app.services.tiktok.service import TiktokService

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings, secrets: tuple[str, ...]) -> AsyncIterator[None]:
    """Start the service (and, with REDIS_URL, the cluster registry and forwarding); stop them after."""
    # Again at start: a launcher (`fastapi run`, uvicorn's --log-config) may have installed its own
    # handlers after the app was built; ours, with the redaction filter, must be the last word.
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT, secrets)
    if settings.AUTH_DISABLED:
        logger.warning("auth.disabled AUTH_DISABLED=true: every client may create sessions")
        api_keys = None
    else:
        configured = [key.get_secret_value() for key in settings.API_KEYS]
        api_keys = load_or_create_keys(configured, settings.USER_DATA_DIR)
    async with AsyncExitStack() as stopping:
        # Cluster mode (REDIS_URL): the registry shared with the other instances, and the forwarding to them.
        cluster = ClusterRegistry(settings) if settings.REDIS_URL else None
        forwarder = None
        if cluster is not None:
            await cluster.start()
            stopping.push_async_callback(cluster.stop)
            forwarder = forwarding.Forwarder(settings, cluster)
            stopping.push_async_callback(forwarder.aclose)
        metrics = Metrics()
        service = TiktokService(settings, metrics, cluster)
        await service.start()
        stopping.push_async_callback(service.shutdown)
        install_state(app, AppState(settings, metrics, api_keys, service, forwarder))
        # What start-up made (the app, Patchright, BrowserForge's fingerprint network: ~110,000
        # objects) lives as long as the service: out of the collector's sight, a full collection no
        # longer walks it (~50 ms, which the first burst of POSTs used to wait for).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            # Collectable again once stopped (what ran in one process, a test run's many services,
            # must not pile up).
            gc.unfreeze()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # One list for both set-ups (here and at start): what the log filter blanks.
    secrets = log_secrets(settings)
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT, secrets)
    app = FastAPI(
        title="TikTok Session Service",
        version="0.2.0",
        description="Hands out live TikTok web sessions, proven logged in, on copies of a master profile.",
        docs_url=None,
        redoc_url=None,
        lifespan=partial(lifespan, settings=settings, secrets=secrets),
    )
    install_error_handlers(app)
    forwarding.install(app)
    app.add_middleware(RequestLog)
    install_docs(app)
    app.include_router(router)
    _prepare_first_request(app)
    return app


def _prepare_first_request(app: FastAPI) -> None:
    """Done here, not by the first request (the first burst of POSTs a fresh service answers would wait
    behind all of it): FastAPI builds a route's models on the route's first request (~30 ms for POST
    /tiktok/session) and reads its endpoint's source for error messages (~7 ms); anyio imports its
    stream and socket parts on first use (~13 ms). Looking up a name no route has walks every route."""
    _ = anyio.create_memory_object_stream, anyio.getaddrinfo
    with suppress(NoMatchFound):
        app.url_path_for("build every route now")
    # Private to FastAPI (0.120+), cached per endpoint; without it the first request pays as before.
    endpoint_context = getattr(fastapi.routing, "_extract_endpoint_context", None)
    if endpoint_context is not None:
        for endpoint in _endpoints(app.router.routes):
            endpoint_context(endpoint)


def _endpoints(routes: Sequence[BaseRoute]) -> Iterator[Callable[..., object]]:
    for route in routes:
        if isinstance(route, APIRoute | APIWebSocketRoute):
            yield route.endpoint
        included = getattr(route, "original_router", None)  # FastAPI 0.160+: an included router
        if included is not None:
            yield from _endpoints(included.routes)
