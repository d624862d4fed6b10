"""What routes depend on, as typed aliases: ``services: ServicesDep``, ``model: ModelDep``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from tweetdomains.predict import Classifier
from tweetdomains_api.batcher import MicroBatcher
from tweetdomains_api.cache import Cache
from tweetdomains_api.drift import DriftTracker
from tweetdomains_api.metrics import ApiMetrics
from tweetdomains_api.model_holder import ModelHolder
from tweetdomains_api.settings import Settings


@dataclass
class Services:
    """What the lifespan builds and the routes use."""

    settings: Settings
    metrics: ApiMetrics
    cache: Cache
    holder: ModelHolder
    batcher: MicroBatcher
    drift: DriftTracker


async def get_services(request: Request) -> Services:
    """The app's services (async: a sync dependency would cost a thread hop per request)."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def model_of(services: Services) -> Classifier:
    """The model snapshot a request runs on (it keeps it even if a swap happens meanwhile)."""
    model = services.holder.current
    if model is None:
        raise HTTPException(503, "no model loaded yet: train and promote one (tweetdomains train)")
    return model


async def get_model(services: ServicesDep) -> Classifier:
    """:func:`model_of`, as a dependency."""
    return model_of(services)


ModelDep = Annotated[Classifier, Depends(get_model)]
