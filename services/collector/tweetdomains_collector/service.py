"""The collector run: source thread -> bounded queue -> filters and dedupe -> batching sink.

:func:`run_collector` is the in-process entry point the CLI, the demo and the tests share.
The queue between the source and the sink is bounded, so a fast source waits for the sink
(replay and simulate) and memory stays flat whatever the stream rate. SIGTERM and SIGINT stop
the source, and everything already received is filtered, batched and written before it
returns.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TextIO

from tweetdomains.codecs import ParseStats, format_legacy_line, keep_reason, read_jsonl_bytes
from tweetdomains.records import Record
from tweetdomains.store import ObjectStore, open_store
from tweetdomains_collector.settings import Settings, get_settings
from tweetdomains_collector.sink import BatchSink
from tweetdomains_collector.sources import CollectorError, Source, build_source
from tweetdomains_collector.stats import CollectorStats, OpsServer

log = logging.getLogger("tweetdomains.collector")

__all__ = ["CollectorError", "CollectorStats", "export_legacy", "run_collector", "spool_root"]


def spool_root(spool_dir: str | Path, store_uri: str) -> Path:
    """The spool folder for one store (so a batch is never retried against another store)."""
    digest = hashlib.sha1(store_uri.encode("utf-8")).hexdigest()[:16]
    return Path(spool_dir).expanduser() / digest


@contextmanager
def _signals_set(stop: threading.Event, enabled: bool) -> Iterator[None]:
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            log.info("stopping: flushing what was received", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Progress:
    """A tqdm bar on a terminal; otherwise a status line in the log every ``every`` seconds."""

    def __init__(self, stats: CollectorStats, every: float, enabled: bool | None) -> None:
        self.stats = stats
        self.every = every
        self.bar: Any = None
        self._shown = 0
        self._last = time.monotonic()
        if enabled is None:
            enabled = sys.stderr.isatty()
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(unit=" tweets", desc="kept", dynamic_ncols=True, file=sys.stderr)

    def update(self, now: float) -> None:
        if self.bar is not None:
            if now - self._last >= 0.25:
                self.bar.update(self.stats.kept - self._shown)
                self._shown = self.stats.kept
                s = self.stats
                self.bar.set_postfix_str(
                    f"received={s.received} written={s.written} spool={s.spool_depth}", refresh=False
                )
                self._last = now
        elif now - self._last >= self.every:
            log.info(self.stats.status_line())
            self._last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.stats.kept - self._shown)
            self.bar.close()


def run_collector(
    settings: Settings | None = None,
    *,
    store: ObjectStore | None = None,
    stop: threading.Event | None = None,
    handle_signals: bool = True,
    progress: bool | None = None,
    stats: CollectorStats | None = None,
) -> CollectorStats:
    """Collect from ``settings.source`` into the store until the input ends, ``limit`` records
    are kept, ``max_seconds`` pass, or ``stop`` is set (SIGTERM/SIGINT set it too).

    ``stats`` (optional) is updated live, for callers that watch the run from another thread.
    Returns the run's counts. Raises :class:`CollectorError` (with an exit code) for a missing
    or rejected token or a source that fails; what was received is written first.
    """
    settings = settings or get_settings()
    stats = stats if stats is not None else CollectorStats()
    stats.source = settings.source
    store = store if store is not None else open_store(settings.store)
    stop = stop or threading.Event()
    source = build_source(settings, stats)
    ops = (
        OpsServer(stats, settings.metrics_host, settings.metrics_port).start()
        if settings.metrics_port
        else None
    )
    sink = BatchSink(
        store,
        stats,
        spool_dir=spool_root(settings.spool_dir, store.uri),
        batch_records=settings.batch_records,
        batch_bytes=settings.batch_bytes,
        batch_seconds=settings.batch_seconds,
        dedupe_window=settings.dedupe_window,
        compress_level=settings.compress_level,
        spool_retry_start=settings.spool_retry_start,
        spool_retry_max=settings.spool_retry_max,
    )
    log.info(
        "collector started",
        extra={"source": settings.source.split(",")[0], "store": store.uri, "spool_depth": stats.spool_depth},
    )
    pipe = _Pipe(settings.queue_size)
    worker = threading.Thread(target=_run_source, args=(source, pipe), name="collector-source", daemon=True)
    bar = _Progress(stats, settings.status_seconds, progress)
    try:
        with _signals_set(stop, handle_signals):
            worker.start()
            stats.stop_reason = _consume(settings, stats, sink, pipe, stop, bar)
            source.stop()
            at_limit = stats.stop_reason == "limit"
            if not at_limit:
                # Let the source finish what it is handing over (a stopped stream ends after
                # the line it is reading) while still draining, so no received tweet is lost.
                deadline = time.monotonic() + 5.0
                while worker.is_alive() and time.monotonic() < deadline:
                    with suppress(queue.Empty):
                        _drain(settings, stats, sink, [pipe.queue.get(timeout=0.05)], count_only=False)
            _drain(settings, stats, sink, pipe.close(), count_only=at_limit)
            worker.join(timeout=1.0)
    finally:
        bar.close()
        sink.close(settings.drain_seconds)
        if ops is not None:
            ops.stop()
        stats.elapsed = time.time() - stats.started_at
    if source.error is not None:
        stats.stop_reason = "error"
    log.info("collector stopped", extra={"reason": stats.stop_reason, **_summary(stats)})
    if source.error is not None:
        if isinstance(source.error, CollectorError):
            raise source.error
        raise CollectorError(f"source {source.name} failed: {source.error}", exit_code=1) from source.error
    return stats


def _summary(stats: CollectorStats) -> dict[str, Any]:
    return {
        "received": stats.received,
        "kept": stats.kept,
        "written": stats.written,
        "spooled": stats.spooled,
        "spool_depth": stats.spool_depth,
    }


class _Pipe:
    """A bounded queue whose close() is race-free: a chunk is either accepted before the
    close (and returned by it) or refused (and the source told to stop)."""

    def __init__(self, size: int) -> None:
        self.queue: queue.Queue[list[Record]] = queue.Queue(maxsize=size)
        self.lock = threading.Lock()
        self.closed = False
        self.done = threading.Event()

    def put(self, chunk: list[Record]) -> bool:
        while True:
            with self.lock:
                if self.closed:
                    return False
                try:
                    self.queue.put_nowait(chunk)
                    return True
                except queue.Full:
                    pass
            time.sleep(0.002)

    def close(self) -> list[list[Record]]:
        with self.lock:
            self.closed = True
            leftover = []
            while True:
                try:
                    leftover.append(self.queue.get_nowait())
                except queue.Empty:
                    return leftover


def _run_source(source: Source, pipe: _Pipe) -> None:
    try:
        source.run(pipe.put)
    except BaseException as exc:
        source.error = exc
        if not isinstance(exc, CollectorError):
            log.exception("source failed", extra={"source": source.name})
    finally:
        pipe.done.set()


def _consume(
    settings: Settings,
    stats: CollectorStats,
    sink: BatchSink,
    pipe: _Pipe,
    stop: threading.Event,
    bar: _Progress,
) -> str:
    languages = settings.language_list
    require = settings.require_annotations
    limit = settings.limit
    deadline = time.monotonic() + settings.max_seconds if settings.max_seconds else None
    while True:
        if stop.is_set():
            return "stopped"
        try:
            chunk = pipe.queue.get(timeout=0.2)
        except queue.Empty:
            if pipe.done.is_set() and pipe.queue.empty():
                return "end of input"
            chunk = []
        for index, record in enumerate(chunk):
            reason = keep_reason(record, languages, require)
            if reason is not None:
                stats.drop(reason)
            elif sink.add(record) and limit is not None and stats.kept >= limit:
                for _ in chunk[index + 1 :]:
                    stats.drop("limit")
                return "limit"
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return "max-seconds"
        sink.tick()
        bar.update(now)


def _drain(
    settings: Settings, stats: CollectorStats, sink: BatchSink, chunks: list[list[Record]], count_only: bool
) -> None:
    languages = settings.language_list
    limit = settings.limit
    for chunk in chunks:
        for record in chunk:
            if count_only or (limit is not None and stats.kept >= limit):
                stats.drop("limit")
                continue
            reason = keep_reason(record, languages, settings.require_annotations)
            if reason is not None:
                stats.drop(reason)
            else:
                sink.add(record)


def export_legacy(store: ObjectStore, out: TextIO, prefix: str = "raw/") -> ParseStats:
    """Write every record under ``prefix`` in the original project's legacy line format."""
    stats = ParseStats()
    for key in store.list(prefix):
        if not key.endswith((".jsonl.gz", ".jsonl")):
            continue
        for record in read_jsonl_bytes(store.get(key), stats):
            out.write(format_legacy_line(record) + "\n")
    return stats
