"""Health, readiness, metrics, and what model is served: ``/healthz``, ``/readyz``,
``/metrics``, ``/labels``, ``/model``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tweetdomains.predict import Classifier
from tweetdomains_api.deps import ModelDep, ServicesDep
from tweetdomains_api.drift import training_shares
from tweetdomains_api.errors import error_responses
from tweetdomains_api.responses import OrjsonResponse
from tweetdomains_api.schemas import Lineage, ModelResponse, ReadyResponse

router = APIRouter()
LINEAGE_KEYS = tuple(Lineage.model_fields)


def lineage_of(model: Classifier) -> dict[str, Any] | None:
    """The ``lineage`` a run's metrics.json records (only its known keys); None for older runs."""
    lineage = model.metrics.get("lineage")
    if not isinstance(lineage, Mapping):
        return None
    return {key: lineage[key] for key in LINEAGE_KEYS if key in lineage}


@router.get("/healthz", tags=["operations"], operation_id="healthz")
async def healthz() -> dict[str, str]:
    """200 while the process serves."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["operations"],
    operation_id="readyz",
    response_model=ReadyResponse,
    responses={503: {"model": ReadyResponse, "description": "no model loaded yet"}},
)
async def readyz(services: ServicesDep) -> OrjsonResponse:
    """200 once a model is loaded (also while shedding load: that is not unhealthiness);
    the details say which model, how the cache is (Redis is PINGed when idle) and how deep
    the queue is."""
    model = services.holder.current
    batcher = services.batcher
    details = {
        "status": "ready" if model else "loading",
        "model": model.run_id if model else None,
        "cache": {"backend": services.cache.backend, "status": await services.cache.probe()},
        "queue": {
            "texts": batcher.queued_texts,
            "max_texts": batcher.max_queued_texts,
            "pass_running": batcher.in_pass,
        },
        "last_reload_error": services.holder.last_error,
    }
    return OrjsonResponse(details, status_code=200 if model else 503)


@router.get("/metrics", tags=["operations"], response_class=Response, operation_id="metrics")
async def prometheus_metrics(services: ServicesDep) -> Response:
    """Prometheus text format."""
    metrics = services.metrics
    metrics.redis_up.set(1 if services.cache.status() == "ok" else 0)
    model = services.holder.current
    live = services.drift.live_shares()
    trained = training_shares(model.metrics) if model else {}
    metrics.drift_live.clear()
    metrics.drift_training.clear()
    for domain in model.labels if model else sorted(live):
        metrics.drift_live.labels(domain).set(live.get(domain, 0.0))
        if trained:
            metrics.drift_training.labels(domain).set(trained.get(domain, 0.0))
    metrics.drift_window.set(services.drift.texts)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/labels", tags=["model"], operation_id="labels", responses=error_responses(401, 503))
async def labels(model: ModelDep) -> list[str]:
    """The served model's labels, in its output order."""
    return model.labels


@router.get(
    "/model",
    tags=["model"],
    operation_id="model",
    response_model=ModelResponse,
    responses=error_responses(401, 503),
)
async def model_info(model: ModelDep, services: ServicesDep) -> OrjsonResponse:
    """The served model's run id, metrics, creation time, serving precision and lineage
    (what it was trained on), with the drift of recent traffic from its training labels."""
    return OrjsonResponse(
        {
            "run_id": model.run_id,
            "created_at": model.created_at,
            "precision": model.served_precision,
            "labels": len(model.labels),
            "metrics": {k: v for k, v in model.metrics.items() if k != "lineage"},
            "lineage": lineage_of(model),
            "drift": {
                "texts": services.drift.texts,
                "live": services.drift.live_shares(),
                "training": training_shares(model.metrics),
            },
        }
    )
