"""The write-ahead journal: framing, torn tails, recovery after a crash, idempotent keys,
the dedupe window rebuilt, the byte limit."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tweetdomains.codecs import read_jsonl_bytes
from tweetdomains.records import Record
from tweetdomains.store import LocalStore
from tweetdomains_collector.journal import JournalFull, frame, journal_records, read_frames
from tweetdomains_collector.sink import BatchSink
from tweetdomains_collector.stats import CollectorStats


def _records(n: int, start: int = 0) -> list[Record]:
    return [
        Record(text=f"tweet {i}", domains=("Person",), id=str(5000 + i), lang="en")
        for i in range(start, start + n)
    ]


def _sink(tmp_path: Path, store: Any = None, **kwargs: Any) -> tuple[BatchSink, CollectorStats]:
    stats = CollectorStats()
    store = store or LocalStore(tmp_path / "store")
    return BatchSink(store, stats, spool_dir=tmp_path / "journal", spool_retry_start=0.05, **kwargs), stats


def _crash(sink: BatchSink) -> None:
    """What a SIGKILL leaves: the threads stop, nothing is flushed or sealed."""
    assert sink.journal is not None
    sink.journal.sync()
    sink._closing = True
    sink._wake.set()
    sink._uploader.join(timeout=10)
    sink.journal._stop.set()


def _stored_ids(store: LocalStore) -> list[str | None]:
    return [r.id for key in store.list("raw/") for r in read_jsonl_bytes(store.get(key))]


def test_frames_round_trip_and_a_torn_or_corrupt_tail_is_cut() -> None:
    data = b"".join(frame(p) for p in (b"one", b"", b"three"))
    assert read_frames(data) == ([b"one", b"", b"three"], len(data))
    whole = len(frame(b"one")) + len(frame(b""))
    assert read_frames(data[:-2]) == ([b"one", b""], whole)
    flipped = bytearray(data)
    flipped[-1] ^= 1
    assert read_frames(bytes(flipped)) == ([b"one", b""], whole)


def test_a_crash_loses_nothing_journaled_and_recovery_uploads_it_first(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    sink, stats = _sink(tmp_path, store, batch_records=40)
    sink.add_many(_records(100))  # two sealed batches of 40, 20 records in the open segment
    assert stats.kept == 100
    assert sink.wait_uploaded(10)
    _crash(sink)
    assert len(_stored_ids(store)) == 80

    again, stats2 = _sink(tmp_path, store, batch_records=40)
    assert stats2.journal_recovered == 20 and stats2.journal_torn == 0
    assert again.wait_uploaded(10)
    again.close()
    ids = _stored_ids(store)
    assert sorted(ids) == sorted(r.id for r in _records(100)) and len(ids) == len(set(ids))
    assert stats2.written == 20 and stats2.kept == 0


def test_a_torn_final_record_is_skipped_counted_and_everything_before_it_lands(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    sink, _ = _sink(tmp_path, store)
    sink.add_many(_records(30))
    _crash(sink)
    (segment,) = (tmp_path / "journal").glob("*.open")
    size = segment.stat().st_size
    os.truncate(segment, size - 7)  # the last record cut mid-way, as a crash mid-write leaves it

    again, stats = _sink(tmp_path, store)
    again.close()
    assert stats.journal_torn == 1 and stats.journal_recovered == 29
    assert sorted(_stored_ids(store)) == sorted(r.id for r in _records(29))


class PutThenDie:
    """A store whose put lands, then the process "dies" before it confirms (the read-back fails)."""

    def __init__(self, root: Path) -> None:
        self.files = LocalStore(root)
        self.uri = self.files.uri

    def put(self, key: str, data: bytes) -> None:
        self.files.put(key, data)

    def get(self, key: str) -> bytes:
        from tweetdomains.store import StoreError

        raise StoreError("killed before the read-back")


def test_a_crash_between_put_and_confirm_reuploads_to_the_same_key(tmp_path: Path) -> None:
    dying = PutThenDie(tmp_path / "store")
    sink, stats = _sink(tmp_path, dying, batch_records=25)
    sink.add_many(_records(25))
    deadline = time.monotonic() + 10
    while stats.store_errors == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    _crash(sink)
    store = LocalStore(tmp_path / "store")
    keys = list(store.list("raw/"))
    assert len(keys) == 1 and len(list((tmp_path / "journal").glob("*.seg"))) == 1

    again, stats2 = _sink(tmp_path, store, batch_records=25)
    again.close()
    assert stats2.batches_written == 1 and list(store.list("raw/")) == keys
    ids = _stored_ids(store)
    assert sorted(ids) == sorted(r.id for r in _records(25)) and len(ids) == len(set(ids))
    assert not list((tmp_path / "journal").glob("*.seg"))


def test_the_dedupe_window_is_rebuilt_from_the_journal(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    sink, _ = _sink(tmp_path, store, batch_records=10)
    sink.add_many(_records(25))  # 20 confirmed (their ids kept), 5 unconfirmed
    assert sink.wait_uploaded(10)
    _crash(sink)
    again, stats = _sink(tmp_path, store, batch_records=10)
    assert again.add_many(_records(30)) == 5  # the 25 seen before are duplicates
    again.close()
    assert stats.duplicates == 25
    ids = _stored_ids(store)
    assert sorted(ids) == sorted(r.id for r in _records(30)) and len(ids) == len(set(ids))


def test_the_byte_limit_refuses_whole_calls_and_frees_up_as_batches_land(tmp_path: Path) -> None:
    class Down(LocalStore):
        down = True

        def put(self, key: str, data: bytes) -> None:
            from tweetdomains.store import StoreError

            if self.down:
                raise StoreError("down")
            super().put(key, data)

    store = Down(tmp_path / "store")
    sink, stats = _sink(tmp_path, store, batch_records=10, journal_max_bytes=2000)
    kept = 0
    with pytest.raises(JournalFull):
        for start in range(0, 1000, 5):
            kept += sink.add_many(_records(5, start))
    assert sink.full() and stats.kept == kept
    refused = _records(5, 5000)
    with pytest.raises(JournalFull):
        sink.add_many(refused)
    assert stats.kept == kept and refused[0].id not in sink.window  # nothing of it kept
    sink.tick()  # seals the open batch so it can drain
    store.down = False
    assert sink.wait_uploaded(10) and not sink.full()
    assert sink.add_many(refused) == 5
    sink.close()
    assert stats.written == kept + 5 == len(_stored_ids(store))
    assert not list(journal_records(tmp_path / "journal"))


def test_sync_counts_what_reached_the_disk(tmp_path: Path) -> None:
    sink, stats = _sink(tmp_path, journal_sync_ms=20)
    sink.add_many(_records(7))
    deadline = time.monotonic() + 10
    while sink.journal is not None and sink.journal.synced < 7 and time.monotonic() < deadline:
        time.sleep(0.01)
    sink.tick()
    assert stats.journal_synced == 7 and stats.journal_fsyncs >= 1 and stats.journal_depth == 1
    assert stats.journal_bytes > 0 and stats.journal_oldest_age() >= 0
    sink.close()
    assert stats.journal_depth == 0 and stats.journal_bytes == 0


def test_segment_numbers_continue_across_runs_even_without_a_dedupe_window(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for run in range(3):
        sink, _ = _sink(tmp_path, store, batch_records=5, dedupe_window=0)
        sink.add_many(_records(5, start=run * 5))
        sink.close()
    keys = list(store.list("raw/"))
    assert len({k.rsplit("-", 1)[1][16:32] for k in keys}) == 3  # segments 0, 1, 2
    assert len(_stored_ids(store)) == 15


def test_journaled_lines_encode_to_the_same_batch_as_their_records() -> None:
    from tweetdomains.codecs import write_jsonl_gz
    from tweetdomains_collector.journal import JournalLine

    records = [*_records(3), Record(text='quote " and é', domains=("Person",)), Record(text="x", id='a"b')]
    lines = [JournalLine(r.to_json().encode()) for r in records]
    assert write_jsonl_gz(lines) == write_jsonl_gz(records)  # type: ignore[arg-type]
    assert [line.id for line in lines] == [r.id for r in records]
