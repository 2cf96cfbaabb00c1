"""The FastAPI application: routers, the problem+json handlers, metrics, limits, migrations.

`/docs` (Swagger UI) and `/redoc` load their JavaScript and CSS from this server
(`/docs-assets/`, bundled by the fastapi-offline package), never from a CDN: the docs work on a
machine without internet access.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service.api.problems import install_problem_handlers
from service.api.routes import datasets, health, jobs, keys, models, plan, predict_jobs
from service.core.config import Settings, get_settings
from service.core.limits import BodySizeLimit
from service.core.migrate import upgrade_database
from service.core.model_cache import ModelCache
from service.core.observability import ApiMetrics, MetricsMiddleware
from service.core.security import key_is_valid
from service.core.strict_json import StrictJson
from service.queue import Dispatcher

MAX_JSON_BYTES = 64 << 20
DOCS_ASSETS_URL = "/docs-assets"


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for `settings` (default: from the environment)."""
    settings = settings or get_settings()
    settings.ensure_dirs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.run_migrations:
            upgrade_database(settings.effective_database_url)
        yield

    app = FastAPIOffline(
        title="elmo",
        version="0.1.0",
        summary="Train and serve extreme multi-label classifiers (FP8/BF16 output layer).",
        lifespan=lifespan,
        static_url=DOCS_ASSETS_URL,
    )
    app.state.settings = settings
    app.state.dispatcher = Dispatcher(settings)
    app.state.model_cache = ModelCache(settings.model_cache_size)
    app.state.predict_slots = threading.BoundedSemaphore(settings.max_concurrent_predicts)
    app.state.dataset_validation_slots = threading.BoundedSemaphore(
        settings.max_concurrent_dataset_validations
    )
    app.state.metrics = ApiMetrics()
    install_problem_handlers(app)
    for module in (health, keys, datasets, jobs, models, predict_jobs, plan):
        app.include_router(module.router)
    app.add_middleware(StrictJson)  # inside the size gate: reads only what it allows
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(
        BodySizeLimit,
        max_upload_bytes=settings.max_upload_bytes,
        max_json_bytes=MAX_JSON_BYTES,
        key_is_valid=partial(key_is_valid, settings.effective_database_url),
        max_predict_chars=settings.max_predict_chars,
    )
    return app
