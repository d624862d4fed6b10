"""The batching sink on a local store: limits, key layout, dedupe, failed uploads kept in the journal."""

from __future__ import annotations

import gzip
import re
import time
from pathlib import Path

from tweetdomains.codecs import read_jsonl_bytes
from tweetdomains.records import Record
from tweetdomains.store import LocalStore
from tweetdomains_collector.journal import journal_records
from tweetdomains_collector.sink import BatchSink, DedupeWindow, batch_key
from tweetdomains_collector.stats import CollectorStats

KEY = re.compile(r"^raw/\d{4}/\d{2}/\d{2}/\d{2}/\d{8}T\d{6}Z-[0-9a-f]{32}\.jsonl\.gz$")


def _records(n: int, start: int = 0, text: str = "tweet") -> list[Record]:
    return [
        Record(text=f"{text} {i}", domains=("Person",), id=str(1000 + i), lang="en")
        for i in range(start, start + n)
    ]


def _sink(tmp_path: Path, **kwargs: object) -> tuple[BatchSink, LocalStore, CollectorStats]:
    store = LocalStore(tmp_path / "store")
    stats = CollectorStats()
    return BatchSink(store, stats, spool_dir=tmp_path / "spool", **kwargs), store, stats


def _read(store: LocalStore) -> list[list[Record]]:
    return [list(read_jsonl_bytes(store.get(key))) for key in store.list("raw/")]


def test_batches_close_at_the_record_count_and_keys_follow_the_layout(tmp_path: Path) -> None:
    sink, store, stats = _sink(tmp_path, batch_records=10)
    for record in _records(25):
        sink.add(record)
    sink.close()
    keys = list(store.list("raw/"))
    assert len(keys) == 3 and all(KEY.match(k) for k in keys)
    batches = _read(store)
    assert sorted(len(b) for b in batches) == [5, 10, 10]
    assert sorted(r.id for b in batches for r in b) == [r.id for r in _records(25)]
    assert stats.written == stats.kept == 25 and stats.batches_written == 3
    assert stats.bytes_written == sum(len(store.get(k)) for k in keys)


def test_batches_close_at_the_byte_limit(tmp_path: Path) -> None:
    sink, store, _ = _sink(tmp_path, batch_bytes=1000)
    for record in _records(40, text="x" * 80):
        sink.add(record)
    sink.close()
    sizes = [len(gzip.decompress(store.get(k))) for k in store.list("raw/")]
    assert len(sizes) > 3
    assert all(size < 1000 + 200 for size in sizes)  # a batch closes at the record that crosses it


def test_batches_close_at_the_age_limit(tmp_path: Path) -> None:
    sink, store, stats = _sink(tmp_path, batch_seconds=0.2)
    sink.add(_records(1)[0])
    sink.tick()
    assert stats.batches_written == 0
    time.sleep(0.25)
    sink.tick()
    sink.close()
    assert stats.batches_written == 1 and len(list(store.list("raw/"))) == 1


def test_duplicate_ids_are_dropped_and_counted(tmp_path: Path) -> None:
    sink, store, stats = _sink(tmp_path)
    for record in _records(10) + _records(10, start=5):
        sink.add(record)
    sink.add(Record(text="no id a"))
    sink.add(Record(text="no id b"))
    sink.close()
    ids = [r.id for b in _read(store) for r in b]
    assert stats.duplicates == 5 and stats.kept == 17 and len(ids) == 17
    assert len({i for i in ids if i}) == 15


def test_dedupe_window_is_bounded_and_forgets_the_least_recent() -> None:
    window = DedupeWindow(3)
    assert not any(window.seen(i) for i in "abc")
    assert window.seen("a")  # refreshes a
    assert not window.seen("d")  # evicts b
    assert len(window) == 3
    assert not window.seen("b")
    assert window.seen("a")
    assert not window.seen(None) and not window.seen(None)


def test_batch_keys_follow_the_journal_segment_and_use_the_utc_hour() -> None:
    when = 1_654_041_600.0  # 2022-06-01T00:00:00Z
    keys = {batch_key(when, "ab" * 8, seq) for seq in range(1000)}
    assert len(keys) == 1000 and all(KEY.match(k) for k in keys)
    assert all(k.startswith("raw/2022/06/01/00/20220601T000000Z-abababababababab") for k in keys)
    assert batch_key(when, "ab" * 8, 7) == batch_key(when, "ab" * 8, 7)  # a re-upload: the same key
    assert batch_key(when, "ab" * 8, 7) != batch_key(when, "cd" * 8, 7)  # another journal: another key


class FlakyStore(LocalStore):
    """A local store that refuses writes while ``down``."""

    down = True

    def put(self, key: str, data: bytes) -> None:
        from tweetdomains.store import StoreError

        if self.down:
            raise StoreError("store unreachable")
        super().put(key, data)


def test_failed_writes_are_spooled_then_retried_until_they_land(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "store")
    stats = CollectorStats()
    sink = BatchSink(store, stats, spool_dir=tmp_path / "spool", batch_records=5, spool_retry_start=0.05)
    for record in _records(20):
        sink.add(record)
    sink.flush()
    deadline = time.monotonic() + 10
    while stats.batches_spooled < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stats.batches_spooled == 4 and stats.written == 0 and stats.store_errors >= 1
    store.down = False
    sink.close(drain_seconds=10)
    assert stats.written == 20 and stats.spool_depth == 0
    assert sorted(r.id for b in _read(store) for r in b) == [r.id for r in _records(20)]
    assert not list(journal_records(tmp_path / "spool"))
    assert not list((tmp_path / "spool").glob("*.seg"))
