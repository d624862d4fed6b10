"""The micro-batcher in-process: concurrent requests share forward passes and get exactly the
answers they would get alone, each from the model snapshot it started with."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from tests.integration.api_helpers import LABELS, WORDS
from tweetdomains.model import ModelConfig, build_model
from tweetdomains.predict import Classifier
from tweetdomains.vocab import Vocabulary
from tweetdomains_api.batcher import MicroBatcher, Overloaded
from tweetdomains_api.metrics import ApiMetrics

TEXTS = [
    "taylor swift album",
    "goal",
    "",
    "arsenal match team goal goal goal nike shoes brand music song album",
    "nike",
    "unknown words only here",
    "music song",
]


def classifier(labels: list[str] = LABELS, bidirectional: bool = False, seed: int = 0) -> Classifier:
    torch.manual_seed(seed)
    vocab = Vocabulary.build([WORDS], min_count=1)
    config = ModelConfig(
        vocab_size=len(vocab),
        num_labels=len(labels),
        embedding_dim=8,
        hidden_dim=8,
        bidirectional=bidirectional,
    )
    return Classifier(build_model(config), vocab, labels, np.full(len(labels), 0.5, dtype=np.float32))


def alone(model: Classifier, text: str) -> np.ndarray:
    return model.predict_ids(model.encode([text]))[0]


@pytest.mark.parametrize("bidirectional", [False, True])
def test_batched_predictions_equal_one_by_one(bidirectional: bool) -> None:
    model = classifier(bidirectional=bidirectional)
    batched = model.predict_proba(TEXTS * 3, batch_size=4)
    expected = np.stack([alone(model, t) for t in TEXTS * 3])
    np.testing.assert_allclose(batched, expected, atol=1e-6)


def test_concurrent_requests_share_passes_and_keep_their_answers() -> None:
    model = classifier()
    metrics = ApiMetrics()

    async def scenario() -> list[np.ndarray]:
        batcher = MicroBatcher(max_batch_size=64, max_wait_s=0.02, metrics=metrics)
        await batcher.start()
        try:
            requests = [batcher.predict(model, model.encode([t])) for t in TEXTS * 5]
            return list(await asyncio.gather(*requests))
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    for text, probs in zip(TEXTS * 5, results, strict=True):
        assert probs.shape == (1, len(LABELS))
        np.testing.assert_allclose(probs[0], alone(model, text), atol=1e-6)
    passes = metrics.registry.get_sample_value("tweetdomains_batch_size_count")
    texts = metrics.registry.get_sample_value("tweetdomains_batch_size_sum")
    assert texts == len(TEXTS) * 5
    assert passes is not None and passes < len(TEXTS) * 5, "concurrent requests were batched"


def test_a_lone_clients_request_runs_at_once_and_any_other_queues() -> None:
    model = classifier()
    ids = model.encode(["taylor swift album"])

    async def scenario() -> None:
        batcher = MicroBatcher(max_batch_size=64, max_wait_s=0.02, metrics=ApiMetrics())
        await batcher.start()
        try:
            lone = batcher.enqueue(model, ids, lone_client=True)
            assert lone.future.done(), "computed inline, before any await"
            queued = batcher.enqueue(model, ids)  # not known to be alone: the batcher's pass
            assert not queued.future.done()
            np.testing.assert_allclose(await batcher.wait(queued), lone.future.result())
            first = batcher.enqueue(model, ids)
            behind = batcher.enqueue(model, ids, lone_client=True)  # something is queued
            assert not behind.future.done()
            await asyncio.gather(batcher.wait(first), batcher.wait(behind))
        finally:
            await batcher.stop()

    asyncio.run(scenario())


def test_full_batches_flush_without_waiting() -> None:
    model = classifier()
    metrics = ApiMetrics()

    async def scenario() -> float:
        # A wait far longer than the test: only a full batch can release these requests.
        batcher = MicroBatcher(max_batch_size=4, max_wait_s=30, metrics=metrics)
        await batcher.start()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.wait_for(
                asyncio.gather(*(batcher.predict(model, model.encode([t])) for t in TEXTS[:4])), 10
            )
            return loop.time() - started
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) < 10


def test_requests_run_on_their_own_snapshot_when_models_mix() -> None:
    old, new = classifier(seed=1), classifier(labels=["A", "B", "C"], seed=2)
    metrics = ApiMetrics()

    async def scenario() -> list[np.ndarray]:
        batcher = MicroBatcher(max_batch_size=64, max_wait_s=0.02, metrics=metrics)
        await batcher.start()
        try:
            requests = [batcher.predict(m, m.encode([t])) for t in TEXTS for m in (old, new)]
            return list(await asyncio.gather(*requests))
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    pairs = [(t, m) for t in TEXTS for m in (old, new)]
    for (text, model), probs in zip(pairs, results, strict=True):
        assert probs.shape == (1, len(model.labels))
        np.testing.assert_allclose(probs[0], alone(model, text), atol=1e-6)


def test_a_failing_model_fails_its_requests_only() -> None:
    good, broken = classifier(), classifier(seed=3)

    def explode(*args: object, **kwargs: object) -> np.ndarray:
        raise RuntimeError("boom")

    broken.predict_ids = explode
    metrics = ApiMetrics()

    async def scenario() -> list[BaseException | np.ndarray]:
        batcher = MicroBatcher(max_batch_size=64, max_wait_s=0.02, metrics=metrics)
        await batcher.start()
        try:
            # Both snapshots in one batch: the broken one must not take the good one down.
            mixed = await asyncio.gather(
                batcher.predict(broken, broken.encode(["x"])),
                batcher.predict(good, good.encode(["goal"])),
                return_exceptions=True,
            )
            after = await batcher.predict(good, good.encode(["goal"]))  # the batcher still serves
            return [*mixed, after]
        finally:
            await batcher.stop()

    failed, fine, after = asyncio.run(scenario())
    assert isinstance(failed, RuntimeError) and "boom" in str(failed)
    for probs in (fine, after):
        assert isinstance(probs, np.ndarray)
        np.testing.assert_allclose(probs[0], alone(good, "goal"), atol=1e-6)


def test_the_queue_admits_the_texts_its_budget_of_time_computes() -> None:
    model = classifier()
    metrics = ApiMetrics()
    encoded = model.encode(["taylor swift album"])

    async def scenario() -> tuple[int, int, int]:
        # Not started: nothing drains the queue. 100 texts/s measured at load, half a second
        # of budget: 50 texts are admitted, the 51st is refused.
        batcher = MicroBatcher(
            max_batch_size=8,
            max_wait_s=0.0,
            metrics=metrics,
            queue_budget_s=0.5,
            measured_texts_per_s=lambda: 100.0,
        )
        admitted = 0
        try:
            while True:
                batcher.enqueue(model, encoded)
                admitted += 1
        except Overloaded:
            pass
        # Full passes that took 0.1 s a text: the budget now holds 5 texts.
        batcher._observe_pass(model, 8, 0.8)
        slower = batcher.max_queued_texts
        pinned = MicroBatcher(8, 0.0, metrics, max_queued_texts=7, measured_texts_per_s=lambda: 100.0)
        return admitted, slower, pinned.max_queued_texts

    admitted, slower, pinned = asyncio.run(scenario())
    assert admitted == 50
    assert slower == 5, "the bound follows the measured pass time"
    assert pinned == 7, "max_queued_texts pins the bound in texts"
    assert metrics.registry.get_sample_value("tweetdomains_shed_total", {"reason": "overload"}) == 1
