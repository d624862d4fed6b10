"""Micro-batching: concurrent requests share one forward pass.

Each request's texts join a queue. A single batching task takes what is queued, waits at most
``max_wait_s`` for more (returning at once when the batch is full), and runs the forward pass
on one worker thread, so the event loop keeps accepting requests meanwhile. While a pass runs,
the next requests accumulate: under load batches fill by themselves, and a lone request waits
no longer than ``max_wait_s``.

Every request carries the model snapshot it started with, so a hot swap never changes the
model under a request: a batch that mixes snapshots runs one pass per snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from tweetdomains.predict import Classifier
from tweetdomains_api.metrics import ApiMetrics


@dataclass
class _Item:
    classifier: Classifier
    encoded: list[list[int]]
    future: asyncio.Future[np.ndarray]
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(self, max_batch_size: int, max_wait_s: float, metrics: ApiMetrics) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def predict(self, classifier: Classifier, encoded: list[list[int]]) -> np.ndarray:
        """Probabilities ``[len(encoded), labels]`` from ``classifier``, batched with others."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Item(classifier, encoded, future))
        return await future

    async def _gather(self) -> list[_Item]:
        items = [await self._queue.get()]
        size = len(items[0].encoded)
        deadline = time.perf_counter() + self.max_wait_s
        while size < self.max_batch_size:
            if self._queue.empty():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            items.append(item)
            size += len(item.encoded)
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            now = time.perf_counter()
            for item in items:
                self.metrics.queue_wait.observe(now - item.queued_at)
            try:
                results = await loop.run_in_executor(self._executor, self._forward, items)
            except Exception as exc:  # never let a failure stop the batcher
                results = [exc] * len(items)
            for item, result in zip(items, results, strict=True):
                if item.future.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

    def _forward(self, items: list[_Item]) -> list[np.ndarray | Exception]:
        """One pass per model snapshot in ``items``; a failing model fails only its requests."""
        started = time.perf_counter()
        results: list[np.ndarray | Exception] = [RuntimeError("not computed")] * len(items)
        by_model: dict[int, list[int]] = {}
        for index, item in enumerate(items):
            by_model.setdefault(id(item.classifier), []).append(index)
        for indices in by_model.values():
            classifier = items[indices[0]].classifier
            encoded = [seq for i in indices for seq in items[i].encoded]
            self.metrics.batch_size.observe(len(encoded))
            try:
                probs = classifier.predict_ids(encoded, batch_size=max(len(encoded), 1))
            except Exception as exc:
                for i in indices:
                    results[i] = exc
                continue
            offset = 0
            for i in indices:
                n = len(items[i].encoded)
                results[i] = probs[offset : offset + n]
                offset += n
        self.metrics.inference.observe(time.perf_counter() - started)
        return results
