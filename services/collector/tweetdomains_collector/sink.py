"""The durable batching sink: records in, gzip JSONL batches out, nothing lost on the way.

A batch is closed when it reaches a record count, a size (JSONL bytes before compression) or
an age, the buffering hints Firehose users know. A writer thread compresses it and puts it
under ``raw/YYYY/MM/DD/HH/<batch-id>.jsonl.gz`` (the hour is the UTC hour its first record
arrived; the id is unique, the put atomic). When the store fails, the batch goes to a local
spool folder instead (written atomically), and a spool thread retries it with exponential
back-off until it lands; a new run uploads what an earlier run left there.
"""

from __future__ import annotations

import gzip
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tweetdomains.records import Record
from tweetdomains.store import LocalStore, ObjectStore, StoreError
from tweetdomains_collector.stats import CollectorStats

log = logging.getLogger("tweetdomains.collector")

SPOOL_SUFFIX = ".jsonl.gz"


def batch_key(first_arrival: float) -> str:
    """A unique store key for a batch whose first record arrived at ``first_arrival``."""
    moment = datetime.fromtimestamp(first_arrival, UTC)
    return f"raw/{moment:%Y/%m/%d/%H}/{moment:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex}{SPOOL_SUFFIX}"


class DedupeWindow:
    """The last ``size`` tweet ids seen (least recently seen forgotten first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, tweet_id: str | None) -> bool:
        """True if ``tweet_id`` is in the window; otherwise remember it. None is never a duplicate."""
        if tweet_id is None or self.size <= 0:
            return False
        ids = self._ids
        if tweet_id in ids:
            ids.move_to_end(tweet_id)
            return True
        ids[tweet_id] = None
        if len(ids) > self.size:
            ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)


class Spool:
    """A local folder of batches that could not be stored yet, laid out like the store.

    It is a :class:`LocalStore`: the same atomic temp-file + fsync + rename writes.
    """

    def __init__(self, root: str | Path) -> None:
        self.files = LocalStore(root)
        self.root = self.files.root

    def save(self, key: str, data: bytes) -> Path:
        """Write ``data`` for ``key`` atomically; :class:`StoreError` if the disk refuses."""
        self.files.put(key, data)
        return self.root / key

    def pending(self) -> list[tuple[str, Path]]:
        """(store key, file) of every spooled batch, oldest key first."""
        return [(key, self.root / key) for key in self.files.list() if key.endswith(SPOOL_SUFFIX)]


@dataclass
class _Batch:
    key: str
    lines: list[bytes] = field(default_factory=list)
    size: int = 0


def _count_lines(data: bytes) -> int:
    try:
        return gzip.decompress(data).count(b"\n")
    except (OSError, EOFError):
        return 0


class BatchSink:
    """Buffers kept records into batches and gets every batch into the store or the spool.

    Call :meth:`add` for each record, :meth:`tick` now and then (for the age limit) and
    :meth:`close` at the end. ``stats`` is updated as batches land.
    """

    def __init__(
        self,
        store: ObjectStore,
        stats: CollectorStats,
        *,
        spool_dir: str | Path,
        batch_records: int = 100_000,
        batch_bytes: int = 5_000_000,
        batch_seconds: float = 300.0,
        dedupe_window: int = 200_000,
        compress_level: int = 6,
        spool_retry_start: float = 1.0,
        spool_retry_max: float = 60.0,
    ) -> None:
        self.store = store
        self.stats = stats
        self.spool = Spool(spool_dir)
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.batch_seconds = batch_seconds
        self.compress_level = compress_level
        self.retry_start = spool_retry_start
        self.retry_max = spool_retry_max
        self.window = DedupeWindow(dedupe_window)
        self._batch: _Batch | None = None
        self._opened_at = 0.0
        self._lock = threading.Lock()  # guards stats written by the writer and spool threads
        self._closing = threading.Event()
        self._spool_wake = threading.Event()
        # At most two closed batches wait for the writer: memory stays bounded.
        self._outbox: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._writer = threading.Thread(target=self._write_loop, name="collector-writer", daemon=True)
        self._spooler = threading.Thread(target=self._spool_loop, name="collector-spool", daemon=True)
        self.stats.spool_depth = len(self.spool.pending())
        if self.stats.spool_depth:
            log.info(
                "found spooled batches from an earlier run", extra={"spool_depth": self.stats.spool_depth}
            )
        self._writer.start()
        self._spooler.start()

    # ------------------------------------------------------------------ producer side

    def add(self, record: Record, now: float | None = None) -> bool:
        """Buffer one kept record; False (and counted) if its id was seen recently."""
        if self.window.seen(record.id):
            self.stats.duplicates += 1
            return False
        line = record.to_json().encode("utf-8", "replace") + b"\n"
        batch = self._batch
        if batch is None:
            now = time.time() if now is None else now
            batch = self._batch = _Batch(batch_key(now))
            self._opened_at = time.monotonic()
        batch.lines.append(line)
        batch.size += len(line)
        self.stats.kept += 1
        if len(batch.lines) >= self.batch_records or batch.size >= self.batch_bytes:
            self.flush()
        return True

    def tick(self) -> None:
        """Close the open batch if it is older than the age limit."""
        if self._batch is not None and time.monotonic() - self._opened_at >= self.batch_seconds:
            self.flush()

    def flush(self) -> None:
        """Hand the open batch (if any) to the writer."""
        batch, self._batch = self._batch, None
        if batch is not None and batch.lines:
            self._outbox.put(batch)

    def close(self, drain_seconds: float = 10.0) -> None:
        """Flush, wait for the writer, then give the spool up to ``drain_seconds`` to empty.

        Whatever is still spooled afterwards stays on disk for the next run.
        """
        self.flush()
        self._outbox.put(None)
        self._writer.join()
        deadline = time.monotonic() + drain_seconds
        self._spool_wake.set()
        while self.stats.spool_depth and time.monotonic() < deadline:
            time.sleep(0.05)
        self._closing.set()
        self._spool_wake.set()
        self._spooler.join(timeout=max(1.0, self.retry_max))
        if self.stats.spool_depth:
            log.warning(
                "batches left in the spool for the next run",
                extra={"spool_depth": self.stats.spool_depth, "spool_dir": str(self.spool.root)},
            )

    # ------------------------------------------------------------------ writer thread

    def _write_loop(self) -> None:
        while True:
            batch = self._outbox.get()
            if batch is None:
                return
            data = gzip.compress(b"".join(batch.lines), compresslevel=self.compress_level, mtime=0)
            self._deliver(batch.key, data, len(batch.lines))

    def _deliver(self, key: str, data: bytes, count: int) -> None:
        if not self.stats.spool_depth:
            try:
                self.store.put(key, data)
            except Exception as exc:  # any backend failure: the batch must not be lost
                with self._lock:
                    self.stats.store_errors += 1
                log.warning("store write failed; spooling the batch", extra={"key": key, "error": str(exc)})
            else:
                self._landed(count, len(data))
                return
        # The spool is not empty (the store is down, or was): keep batches in order behind it.
        try:
            self.spool.save(key, data)
        except StoreError as exc:
            log.error(
                "cannot spool a batch: records lost", extra={"key": key, "records": count, "error": str(exc)}
            )
            return
        with self._lock:
            self.stats.spooled += count
            self.stats.batches_spooled += 1
            self.stats.spool_depth += 1
        self._spool_wake.set()

    def _landed(self, count: int, size: int) -> None:
        with self._lock:
            self.stats.written += count
            self.stats.batches_written += 1
            self.stats.bytes_written += size

    # ------------------------------------------------------------------ spool thread

    def _spool_loop(self) -> None:
        delay = self.retry_start
        while not self._closing.is_set():
            pending = self.spool.pending()
            with self._lock:
                self.stats.spool_depth = len(pending)
            if not pending:
                self._spool_wake.wait(timeout=1.0)
                self._spool_wake.clear()
                continue
            failed = False
            for key, path in pending:
                if self._closing.is_set():
                    return
                data = path.read_bytes()
                try:
                    self.store.put(key, data)
                except Exception as exc:
                    with self._lock:
                        self.stats.store_errors += 1
                    log.warning(
                        "store still failing; will retry the spool",
                        extra={"spool_depth": len(pending), "retry_in_s": round(delay, 2), "error": str(exc)},
                    )
                    failed = True
                    break
                path.unlink(missing_ok=True)
                self._landed(_count_lines(data), len(data))
                with self._lock:
                    self.stats.spool_depth = max(0, self.stats.spool_depth - 1)
                log.info("spooled batch stored", extra={"key": key})
            if failed:
                self._spool_wake.wait(timeout=delay)
                self._spool_wake.clear()
                delay = min(delay * 2, self.retry_max)
            else:
                delay = self.retry_start
