"""``POST /classify`` and ``POST /classify/batch``."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter, HTTPException, Request

from tweetdomains.predict import Classifier
from tweetdomains.text import normalize, tokenize
from tweetdomains_api.answers import from_cache_value, quantize, render, to_cache_value
from tweetdomains_api.batcher import ClientGone, Refused
from tweetdomains_api.cache import CacheUnavailable, cache_key
from tweetdomains_api.deps import ModelDep, Services, ServicesDep
from tweetdomains_api.errors import CLIENT_CLOSED, error_responses
from tweetdomains_api.responses import OrjsonResponse
from tweetdomains_api.schemas import BatchRequest, BatchResponse, ClassifyRequest, ClassifyResponse

router = APIRouter(tags=["classify"])
RESPONSES = error_responses(401, 413, 422, 431, 503)


def check_texts(texts: list[str], limit: int) -> list[str]:
    """The texts normalized (once: the cache key hashes them too); 422 for a text over the hard
    cap or with nothing to classify once normalized."""
    normalized = []
    for i, text in enumerate(texts):
        field = "text" if len(texts) == 1 else f"texts[{i}]"
        if len(text) > limit:
            raise HTTPException(422, f"{field} is {len(text)} characters long; the limit is {limit}")
        normalized.append(normalize(text))
        if not tokenize(normalized[-1]):
            raise HTTPException(
                422,
                f"{field} has nothing to classify once normalized: no word, number or emoji is left "
                "after URLs, @mentions, markup and invisible characters are removed",
            )
    return normalized


def refused(exc: Refused) -> HTTPException:
    """The 503 of a request the batcher will not compute."""
    return HTTPException(503, exc.detail, headers={"Retry-After": str(exc.retry_after_s)})


async def disconnect_of(request: Request) -> None:
    """Returns when the client hangs up (the body is read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def classify_texts(
    services: Services, classifier: Classifier, texts: list[str], request: Request
) -> list[dict[str, object]]:
    """Results in input order: the cache is looked up in one round trip, the misses go through
    one batched forward pass and are cached afterwards."""
    metrics = services.metrics
    with services.batcher.arrival():
        normalized = check_texts(texts, services.settings.max_text_chars)
        keys = [cache_key(classifier.run_id, t, classifier.served_precision) for t in normalized]
        try:
            values = await services.cache.get_many(keys)
            metrics.redis_up.set(1)
        except CacheUnavailable:
            values = [None] * len(keys)
            metrics.cache.labels("error").inc(len(keys))
            metrics.redis_up.set(0)
        labels = len(classifier.labels)
        rows = [from_cache_value(v, labels) for v in values]
        misses = [i for i, row in enumerate(rows) if row is None]
        metrics.cache.labels("hit").inc(len(texts) - len(misses))
        if misses:
            metrics.cache.labels("miss").inc(len(misses))
            encoded = classifier.encode([texts[i] for i in misses])
            try:
                ticket = services.batcher.enqueue(classifier, encoded)
            except Refused as exc:
                raise refused(exc) from None
    quantized = np.zeros((len(texts), labels), dtype="<u2")
    if misses:
        try:
            fresh = quantize(await services.batcher.wait(ticket, lambda: disconnect_of(request)))
        except Refused as exc:
            raise refused(exc) from None
        except ClientGone:
            raise HTTPException(CLIENT_CLOSED, "the client closed the connection") from None
        quantized[misses] = fresh
        writes = {keys[i]: to_cache_value(fresh[j]) for j, i in enumerate(misses)}
        task = asyncio.create_task(services.cache.set_many(writes))  # off the request's path
        services.background.add(task)
        task.add_done_callback(services.background.discard)
    hits = [i for i, row in enumerate(rows) if row is not None]
    for i in hits:
        quantized[i] = rows[i]
    missed = set(misses)
    results = render(classifier, quantized, [i not in missed for i in range(len(texts))])
    services.drift.add(r["predicted"] for r in results)
    return results


def _answer(payload: dict[str, object], classifier: Classifier) -> OrjsonResponse:
    return OrjsonResponse(payload, headers={"X-Model-Version": classifier.run_id})


@router.post("/classify", response_model=ClassifyResponse, responses=RESPONSES, operation_id="classify")
async def classify(
    body: ClassifyRequest, request: Request, services: ServicesDep, model: ModelDep
) -> OrjsonResponse:
    """Every domain with its probability, highest first, and the predicted ones."""
    (result,) = await classify_texts(services, model, [body.text], request)
    return _answer({"model_version": model.run_id, **result}, model)


@router.post(
    "/classify/batch",
    response_model=BatchResponse,
    responses=RESPONSES,
    operation_id="classify_batch",
)
async def classify_batch(
    body: BatchRequest, request: Request, services: ServicesDep, model: ModelDep
) -> OrjsonResponse:
    """Several texts in one request; results in input order."""
    limit = services.settings.max_texts_per_batch
    if len(body.texts) > limit:
        raise HTTPException(422, f"texts holds {len(body.texts)} items; the limit is {limit}")
    results = await classify_texts(services, model, body.texts, request)
    return _answer({"model_version": model.run_id, "results": results}, model)
