"""The inference API: FastAPI app factory, lifespan and the uvicorn server.

``create_app(settings)`` builds an app from the routers (classify, operations, page); its
``lifespan`` connects the cache, starts the micro-batcher and loads the best model from the
store (S3 or local), then keeps polling ``models/best.json`` for promotions. Nothing is
loaded per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware

from tweetdomains import __version__
from tweetdomains_api import errors
from tweetdomains_api.batcher import MicroBatcher
from tweetdomains_api.cache import make_cache
from tweetdomains_api.cpus import inference_threads
from tweetdomains_api.deps import Services
from tweetdomains_api.drift import DriftTracker
from tweetdomains_api.metrics import ApiMetrics
from tweetdomains_api.middleware import (
    AdmissionMiddleware,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    GzipWhenAsked,
    LoopLag,
    MetricsMiddleware,
)
from tweetdomains_api.model_holder import ModelHolder
from tweetdomains_api.routes import classify, operations, page
from tweetdomains_api.settings import Settings, get_settings

log = logging.getLogger(__name__)

PUBLIC_OPERATIONS = frozenset({"healthz", "readyz", "metrics"})


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The generated spec plus what FastAPI cannot infer: the API-key scheme (Swagger UI's
    Authorize button) and the limits this instance runs with."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
    components = spec.setdefault("components", {})
    components["securitySchemes"] = {
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "TWEETDOMAINS_API_KEY, when the server has one (else anything)",
        }
    }
    for path in spec["paths"].values():
        for operation in path.values():
            if operation.get("operationId") not in PUBLIC_OPERATIONS:
                operation["security"] = [{"apiKey": []}]
    schemas = components.get("schemas", {})
    texts = schemas.get("BatchRequest", {}).get("properties", {}).get("texts", {})
    if texts:
        texts["maxItems"] = min(
            texts.get("maxItems", settings.max_texts_per_batch), settings.max_texts_per_batch
        )
        texts.setdefault("items", {})["maxLength"] = settings.max_text_chars
    text = schemas.get("ClassifyRequest", {}).get("properties", {}).get("text", {})
    if text:
        text["maxLength"] = settings.max_text_chars
    app.openapi_schema = spec
    return spec


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; models and connections are opened by its lifespan, not here."""
    settings = settings or get_settings()
    metrics = ApiMetrics()
    lag = LoopLag()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import torch

        torch.set_num_threads(settings.torch_threads or inference_threads())
        cache = make_cache(
            settings.redis_url,
            settings.cache_ttl_s,
            settings.cache_max_entries,
            settings.redis_timeout_s,
            settings.redis_retry_s,
        )
        if await cache.probe() != "ok":
            log.warning("redis unreachable at start; serving uncached until it answers")
        holder = ModelHolder(
            settings.store,
            settings.run,
            settings.reload_interval_s,
            metrics,
            settings.precision,
        )
        batcher = MicroBatcher(
            settings.max_batch_size,
            settings.max_wait_ms / 1000,
            metrics,
            max_queued_texts=settings.max_queued_texts,
            deadline_s=settings.request_deadline_s,
            queue_budget_s=settings.queue_target_s,
            measured_texts_per_s=lambda: holder.texts_per_s,
        )
        drift = DriftTracker(settings.drift_window)
        app.state.services = Services(settings, metrics, cache, holder, batcher, drift)
        lag_task = asyncio.create_task(lag.run(), name="loop-lag")
        await batcher.start()
        await holder.start()
        log.info(
            "api ready" if holder.current else "api started without a model; waiting for one",
            extra={"store": settings.store, "cache": cache.backend},
        )
        try:
            yield
        finally:
            lag_task.cancel()
            await holder.stop()
            await batcher.stop()
            await cache.close()

    app = FastAPI(
        title="tweetdomains",
        version=__version__,
        summary="Label tweets with the X/Twitter context-annotation domains they talk about.",
        lifespan=lifespan,
        docs_url=None,  # served by the page router from local assets (works offline)
        redoc_url=None,
        redirect_slashes=False,  # a redirect would be built from the client's Host header
    )
    app.state.settings = settings
    app.include_router(classify.router)
    app.include_router(operations.router)
    app.include_router(page.router)
    page.mount_assets(app)
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    errors.install(app)
    # Added innermost first; the request passes CORS, admission, metrics, gzip, auth, body limit.
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_body_bytes, read_timeout_s=settings.body_timeout_s
    )
    if settings.api_key:  # no layer at all without a key: each costs every request a little
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key.get_secret_value())
    app.add_middleware(GzipWhenAsked, minimum_size=settings.gzip_min_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics, router=app.router)
    app.add_middleware(
        AdmissionMiddleware,
        max_in_flight=settings.max_in_flight,
        metrics=metrics,
        max_lag_s=settings.max_loop_lag_ms / 1000,
        lag=lag,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Model-Version", "Retry-After"],
            max_age=600,
        )
    return app


def uvicorn_config(app: Any, settings: Settings) -> Any:
    """How ``serve`` runs an app: uvicorn's httptools protocol with the header guards, asyncio's
    loop, no access log. The API benchmark runs its HTTP floor with this too (like for like)."""
    import uvicorn

    from tweetdomains_api.http_protocol import guarded_protocol

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(settings.max_header_bytes, settings.header_timeout_s),
        log_level=settings.log_level.lower(),
        access_log=False,  # requests are counted in /metrics; access logs cost throughput
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        log_config=None,
        # asyncio's loop, not uvloop: libuv accepts one connection per loop iteration (libuv
        # #3696), so under overload new connections waited seconds in the kernel's accept queue
        # where no admission control sees them (p99 10 s against 0.8 s, 2x capacity offered).
        loop="asyncio",
    )


def serve(settings: Settings) -> None:
    """Run the API with uvicorn until SIGTERM/SIGINT; in-flight requests are drained."""
    import uvicorn

    uvicorn.Server(uvicorn_config(create_app(settings), settings)).run()
