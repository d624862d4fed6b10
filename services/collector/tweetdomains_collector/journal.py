"""The write-ahead journal: every kept record is on local disk before it counts as kept.

A journal is a folder of append-only segment files. Each record is one frame: a 4-byte
big-endian payload length, the payload's CRC32 (4 bytes), then the payload (the record's JSON
line). The open segment is ``<seq>-<opened-ms>.open``; sealing it (fsync, rename) makes it
``<seq>-<opened-ms>.seg``, one store batch whose key follows from the journal id and ``seq``
alone, so a re-upload after a crash overwrites the same object. Once the store confirms the
batch, the segment is replaced by ``<seq>.ids`` (its tweet ids, for the dedupe window of the
next run) and deleted. A sync thread fsyncs the open segment every ``sync_interval`` seconds,
so a SIGKILL or a power cut loses at most that interval; a torn final frame (a crash in the
middle of a write) is cut off on recovery, counted and logged.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tweetdomains.records import Record

log = logging.getLogger("tweetdomains.collector")

FRAME = struct.Struct(">II")
ID_FILE = "JOURNAL_ID"


class JournalFull(OSError):
    """The journal cannot take more records now: its byte limit is reached or its disk is full.

    ``consumed`` (set by the sink) says how many records of the refused call were taken."""

    consumed = 0


@dataclass
class Segment:
    """One journal segment: a batch of records, on disk (``path``) and maybe in memory too."""

    seq: int
    opened_at: float  # epoch seconds: when its first record arrived (the batch's UTC hour)
    path: Path | None = None
    count: int = 0
    size: int = 0  # JSONL bytes of its records (before compression)
    records: list[Record] | None = None
    spooled: bool = False  # its upload failed at least once, or it was left by an earlier run

    def lines(self) -> list[bytes]:
        """Its records' JSON lines as journaled (no newline), read back from the segment file."""
        assert self.path is not None
        return read_frames(self.path.read_bytes())[0]


class JournalLine:
    """A journaled JSON line that :func:`codecs.write_jsonl_gz` takes as a record: it was
    written by ``Record.to_json``, so it is re-used as it is instead of parsed and re-encoded."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def to_json(self) -> str:
        return self.payload.decode("utf-8")

    @property
    def id(self) -> str | None:
        """The record's id: the line's first field, as ``Record.to_json`` writes it."""
        payload = self.payload
        if payload.startswith(b'{"id":"'):
            end = payload.find(b'"', 7)
            if end > 0 and b"\\" not in payload[7:end]:
                return payload[7:end].decode("utf-8")
        elif payload.startswith(b'{"id":null'):
            return None
        value = json.loads(payload).get("id")
        return None if value is None else str(value)


@dataclass
class Recovery:
    """What a journal held when it was opened."""

    segments: list[Segment] = field(default_factory=list)
    recent_ids: list[str] = field(default_factory=list)  # oldest first
    torn: int = 0  # torn or corrupt tail records cut off
    torn_bytes: int = 0

    @property
    def records(self) -> int:
        return sum(s.count for s in self.segments)


def frame(payload: bytes) -> bytes:
    """One journal frame for ``payload``."""
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_frames(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of every whole, intact frame of ``data`` and the offset where they end
    (``len(data)`` unless the tail is torn or corrupt)."""
    payloads = []
    offset, end = 0, len(data)
    while offset + FRAME.size <= end:
        length, crc = FRAME.unpack_from(data, offset)
        start = offset + FRAME.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            break
        payloads.append(payload)
        offset = start + length
    return payloads, offset


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_name(seq: int, opened_at: float, suffix: str) -> str:
    return f"{seq:016x}-{int(opened_at * 1000):013d}{suffix}"


def _parse_name(path: Path) -> tuple[int, float]:
    seq, opened_ms = path.stem.split("-")
    return int(seq, 16), int(opened_ms) / 1000


