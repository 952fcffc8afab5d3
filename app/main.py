"""Builds the application: settings, logging, lifespan, routers, error handlers. Nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api.docs import install_docs
from app.api.errors import install_error_handlers
from app.api.routes import router
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.core.security import load_or_create_keys
from app.services.tiktok.service import TiktokService

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    api_keys = [key.get_secret_value() for key in settings.API_KEYS]
    proxy = settings.PROXY.get_secret_value() if settings.PROXY else ""
    configure_logging(settings.LOG_LEVEL, settings.LOG_FORMAT, secrets=(*api_keys, proxy))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.AUTH_DISABLED:
            logger.warning("auth.disabled AUTH_DISABLED=true: every client may create sessions")
            app.state.api_keys = None
        else:
            app.state.api_keys = load_or_create_keys(api_keys, settings.USER_DATA_DIR)
        service = TiktokService(settings)
        await service.start()
        app.state.tiktok_service = service
        try:
            yield
        finally:
            await service.shutdown()

    app = FastAPI(
        title="TikTok Session Service",
        version="0.1.0",
        description="Hands out live TikTok web sessions, proven logged in, on copies of a master profile.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_docs(app)
    app.include_router(router)
    return app
