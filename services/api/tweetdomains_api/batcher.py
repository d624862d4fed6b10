"""Micro-batching with admission control: concurrent requests share one forward pass.

Each request's texts join a queue. A single batching task takes what is queued and runs the
forward pass on one worker thread, so the event loop keeps accepting requests meanwhile.
While a pass runs the next requests accumulate: under load batches fill by themselves.
A batch waits for company (at most ``max_wait_s``) only while other requests are on their way
to the queue (admitted by the routes, still looking up the cache); a lone request runs at once,
and a lone client's small request (its connection the only active one, the batcher idle) runs
its pass on the event loop's thread, without the hop to the worker and back.

Admission is by expected wait: a request is refused with :class:`Overloaded` (503 +
``Retry-After``) when the texts queued ahead of it would take longer than ``queue_budget_s``
to compute, judged from the seconds a text took in recent full passes (an EWMA; before any,
the throughput measured when the model loaded). So the bound follows the host: a busy host
or a bigger model admits fewer texts, never a longer wait. ``max_queued_texts`` pins a bound
in texts instead. A request whose deadline passes, or whose client hangs up, while it is
still queued is removed before any pass runs for it; one already in a pass finishes there.

Every request carries the model snapshot it started with, so a hot swap never changes the
model under a request: a batch that mixes snapshots runs one pass per snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tweetdomains.predict import Classifier
from tweetdomains_api.metrics import ApiMetrics


class Refused(Exception):
    """A request the batcher will not compute; the API answers 503 with ``Retry-After``."""

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


class Overloaded(Refused):
    """The queue is full."""


class DeadlinePassed(Refused):
    """The request waited in the queue past its deadline."""


class ClientGone(Exception):
    """The client disconnected before its texts were computed."""


@dataclass(eq=False)
class Ticket:
    """A request's texts in the queue."""

    classifier: Classifier
    encoded: list[list[int]]
    future: asyncio.Future[np.ndarray]
    queued_at: float = field(default_factory=time.perf_counter)
    taken: bool = False  # in a pass: too late to cancel
    dropped: bool = False  # removed before any pass


# A request of at most this many texts, arriving when nothing else is queued, running or on
# its way, runs its pass at once on the event loop's thread (:meth:`MicroBatcher._run_inline`).
INLINE_MAX_TEXTS = 4
PASS_EWMA_WEIGHT = 0.3  # of the newest full pass in the seconds-per-text estimate
UNMEASURED_SECONDS_PER_TEXT = 0.001  # before any measurement (no model loaded yet)


