"""The durable batching sink: records in, gzip JSONL batches out, nothing lost on the way.

Each kept record is first appended to the write-ahead :class:`~.journal.Journal` (synced every
``TWEETDOMAINS_JOURNAL_SYNC_MS``); the open journal segment is the open batch. A batch is
closed (its segment sealed) when it reaches a record count, a size (JSONL bytes before
compression) or an age, the buffering hints Firehose users know. An uploader thread encodes it
with :func:`codecs.write_jsonl_gz` and puts it under ``raw/YYYY/MM/DD/HH/<batch-id>.jsonl.gz``
(the hour is the UTC hour its first record arrived; the id is the journal's id and the
segment's number, so a re-upload after a crash overwrites the same key). The segment is
deleted only once a read-back of the object matches what was sent. When the store fails the
segments simply wait in the journal (the "spool") and the uploader retries, oldest first, with
exponential back-off; a new run uploads what an earlier run left there before it reads on.

With ``journal=False`` (the benchmark's comparison) batches live only in memory.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from tweetdomains.codecs import write_jsonl_gz
from tweetdomains.dataset import raw_batch_key
from tweetdomains.records import Record
from tweetdomains.store import LocalStore, ObjectStore, S3Store
from tweetdomains_collector.journal import Journal, JournalFull, JournalLine, Segment
from tweetdomains_collector.stats import CollectorStats

log = logging.getLogger("tweetdomains.collector")

IN_MEMORY_BATCHES = 2  # sealed batches kept in memory for the uploader; older ones are re-read


def batch_key(first_arrival: float, journal_id: str, seq: int) -> str:
    """The store key of journal ``journal_id``'s segment ``seq`` (first record at ``first_arrival``)."""
    return raw_batch_key(first_arrival, f"{journal_id}{seq:016x}")