class Journal:
    """A segmented append-only journal in ``root`` (created if absent).

    One producer thread calls :meth:`append` and :meth:`seal`; an uploader thread calls
    :meth:`confirm`; the sync thread (:meth:`start`) fsyncs. ``max_bytes`` bounds the
    unconfirmed bytes: :meth:`append` raises :class:`JournalFull` instead of passing it.
    """

    def __init__(self, root: str | Path, *, sync_interval: float = 0.2, max_bytes: int = 1 << 30) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.sync_interval = sync_interval
        self.max_bytes = max_bytes
        self.id = self._journal_id()
        self.appended = 0  # records appended by this process
        self.synced = 0  # records of those covered by the last fsync
        self.fsyncs = 0
        self.fsync_seconds = 0.0  # the last fsync's duration
        self.fsync_max_seconds = 0.0
        self._disk_bytes = 0  # sealed, unconfirmed segment bytes
        self._open: Segment | None = None
        self._fd: int | None = None
        self._offset = 0
        self._next_seq = 0
        self._unconfirmed: dict[int, float] = {}  # seq -> opened_at
        self._lock = threading.Lock()  # the open segment's fd: sync vs seal
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None

    def _journal_id(self) -> str:
        path = self.root / ID_FILE
        if path.is_file():
            return path.read_text().strip()
        value = os.urandom(8).hex()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value + "\n")
        os.replace(tmp, path)
        _fsync_dir(self.root)
        return value

    # ------------------------------------------------------------------ recovery

    def recover(self, id_window: int = 0) -> Recovery:
        """Seal what an earlier run left open (cutting a torn tail), and list every
        unconfirmed segment, oldest first, with up to ``id_window`` recent confirmed ids."""
        found = Recovery()
        for path in sorted(self.root.glob("*.open")):
            data = path.read_bytes()
            payloads, end = read_frames(data)
            if end < len(data):
                found.torn += 1
                found.torn_bytes += len(data) - end
                log.warning(
                    "journal: torn record at the end of a segment cut off",
                    extra={"segment": path.name, "bytes_cut": len(data) - end, "records_kept": len(payloads)},
                )
                with path.open("r+b") as handle:
                    handle.truncate(end)
                    handle.flush()
                    os.fsync(handle.fileno())
            if payloads:
                os.replace(path, path.with_suffix(".seg"))
            else:
                path.unlink()
        _fsync_dir(self.root)
        for path in sorted(self.root.glob("*.seg")):
            seq, opened_at = _parse_name(path)
            data = path.read_bytes()
            payloads, end = read_frames(data)
            if end < len(data):  # a sealed segment is fsynced whole: this is disk corruption
                found.torn += 1
                found.torn_bytes += len(data) - end
                log.error("journal: corrupt record in a sealed segment cut off", extra={"segment": path.name})
            records = [JournalLine(p) for p in payloads]
            segment = Segment(seq, opened_at, path, len(records), sum(len(p) + 1 for p in payloads))
            segment.spooled = True
            found.segments.append(segment)
            self._unconfirmed[seq] = opened_at
            self._disk_bytes += len(data)
            found.recent_ids += [r.id for r in records if r.id is not None]
        confirmed = sorted(self.root.glob("*.ids"))
        older: list[str] = []
        for index, path in enumerate(reversed(confirmed)):
            if len(older) >= id_window:
                if index:  # the newest stays: it carries the next segment number
                    path.unlink(missing_ok=True)  # beyond the window: never read again
                continue
            older = path.read_text().split() + older
        found.recent_ids = older + found.recent_ids
        seqs = [s.seq for s in found.segments] + [int(p.stem, 16) for p in confirmed]
        self._next_seq = max(seqs, default=-1) + 1
        return found

    # ------------------------------------------------------------------ producer

    @property
    def pending_bytes(self) -> int:
        """Bytes of unconfirmed records on disk (sealed segments and the open one)."""
        return self._disk_bytes + self._offset

    @property
    def depth(self) -> int:
        """Unconfirmed segments, the open one included."""
        return len(self._unconfirmed) + (self._open is not None)

    @property
    def oldest_at(self) -> float | None:
        """When the oldest unconfirmed segment's first record arrived (None: nothing pending)."""
        times = list(self._unconfirmed.values())
        if self._open is not None:
            times.append(self._open.opened_at)
        return min(times, default=None)

    @property
    def open_segment(self) -> Segment | None:
        return self._open

    def full(self) -> bool:
        """Whether the byte limit is reached."""
        return self.pending_bytes >= self.max_bytes

    def append(self, payloads: list[bytes], now: float) -> None:
        """Append records (JSON lines without newline) in one write; all or none of them.

        Raises :class:`JournalFull` when over the byte limit or when the disk refuses.
        """
        if self.full():
            raise JournalFull("the journal's byte limit is reached")
        data = b"".join(frame(p) for p in payloads)
        if self._fd is None:
            self._create(now)
        assert self._fd is not None and self._open is not None
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(28, "short write")
        except OSError as exc:
            os.ftruncate(self._fd, self._offset)  # nothing half-written stays
            os.lseek(self._fd, self._offset, os.SEEK_SET)
            raise JournalFull(f"the journal's disk refused a write: {exc}") from exc
        self._offset += len(data)
        self._open.count += len(payloads)
        self._open.size += sum(len(p) + 1 for p in payloads)
        self.appended += len(payloads)

    def _create(self, now: float) -> None:
        seq = self._next_seq
        path = self.root / _segment_name(seq, now, ".open")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise JournalFull(f"cannot create a journal segment: {exc}") from exc
        self._next_seq += 1
        with self._lock:
            self._fd, self._offset = fd, 0
            self._open = Segment(seq, now, path)

    def seal(self) -> Segment | None:
        """Close the open segment (fsynced, renamed ``.seg``) and return it; None if empty."""
        with self._lock:
            segment, fd = self._open, self._fd
            if segment is None or fd is None:
                return None
            self._sync_fd(fd, self.appended)
            os.close(fd)
            sealed = segment.path.with_suffix(".seg") if segment.path else None
            assert segment.path is not None and sealed is not None
            os.replace(segment.path, sealed)
            segment.path = sealed
            self._unconfirmed[segment.seq] = segment.opened_at
            self._disk_bytes += self._offset
            self._open, self._fd, self._offset = None, None, 0
        _fsync_dir(self.root)
        return segment

    # ------------------------------------------------------------------ uploader

    def confirm(self, segment: Segment, ids: Iterable[str | None]) -> None:
        """The store holds ``segment``'s batch: keep its ids, delete the segment."""
        tmp = self.root / f".{segment.seq:016x}.ids.tmp"
        try:
            tmp.write_text("".join(f"{i}\n" for i in ids if i is not None))
            os.replace(tmp, self.root / f"{segment.seq:016x}.ids")
        except OSError as exc:  # a full disk costs the next run some dedupe memory, nothing more
            tmp.unlink(missing_ok=True)
            log.warning("journal: cannot keep a confirmed segment's ids", extra={"error": str(exc)})
        size = segment.path.stat().st_size if segment.path and segment.path.exists() else 0
        if segment.path is not None:
            segment.path.unlink(missing_ok=True)
        _fsync_dir(self.root)
        self._unconfirmed.pop(segment.seq, None)
        self._disk_bytes = max(0, self._disk_bytes - size)

    def prune_ids(self, keep_ids: int) -> None:
        """Delete the oldest ``.ids`` files beyond the newest ``keep_ids`` ids (about 20 bytes each)."""
        total = 0
        for index, path in enumerate(sorted(self.root.glob("*.ids"), reverse=True)):
            if total >= keep_ids and index:  # the newest stays: it carries the next segment number
                path.unlink(missing_ok=True)
            else:
                total += path.stat().st_size // 20

    # ------------------------------------------------------------------ sync thread

    def _sync_fd(self, fd: int, appended: int) -> None:
        started = time.perf_counter()
        os.fsync(fd)
        took = time.perf_counter() - started
        self.fsyncs += 1
        self.fsync_seconds = took
        self.fsync_max_seconds = max(self.fsync_max_seconds, took)
        self.synced = appended

    def sync(self) -> None:
        """fsync the open segment if records were appended since the last sync."""
        with self._lock:
            if self._fd is not None and self.synced < self.appended:
                self._sync_fd(self._fd, self.appended)

    def start(self) -> Journal:
        """Start the sync thread (every ``sync_interval`` seconds)."""
        self._syncer = threading.Thread(target=self._sync_loop, name="collector-journal-sync", daemon=True)
        self._syncer.start()
        return self

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.sync_interval):
            try:
                self.sync()
            except OSError as exc:
                log.error("journal: fsync failed", extra={"error": str(exc)})

    def close(self) -> None:
        """Stop the sync thread and sync what is open (it stays open for the next run)."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join(timeout=5)
        self.sync()


def journal_records(root: str | Path) -> Iterator[Record]:
    """Every intact record in a journal folder's segments, oldest first (for tests and tools)."""
    for path in sorted([*Path(root).glob("*.seg"), *Path(root).glob("*.open")]):
        for payload in read_frames(path.read_bytes())[0]:
            yield Record.from_dict(json.loads(payload))
