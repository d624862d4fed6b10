"""The collector run: source thread -> bounded queue -> filters and dedupe -> journal -> batching sink.

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
from tweetdomains.dataset import RAW_PREFIX
from tweetdomains.records import Record
from tweetdomains.store import ObjectStore, open_store
from tweetdomains_collector.settings import Settings, get_settings
from tweetdomains_collector.sink import BatchSink, JournalFull
from tweetdomains_collector.sources import CollectorError, Source, build_source
from tweetdomains_collector.stats import CollectorStats, OpsServer

log = logging.getLogger("tweetdomains.collector")

__all__ = ["CollectorError", "CollectorStats", "export_legacy", "run_collector", "spool_root"]


def spool_root(spool_dir: str | Path, store_uri: str) -> Path:
    """The journal folder for one store (so a batch is never uploaded to another store)."""
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
        journal=settings.journal,
        journal_sync_ms=settings.journal_sync_ms,
        journal_max_bytes=settings.journal_max_bytes,
    )
    log.info(
        "collector started",
        extra={"source": settings.source.split(",")[0], "store": store.uri, "spool_depth": stats.spool_depth},
    )
    if stats.spool_depth and not sink.wait_uploaded(settings.drain_seconds):
        log.warning(
            "the store has not taken the earlier run's batches yet; reading on, they stay in the journal",
            extra={"spool_depth": stats.spool_depth},
        )
    intake = _Intake(settings, stats, sink, stop)
    pipe = _Pipe(settings.queue_size)
    worker = threading.Thread(target=_run_source, args=(source, pipe), name="collector-source", daemon=True)
    bar = _Progress(stats, settings.status_seconds, progress)
    try:
        with _signals_set(stop, handle_signals):
            worker.start()
            stats.stop_reason = _consume(intake, pipe, stop, bar, settings)
            source.stop()
            at_limit = stats.stop_reason == "limit"
            if not at_limit:
                # Let the source finish what it is handing over (a stopped stream ends after
                # the line it is reading) while still draining, so no received tweet is lost.
                deadline = time.monotonic() + 5.0
                while worker.is_alive() and time.monotonic() < deadline:
                    with suppress(queue.Empty):
                        intake.take(pipe.queue.get(timeout=0.05))
            for chunk in pipe.close():
                intake.take(chunk, count_only=at_limit)
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
        "journal_depth": stats.journal_depth,
        "journal_torn": stats.journal_torn,
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


class _Intake:
    """The one path every received chunk takes: the filters (language, annotations), the
    ``limit``, then the sink. While the journal is full it does not return (so the caller
    stops reading the stream): it says so once, waits for room and goes on."""

    def __init__(self, settings: Settings, stats: CollectorStats, sink: BatchSink, stop: threading.Event):
        self.languages = settings.language_list
        self.require = settings.require_annotations
        self.limit = settings.limit
        self.drain_seconds = settings.drain_seconds
        self.stats = stats
        self.sink = sink
        self.stop = stop

    def at_limit(self) -> bool:
        return self.limit is not None and self.stats.kept >= self.limit

    def take(self, chunk: list[Record], count_only: bool = False) -> bool:
        """Filter and keep ``chunk``; True once ``limit`` records are kept (the rest counted)."""
        stats = self.stats
        candidates = []
        for record in chunk:
            reason = keep_reason(record, self.languages, self.require)
            if reason is not None:
                stats.drop(reason)
            else:
                candidates.append(record)
        while candidates and not (count_only or self.at_limit()):
            room = len(candidates) if self.limit is None else self.limit - stats.kept
            part, candidates = candidates[:room], candidates[room:]
            self._keep(part)
        for _ in candidates:
            stats.drop("limit")
        return self.at_limit()

    def _keep(self, records: list[Record]) -> None:
        deadline: float | None = None
        while True:
            if self.sink.full():
                self._paused("the journal's byte limit is reached")
            else:
                try:
                    self.sink.add_many(records)
                except JournalFull as exc:
                    records = records[exc.consumed :]
                    if not self.stats.journal_full:
                        self.sink.flush()  # the open batch can then drain and free its space
                    self._paused(str(exc))
                else:
                    self._resumed()
                    return
            if self.stop.is_set():
                deadline = deadline or time.monotonic() + self.drain_seconds
                if time.monotonic() >= deadline:
                    for _ in records:
                        self.stats.drop("journal_full")
                    log.error(
                        "stopping with the journal full: records not kept", extra={"records": len(records)}
                    )
                    return
            self.sink.tick()
            time.sleep(0.1)

    def wait_for_room(self) -> None:
        """Do not read on while the journal is at its byte limit (unless stopping)."""
        while self.sink.full() and not self.stop.is_set():
            self._paused("the journal's byte limit is reached")
            self.sink.tick()
            time.sleep(0.1)
        self._resumed()

    def _paused(self, why: str) -> None:
        if not self.stats.journal_full:
            self.stats.journal_full = True
            self.stats.journal_full_pauses += 1
            log.warning(
                "journal full: stopped reading the stream until batches are stored or space returns",
                extra={"reason": why, "journal_bytes": self.stats.journal_bytes},
            )

    def _resumed(self) -> None:
        if self.stats.journal_full:
            self.stats.journal_full = False
            log.info("journal has room again: reading the stream resumed")


def _consume(intake: _Intake, pipe: _Pipe, stop: threading.Event, bar: _Progress, settings: Settings) -> str:
    deadline = time.monotonic() + settings.max_seconds if settings.max_seconds else None
    while True:
        if stop.is_set():
            return "stopped"
        intake.wait_for_room()
        try:
            chunk = pipe.queue.get(timeout=0.2)
        except queue.Empty:
            if pipe.done.is_set() and pipe.queue.empty():
                return "end of input"
            chunk = []
        if intake.take(chunk):
            return "limit"
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return "max-seconds"
        intake.sink.tick()
        bar.update(now)


def export_legacy(store: ObjectStore, out: TextIO, prefix: str = RAW_PREFIX) -> ParseStats:
    """Write every record under ``prefix`` in the original project's legacy line format."""
    stats = ParseStats()
    for key in store.list(prefix):
        if not key.endswith((".jsonl.gz", ".jsonl")):
            continue
        for record in read_jsonl_bytes(store.get(key), stats):
            out.write(format_legacy_line(record) + "\n")
    return stats