class MicroBatcher:
    def __init__(
        self,
        max_batch_size: int,
        max_wait_s: float,
        metrics: ApiMetrics,
        max_queued_texts: int = 0,
        deadline_s: float = 30.0,
        queue_budget_s: float = 0.5,
        measured_texts_per_s: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self._max_queued = max_queued_texts  # 0: from queue_budget_s and the measured pass time
        self.queue_budget_s = queue_budget_s
        self._measured_texts_per_s = measured_texts_per_s
        self._seconds_per_text: float | None = None  # EWMA over full passes
        self._estimated: Classifier | None = None  # the model that estimate is of
        self.deadline_s = deadline_s
        self._queue: deque[Ticket] = deque()
        self.queued_texts = 0
        self.arriving = 0  # requests admitted by a route that have not reached the queue yet
        self._changed = asyncio.Event()  # something was queued, or an arrival went away
        self._awaiting_company = False  # a batch waits for the arrivals on their way
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None
        self._in_pass = False

    @property
    def seconds_per_text(self) -> float:
        """Estimated pass time per queued text: recent full passes, else the load-time figure."""
        if self._seconds_per_text is not None:
            return self._seconds_per_text
        rate = self._measured_texts_per_s()
        return 1 / rate if rate else UNMEASURED_SECONDS_PER_TEXT

    @property
    def max_queued_texts(self) -> int:
        """Texts the queue admits now: ``queue_budget_s`` of estimated work (or the pinned bound)."""
        if self._max_queued:
            return self._max_queued
        return max(1, int(self.queue_budget_s / self.seconds_per_text))

    def _observe_pass(self, classifier: Classifier, texts: int, seconds: float) -> None:
        if classifier is not self._estimated:  # a new model: back to its load-time figure
            self._estimated, self._seconds_per_text = classifier, None
        # Only full-ish passes: a lone text's pass costs far more per text than the passes that
        # drain a deep queue, and the estimate is for the latter.
        if texts < max(1, self.max_batch_size // 2):
            return
        sample = seconds / texts
        previous = self._seconds_per_text
        self._seconds_per_text = (
            sample if previous is None else previous + PASS_EWMA_WEIGHT * (sample - previous)
        )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    @contextlib.contextmanager
    def arrival(self) -> Iterator[None]:
        """Held by a route from admission until its texts are queued or answered from the cache:
        while any is held, a batch waits (briefly) for it instead of leaving without it."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1
            if self._awaiting_company:  # else nobody waits for it: a cache hit wakes no task
                self._changed.set()

    @property
    def in_pass(self) -> bool:
        """Whether a forward pass is running."""
        return self._in_pass

    async def predict(
        self,
        classifier: Classifier,
        encoded: list[list[int]],
        disconnected: Callable[[], Awaitable[None]] | None = None,
    ) -> np.ndarray:
        """Probabilities ``[len(encoded), labels]`` from ``classifier``, batched with others."""
        return await self.wait(self.enqueue(classifier, encoded), disconnected)

    def enqueue(self, classifier: Classifier, encoded: list[list[int]], lone_client: bool = False) -> Ticket:
        """Queue the texts (synchronously: a route holding :meth:`arrival` is queued before it
        lets go); :class:`Overloaded` when the queue is full. ``lone_client``: the request came
        on the only connection that sent any lately; if the batcher is idle too, its pass runs
        now (:meth:`_run_inline`)."""
        n = len(encoded)
        if self.queued_texts and self.queued_texts + n > self.max_queued_texts:
            self.metrics.shed.labels("overload").inc()
            wait_s = self.queued_texts * self.seconds_per_text
            raise Overloaded(
                f"the server is over capacity ({self.queued_texts} texts queued, about {wait_s:.1f} s "
                "of work); retry shortly"
            )
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        item = Ticket(classifier, encoded, future)
        if lone_client and self._alone(n):
            self._run_inline(item)
            return item
        self._queue.append(item)
        self.queued_texts += n
        self.metrics.queue_depth.set(self.queued_texts)
        self._changed.set()
        return item

    def _alone(self, texts: int) -> bool:
        """Whether a request of ``texts`` texts is the only work there is: nothing queued, no
        pass running, no other request on its way (the caller may hold an :meth:`arrival`)."""
        return (
            texts <= INLINE_MAX_TEXTS
            and self.queued_texts == 0
            and not self._in_pass
            and self.arriving <= 1
            and (self._task is None or not self._task.done())
        )

    def _run_inline(self, item: Ticket) -> None:
        """The pass of a lone client's small request, on the event loop's own thread: no
        thread hop there and back. The loop is held for that one pass; a request that arrives
        meanwhile (another client starting) is read right after it, when the next pass could
        only have started anyway, and it is no longer alone. Only for a lone client: requests
        of several clients read in one loop iteration would each find the batcher idle and run
        one by one, unbatched."""
        item.taken = True
        self.metrics.queue_wait.observe(0.0)
        self._in_pass = True
        started = time.perf_counter()
        try:
            (result,) = self._forward([item])
        finally:
            self._in_pass = False
        self._observe_pass(item.classifier, len(item.encoded), time.perf_counter() - started)
        if isinstance(result, BaseException):
            item.future.set_exception(result)
        else:
            item.future.set_result(result)

    async def wait(
        self, item: Ticket, disconnected: Callable[[], Awaitable[None]] | None = None
    ) -> np.ndarray:
        """The probabilities of a queued ticket.

        :class:`DeadlinePassed` when the texts waited past the deadline, :class:`ClientGone`
        when ``disconnected`` returned first; in both cases no pass runs for them.
        """
        if item.future.done():  # computed inline
            return item.future.result()
        watcher = asyncio.ensure_future(disconnected()) if disconnected is not None else None
        try:
            waiting: set[asyncio.Future[Any]] = {item.future}
            if watcher is not None:
                waiting.add(watcher)
            done, _ = await asyncio.wait(waiting, timeout=self.deadline_s, return_when="FIRST_COMPLETED")
            if item.future in done:
                return item.future.result()
            if not item.taken:  # still queued: drop it, never compute it
                self._drop(item)
                if watcher is not None and watcher in done:
                    self.metrics.cancelled.inc(len(item.encoded))
                    raise ClientGone()
                self.metrics.shed.labels("deadline").inc()
                raise DeadlinePassed(
                    f"the request waited longer than its {self.deadline_s:g} s deadline; retry shortly"
                )
            return await item.future  # already in a pass: it finishes there
        finally:
            if watcher is not None:
                watcher.cancel()

    def _drop(self, item: Ticket) -> None:
        item.dropped = True
        self.queued_texts -= len(item.encoded)
        self.metrics.queue_depth.set(self.queued_texts)
        if not item.future.done():
            item.future.cancel()

    async def _wait_changed(self, timeout: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _take(self) -> Ticket | None:
        while self._queue:
            item = self._queue.popleft()
            if not item.dropped:
                return item
        return None

    async def _gather(self) -> list[Ticket]:
        first = self._take()
        while first is None:
            await self._wait_changed(None)
            first = self._take()
        items = [first]
        size = len(first.encoded)
        wait_until = time.perf_counter() + self.max_wait_s
        while size < self.max_batch_size:
            item = self._take()
            if item is not None:
                items.append(item)
                size += len(item.encoded)
                continue
            remaining = wait_until - time.perf_counter()
            if self.arriving == 0 or remaining <= 0:
                break  # nobody else on the way: no reason to wait
            self._awaiting_company = True
            try:
                await self._wait_changed(remaining)
            finally:
                self._awaiting_company = False
        for item in items:
            item.taken = True
            self.queued_texts -= len(item.encoded)
        self.metrics.queue_depth.set(self.queued_texts)
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._gather()
            now = time.perf_counter()
            for item in items:
                self.metrics.queue_wait.observe(now - item.queued_at)
            self._in_pass = True
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._forward, items)
            except Exception as exc:  # never let a failure stop the batcher
                results = [exc] * len(items)
            finally:
                self._in_pass = False
            texts = sum(len(item.encoded) for item in items)
            self._observe_pass(items[-1].classifier, texts, time.perf_counter() - started)
            for item, result in zip(items, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)

    def _forward(self, items: list[Ticket]) -> list[np.ndarray | Exception]:
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
            self.metrics.computed.inc(len(encoded))
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
