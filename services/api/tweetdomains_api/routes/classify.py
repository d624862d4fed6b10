"""``POST /classify`` and ``POST /classify/batch``."""

from __future__ import annotations

import numpy as np
import orjson
from fastapi import APIRouter, HTTPException, Request
from starlette.responses import Response

from tweetdomains.predict import Classifier
from tweetdomains.text import normalize_many, tokenize
from tweetdomains_api.answers import Rendered, from_cache_value, quantize, renderer_for, to_cache_value
from tweetdomains_api.batcher import ClientGone, Refused
from tweetdomains_api.cache import CacheUnavailable, cache_key
from tweetdomains_api.deps import Services, model_of
from tweetdomains_api.errors import CLIENT_CLOSED, error_responses
from tweetdomains_api.middleware import ONLY_CONNECTION
from tweetdomains_api.schemas import BatchRequest, BatchResponse, ClassifyRequest, ClassifyResponse

router = APIRouter(tags=["classify"])
RESPONSES = error_responses(401, 413, 422, 431, 503)


NOTHING_LEFT = (
    "has nothing to classify once normalized: no word, number or emoji is left after URLs, "
    "@mentions, markup and invisible characters are removed"
)


def _field(texts: list[str], i: int) -> str:
    return "text" if len(texts) == 1 else f"texts[{i}]"


def check_texts(texts: list[str], limit: int) -> list[str]:
    """The texts normalized (once: the cache key hashes them too); 422 for a text over the hard
    cap. Whether anything is left to classify is checked on the cache's misses (:func:`tokens_of`):
    a cached text had."""
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise HTTPException(
                422, f"{_field(texts, i)} is {len(text)} characters long; the limit is {limit}"
            )
    return normalize_many(texts)


def tokens_of(texts: list[str], normalized: list[str], indices: list[int]) -> list[list[str]]:
    """The tokens of ``normalized[i]`` for each index; 422 for the first with none."""
    out = []
    for i in indices:
        tokens = tokenize(normalized[i])
        if not tokens:
            raise HTTPException(422, f"{_field(texts, i)} {NOTHING_LEFT}")
        out.append(tokens)
    return out


def refused(exc: Refused) -> HTTPException:
    """The 503 of a request the batcher will not compute."""
    return HTTPException(503, exc.detail, headers={"Retry-After": str(exc.retry_after_s)})


async def disconnect_of(request: Request) -> None:
    """Returns when the client hangs up (the body is read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def classify_texts(
    services: Services, classifier: Classifier, texts: list[str], request: Request
) -> list[Rendered]:
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
            metrics.cache_error.inc(len(keys))
            metrics.redis_up.set(0)
        labels = len(classifier.labels)
        rows = [from_cache_value(v, labels) for v in values]
        misses = [i for i, row in enumerate(rows) if row is None]
        if len(misses) < len(texts):
            metrics.cache_hit.inc(len(texts) - len(misses))
        if misses:
            metrics.cache_miss.inc(len(misses))
            encoded = classifier.encode_tokens(tokens_of(texts, normalized, misses))
            try:
                lone = request.scope.get(ONLY_CONNECTION, False) is True
                ticket = services.batcher.enqueue(classifier, encoded, lone_client=lone)
            except Refused as exc:
                raise refused(exc) from None
    renderer = renderer_for(classifier)
    answers: dict[int, Rendered] = {}
    hits = [i for i, row in enumerate(rows) if row is not None]
    if hits:
        # A hit's cache value names its answer: one rendered lately is not rendered again.
        hit_values = [v for v, row in zip(values, rows, strict=True) if v is not None and row is not None]
        rendered = renderer.render_cached(hit_values, np.stack([rows[i] for i in hits]))
        answers.update(zip(hits, rendered, strict=True))
    if misses:
        try:
            fresh = quantize(await services.batcher.wait(ticket, lambda: disconnect_of(request)))
        except Refused as exc:
            raise refused(exc) from None
        except ClientGone:
            raise HTTPException(CLIENT_CLOSED, "the client closed the connection") from None
        # Never waits: the in-process layer is written now, Redis by the cache's own writer task.
        await services.cache.set_many({keys[i]: to_cache_value(fresh[j]) for j, i in enumerate(misses)})
        answers.update(zip(misses, renderer.render(fresh, [False] * len(misses)), strict=True))
    results = [answers[i] for i in range(len(texts))]
    services.drift.add(r.predicted for r in results)
    return results


def _answer(body: bytes, classifier: Classifier) -> Response:
    # Rendered bytes, not a model: the routes' response_model documents them, and FastAPI
    # neither validates nor re-serializes a Response.
    return Response(body, media_type="application/json", headers={"X-Model-Version": classifier.run_id})


# The routes take the app's services from the request rather than as dependencies: FastAPI
# resolves a dependency per request, a cost the cheapest answers (cache hits) feel.
@router.post("/classify", response_model=ClassifyResponse, responses=RESPONSES, operation_id="classify")
async def classify(body: ClassifyRequest, request: Request) -> Response:
    """Every domain with its probability, highest first, and the predicted ones."""
    services: Services = request.app.state.services
    model = model_of(services)
    (result,) = await classify_texts(services, model, [body.text], request)
    head = b'{"model_version":' + orjson.dumps(model.run_id) + b","
    return _answer(head + result.json[1:], model)


@router.post(
    "/classify/batch",
    response_model=BatchResponse,
    responses=RESPONSES,
    operation_id="classify_batch",
)
async def classify_batch(body: BatchRequest, request: Request) -> Response:
    """Several texts in one request; results in input order."""
    services: Services = request.app.state.services
    model = model_of(services)
    limit = services.settings.max_texts_per_batch
    if len(body.texts) > limit:
        raise HTTPException(422, f"texts holds {len(body.texts)} items; the limit is {limit}")
    results = await classify_texts(services, model, body.texts, request)
    head = b'{"model_version":' + orjson.dumps(model.run_id) + b',"results":['
    return _answer(head + b",".join(r.json for r in results) + b"]}", model)