def confirm_stored(store: ObjectStore, key: str, data: bytes) -> None:
    """Read back what the store holds under ``key``: its size and, on S3, its ETag (the MD5
    of a single-part put); OSError if it is not ``data``."""
    if isinstance(store, S3Store):
        head = store.client.head_object(Bucket=store.bucket, Key=store.prefix + key)
        ok = head["ContentLength"] == len(data) and head["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    elif isinstance(store, LocalStore):
        ok = (store.root / key).stat().st_size == len(data)
    else:
        stored = store.get(key)
        ok = len(stored) == len(data) and hashlib.md5(stored).digest() == hashlib.md5(data).digest()
    if not ok:
        raise OSError(f"read-back of {key} does not match what was sent")


class DedupeWindow:
    """The last ``size`` tweet ids seen (least recently seen forgotten first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, tweet_id: str | None) -> bool:
        return tweet_id is not None and self.size > 0 and tweet_id in self._ids

    def remember(self, tweet_id: str | None) -> None:
        """Put ``tweet_id`` in the window as the most recent."""
        if tweet_id is None or self.size <= 0:
            return
        ids = self._ids
        ids[tweet_id] = None
        ids.move_to_end(tweet_id)
        if len(ids) > self.size:
            ids.popitem(last=False)

    def seen(self, tweet_id: str | None) -> bool:
        """True if ``tweet_id`` is in the window; otherwise remember it. None is never a duplicate."""
        if tweet_id in self:
            self._ids.move_to_end(tweet_id)  # type: ignore[arg-type]
            return True
        self.remember(tweet_id)
        return False

    def __len__(self) -> int:
        return len(self._ids)


class BatchSink:
    """Journals kept records, batches them and gets every batch into the store exactly once.

    Call :meth:`add_many` (or :meth:`add`) for kept records, :meth:`tick` now and then (the
    age limit, the journal's byte limit) and :meth:`close` at the end. ``stats`` is updated
    as batches land. :class:`JournalFull` from :meth:`add_many` means: nothing of that call
    was kept, stop reading and try again later.
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
        journal: bool = True,
        journal_sync_ms: int = 200,
        journal_max_bytes: int = 1 << 30,
    ) -> None:
        self.store = store
        self.stats = stats
        self.batch_records = batch_records
        self.batch_bytes = batch_bytes
        self.batch_seconds = batch_seconds
        self.compress_level = compress_level
        self.retry_start = spool_retry_start
        self.retry_max = spool_retry_max
        self.window = DedupeWindow(dedupe_window)
        self._records: list[Record] = []  # the open batch's records
        self._opened_at = 0.0  # monotonic
        self._memory_seq = 0
        self._memory_opened = 0.0
        self._memory_bytes = 0  # memory mode: the open batch's JSONL bytes
        self._lock = threading.Condition()  # the pending list and the stats both threads write
        self._pending: list[Segment] = []
        self._closing = False
        self._wake = threading.Event()
        self.journal: Journal | None = None
        if journal:
            self.journal = Journal(
                spool_dir, sync_interval=journal_sync_ms / 1000, max_bytes=journal_max_bytes
            )
            self._recover(self.journal)
            self.journal.start()
        self._update_journal_stats()
        self._uploader = threading.Thread(target=self._upload_loop, name="collector-uploader", daemon=True)
        self._uploader.start()

    def _recover(self, journal: Journal) -> None:
        found = journal.recover(id_window=self.window.size)
        for tweet_id in found.recent_ids:
            self.window.remember(tweet_id)
        self._pending = found.segments
        self.stats.journal_torn += found.torn
        self.stats.journal_recovered += found.records
        self.stats.spool_depth = len(found.segments)
        if found.segments or found.torn:
            log.info(
                "journal: uploading what an earlier run left unconfirmed",
                extra={
                    "batches": len(found.segments),
                    "records": found.records,
                    "torn_records": found.torn,
                    "dedupe_ids": len(self.window),
                },
            )

    # ------------------------------------------------------------------ producer side

    def add(self, record: Record, now: float | None = None) -> bool:
        """Journal one kept record; False (and counted) if its id was seen recently."""
        return self.add_many([record], now) == 1

    def add_many(self, records: list[Record], now: float | None = None) -> int:
        """Journal kept records (duplicates by id dropped and counted); how many were kept.

        A batch closes at its record limit, inside a call too. On :class:`JournalFull` its
        ``consumed`` says how many of ``records`` were taken (kept or counted as duplicates)
        before the journal refused; nothing of the rest was kept or remembered.
        """
        kept = 0
        done = 0
        while done < len(records):
            room = self.batch_records - len(self._records)
            part = records[done : done + room]
            try:
                kept += self._add_part(part, now)
            except JournalFull as exc:
                exc.consumed = done
                raise
            done += len(part)
            if self._records and self._batch_full():
                self.flush()
        return kept

    def _add_part(self, records: list[Record], now: float | None) -> int:
        window = self.window
        fresh: list[Record] = []
        batch_ids: set[str] = set()
        duplicates = 0
        for record in records:
            tweet_id = record.id
            if tweet_id in window or tweet_id in batch_ids:
                duplicates += 1
                continue
            if tweet_id is not None:
                batch_ids.add(tweet_id)
            fresh.append(record)
        if fresh:
            now = time.time() if now is None else now
            lines = [r.to_json().encode("utf-8", "replace") for r in fresh]
            if self.journal is not None:
                self.journal.append(lines, now)
            else:
                if not self._records:
                    self._memory_opened = now
                self._memory_bytes += sum(len(line) + 1 for line in lines)
            if not self._records:
                self._opened_at = time.monotonic()
            for record in fresh:
                window.remember(record.id)
            self._records.extend(fresh)
        self.stats.duplicates += duplicates
        self.stats.kept += len(fresh)
        return len(fresh)

    def _batch_full(self) -> bool:
        if len(self._records) >= self.batch_records:
            return True
        if self.journal is not None:
            segment = self.journal.open_segment
            return segment is not None and segment.size >= self.batch_bytes
        return self._memory_bytes >= self.batch_bytes

    def full(self) -> bool:
        """Whether the journal's byte limit is reached (the caller should stop reading)."""
        return self.journal is not None and self.journal.full()

    def tick(self) -> None:
        """Close the open batch at its age limit, or when the journal is full (so it can drain)."""
        if self._records and (time.monotonic() - self._opened_at >= self.batch_seconds or self.full()):
            self.flush()
        self._update_journal_stats()

    def flush(self) -> None:
        """Close the open batch (if any) and hand it to the uploader."""
        records, self._records = self._records, []
        self._memory_bytes = 0
        if not records:
            return
        if self.journal is not None:
            segment = self.journal.seal()
            assert segment is not None
        else:
            segment = Segment(self._memory_seq, self._memory_opened, None, len(records))
            self._memory_seq += 1
        segment.records = records
        with self._lock:
            if self.journal is None:
                while len(self._pending) >= IN_MEMORY_BATCHES and not self._closing:
                    self._lock.wait(0.1)  # memory mode: a slow store slows the producer
            elif len(self._pending) >= IN_MEMORY_BATCHES:
                segment.records = None  # on disk already; re-read when its turn comes
            self._pending.append(segment)
        self._wake.set()
        self._update_journal_stats()

    def wait_uploaded(self, timeout: float) -> bool:
        """Wait until no batch waits for the store (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def close(self, drain_seconds: float = 10.0) -> None:
        """Close the open batch and give the uploader up to ``drain_seconds`` to store
        everything; whatever is left stays in the journal for the next run."""
        self.flush()
        self._wake.set()
        self.wait_uploaded(drain_seconds)
        with self._lock:
            self._closing = True
            for segment in self._pending:
                self._spool(segment)
            self._lock.notify_all()
        self._wake.set()
        self._uploader.join(timeout=max(1.0, self.retry_max) + 30)
        if self.journal is not None:
            self.journal.close()
        self._update_journal_stats()
        if self.stats.spool_depth:
            log.warning(
                "batches left in the journal for the next run",
                extra={"spool_depth": self.stats.spool_depth, "journal": str(self._journal_root())},
            )

    def _journal_root(self) -> Path | None:
        return self.journal.root if self.journal is not None else None

    def _spool(self, segment: Segment) -> None:
        """Count ``segment`` as waiting in the journal for the store (once); holds the lock."""
        if not segment.spooled:
            segment.spooled = True
            self.stats.spooled += segment.count
            self.stats.batches_spooled += 1
            self.stats.spool_depth += 1

    def _update_journal_stats(self) -> None:
        journal, s = self.journal, self.stats
        if journal is None:
            return
        s.journal_depth = journal.depth
        s.journal_bytes = journal.pending_bytes
        s.journal_oldest_at = journal.oldest_at or 0.0
        s.journal_synced = journal.synced
        s.journal_fsyncs = journal.fsyncs
        s.journal_fsync_seconds = journal.fsync_seconds
        s.journal_fsync_max_seconds = journal.fsync_max_seconds

    # ------------------------------------------------------------------ uploader thread

    def _upload_loop(self) -> None:
        delay = self.retry_start
        while True:
            with self._lock:
                segment = self._pending[0] if self._pending else None
                if segment is None and self._closing:
                    return
            if segment is None:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            if self._upload(segment):
                delay = self.retry_start
                continue
            with self._lock:
                if self._closing:
                    return
                for waiting in self._pending:
                    self._spool(waiting)
                    waiting.records = None if waiting.path is not None else waiting.records
            self._wake.wait(timeout=delay)
            self._wake.clear()
            delay = min(delay * 2, self.retry_max)

    def _upload(self, segment: Segment) -> bool:
        """Put one batch and confirm it by reading it back; False (counted, logged) on failure."""
        assert self.journal is None or segment.path is not None
        journal_id = self.journal.id if self.journal is not None else "0" * 16
        key = batch_key(segment.opened_at, journal_id, segment.seq)
        try:
            # Records held in memory, or (when the uploader fell behind, or after a restart)
            # the journaled lines themselves: the same bytes either way.
            records: Sequence[Record | JournalLine] = (
                segment.records if segment.records is not None else [JournalLine(p) for p in segment.lines()]
            )
            data = write_jsonl_gz(cast("Sequence[Record]", records), self.compress_level)
            self.store.put(key, data)
            confirm_stored(self.store, key, data)
        except Exception as exc:  # any backend failure: the batch stays in the journal
            with self._lock:
                self.stats.store_errors += 1
                depth = len(self._pending)
            log.warning(
                "store write failed; the batch waits in the journal",
                extra={"key": key, "pending_batches": depth, "error": str(exc)},
            )
            return False
        if self.journal is not None:
            self.journal.confirm(segment, (r.id for r in records))
            self.journal.prune_ids(self.window.size)
        with self._lock:
            self._pending.pop(0)
            self.stats.written += len(records)
            self.stats.batches_written += 1
            self.stats.bytes_written += len(data)
            if segment.spooled:
                self.stats.spool_depth = max(0, self.stats.spool_depth - 1)
                log.info("journaled batch stored", extra={"key": key})
            self._lock.notify_all()
        self._update_journal_stats()
        return True


__all__ = ["BatchSink", "DedupeWindow", "JournalFull", "batch_key"]
