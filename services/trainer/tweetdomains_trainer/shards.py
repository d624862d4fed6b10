"""Shards: each raw batch parsed and tokenized once, then encoded once per vocabulary.

Two kinds of shard, both kept in the store beside the batches they come from:

``cache/shards/words-v1/<raw-key-hash>.shard``
    The vocabulary-free part, written once per raw batch: the labeled records' word tokens
    (ids into the shard's own token table), their labels (ids into its own label table),
    an 8-byte content hash (the first 16 hex digits of :func:`text.content_hash`, so
    :func:`dataset.split_of` gives the same side) and an 8-byte id hash per record.
``cache/shards/<kind>-<vocab-fingerprint>-t<max-tokens>/<raw-key-hash>.shard``
    The same records encoded with one vocabulary: ``ids`` and ``offsets``, as
    :func:`data.encode_split` makes them. A table lookup over the word shard, no tokenizer.

A shard file is plain arrays, no pickle: ``TDSHARD1``, an 8-byte header length, a JSON
header (each array's dtype, shape and byte offset, plus ``meta``), then the arrays, each
64-byte aligned, so a reader memory-maps every array without copying it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import mmap
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tweetdomains.store import LocalStore, ObjectStore
from tweetdomains.vocab import UNK_ID, Vocabulary, WordpieceVocabulary

MAGIC = b"TDSHARD1"
ALIGN = 64
SHARDS_PREFIX = "cache/shards/"
WORDS_DIR = "words-v1"


# ----------------------------------------------------------------------------- the file format


def pack(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    """One shard file's bytes: magic, header length, JSON header, aligned raw arrays."""
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, values in arrays.items():
        if values.dtype.kind == "O":
            raise ValueError(f"array {name!r} holds Python objects: shards are plain arrays")
        offset = -(-offset // ALIGN) * ALIGN
        layout[name] = {"dtype": values.dtype.str, "shape": list(values.shape), "offset": offset}
        offset += values.nbytes
    header = json.dumps({"arrays": layout, "meta": dict(meta)}, ensure_ascii=False).encode()
    start = -(-(len(MAGIC) + 8 + len(header)) // ALIGN) * ALIGN
    # One join of the arrays' own buffers: the file's bytes are made once, no copy of each array.
    pieces: list[bytes | memoryview] = [MAGIC, len(header).to_bytes(8, "little"), header]
    at = len(MAGIC) + 8 + len(header)
    for name, values in arrays.items():
        pieces.append(bytes(start + layout[name]["offset"] - at))
        pieces.append(np.ascontiguousarray(values).reshape(-1).view(np.uint8).data)
        at = start + layout[name]["offset"] + values.nbytes
    pieces.append(bytes(start + offset - at))
    return b"".join(pieces)


class ShardFile:
    """A shard file on local disk: ``meta`` and each array memory-mapped read-only."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            head = handle.read(len(MAGIC) + 8)
            if len(head) < len(MAGIC) + 8 or head[: len(MAGIC)] != MAGIC:
                raise ValueError(f"{self.path} is not a shard file")
            size = int.from_bytes(head[len(MAGIC) :], "little")
            raw_header = handle.read(size)
            if len(raw_header) < size:
                raise ValueError(f"{self.path} is truncated")
            header = json.loads(raw_header)
        self.meta: dict[str, Any] = header["meta"]
        self._layout: dict[str, dict[str, Any]] = header["arrays"]
        self._start = -(-(len(MAGIC) + 8 + size) // ALIGN) * ALIGN
        self._cache: dict[str, np.ndarray] = {}
        end = self._start + max((a["offset"] + _nbytes(a) for a in self._layout.values()), default=0)
        if self.path.stat().st_size < end:
            raise ValueError(f"{self.path} is truncated")
        self._map: np.memmap | None = None  # the whole file, mapped once on first use

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            spec = self._layout[name]
            shape, dtype, size = tuple(spec["shape"]), np.dtype(spec["dtype"]), _nbytes(spec)
            if size == 0:  # np.memmap refuses an empty map
                self._cache[name] = np.zeros(shape, dtype=dtype)
            else:
                if self._map is None:
                    self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
                at = self._start + spec["offset"]  # 64-byte aligned: a view of the map, no copy
                self._cache[name] = self._map[at : at + size].view(dtype).reshape(shape)
        return self._cache[name]

    def release(self) -> None:
        """Drop the pages of this file that this process has read (they stay in the page
        cache, and come back on the next read): a pass over every shard's arrays then leaves
        the resident memory as it found it, not the corpus's size larger."""
        handle = getattr(self._map, "_mmap", None)
        if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
            handle.madvise(mmap.MADV_DONTNEED)


def _nbytes(spec: Mapping[str, Any]) -> int:
    return int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize


def string_table(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-8 byte array and ``[n + 1]`` offsets (no object arrays)."""
    offsets = np.zeros(len(names) + 1, dtype=np.int64)
    blob = "".join(names).encode("utf-8")
    if len(blob) == sum(map(len, names)):  # every character ASCII: a byte each
        np.cumsum(np.fromiter(map(len, names), dtype=np.int64, count=len(names)), out=offsets[1:])
        return np.frombuffer(blob, dtype=np.uint8), offsets
    encoded = [n.encode("utf-8") for n in names]
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def read_table(shard: ShardFile, name: str) -> list[str]:
    """The strings :func:`string_table` stored under ``name``.

    When no string holds a newline (no token does), a newline goes in at every boundary and
    the whole table is decoded and split at once, at C speed.
    """
    blob, offsets = np.asarray(shard[f"{name}_blob"]), np.asarray(shard[f"{name}_offsets"])
    if len(offsets) < 2:
        return []
    raw = blob.tobytes()
    if b"\n" not in raw:
        return np.insert(blob, offsets[1:-1], ord("\n")).tobytes().decode("utf-8").split("\n")
    return [raw[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets.tolist())]


# ----------------------------------------------------------------------------- store locations


def raw_key_hash(key: str) -> str:
    """The file name part of a raw batch's shards (raw batches are never rewritten in place)."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def words_key(raw_key: str) -> str:
    return f"{SHARDS_PREFIX}{WORDS_DIR}/{raw_key_hash(raw_key)}.shard"


def vocab_dir(vocab: Vocabulary, max_tokens: int) -> str:
    """``<kind>-<fingerprint>-t<max_tokens>``: the folder of one vocabulary's shards."""
    kind = "wordpiece" if isinstance(vocab, WordpieceVocabulary) else "word"  # what its to_json says
    return f"{kind}-{vocab.fingerprint()}-t{max_tokens}"


def encoded_key(raw_key: str, vocab: Vocabulary, max_tokens: int, directory: str | None = None) -> str:
    """Where ``raw_key``'s shard encoded with ``vocab`` lives; ``directory`` is
    :func:`vocab_dir`'s answer when the caller has it (hashing a large vocabulary per shard
    costs more than the lookups of a retrain)."""
    return f"{SHARDS_PREFIX}{directory or vocab_dir(vocab, max_tokens)}/{raw_key_hash(raw_key)}.shard"


class ShardCache:
    """Where shard files live on local disk so they can be memory-mapped.

    A local store's files are read in place. For any other store (S3) a shard is copied
    once into ``local_dir`` (by default ``<temp dir>/tweetdomains-shards/<store hash>``: the
    trainer's images run with a read-only root and a writable ``/tmp``, not a writable home).
    ``read_only`` (a dry run) writes nothing to the store: new shards go to a temporary
    folder, removed once the cache and every array mapped from it are gone.
    """

    def __init__(
        self, store: ObjectStore, local_dir: str | Path | None = None, read_only: bool = False
    ) -> None:
        self.store = store
        if isinstance(store, LocalStore):
            self.root = store.root
        else:
            digest = hashlib.sha1(str(getattr(store, "uri", repr(store))).encode()).hexdigest()[:12]
            default = Path(tempfile.gettempdir()) / "tweetdomains-shards" / digest
            self.root = Path(local_dir) if local_dir is not None else default
        self._scratch = tempfile.TemporaryDirectory(prefix="tweetdomains-dry-run-") if read_only else None

    @property
    def read_only(self) -> bool:
        return self._scratch is not None

    def spill_dir(self) -> Path:
        """A local folder for a preparation's temporary files (:mod:`.dedupe`'s buckets): the
        dry run's scratch folder, else the local shard folder."""
        if self._scratch is not None:
            return Path(self._scratch.name)
        folder = self.root / SHARDS_PREFIX
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _written(self, key: str) -> Path | None:
        """The scratch copy of ``key`` a read-only cache wrote, if any."""
        if self._scratch is None:
            return None
        path = Path(self._scratch.name) / key
        return path if path.is_file() else None

    def exists(self, key: str) -> bool:
        return self._written(key) is not None or (self.root / key).is_file() or self.store.exists(key)

    def put(self, key: str, data: bytes) -> None:
        if self._scratch is not None:
            _write_atomic(Path(self._scratch.name) / key, data)
            return
        self.store.put(key, data)
        if not isinstance(self.store, LocalStore):
            _write_atomic(self.root / key, data)

    def open(self, key: str) -> ShardFile:
        written = self._written(key)
        if written is not None:
            return ShardFile(written)
        path = self.root / key
        if not path.is_file():
            _write_atomic(path, self.store.get(key))
        return ShardFile(path)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- encode per vocabulary


@dataclass
class WordShard:
    """A words shard opened for reading, with its label table decoded.

    The token table is decoded on each use, not kept: a corpus holds every shard open, and
    their tables together are most of its distinct strings.
    """

    key: str  # the raw batch
    file: ShardFile
    labels: list[str]

    @classmethod
    def open(cls, cache: ShardCache, raw_key: str) -> WordShard:
        file = cache.open(words_key(raw_key))
        labels = read_table(file, "labels")
        # Reading the table faults in the file's pages around it too (64 KB here): a corpus
        # opens every shard, so those pages go again (32 MB over 500 shards).
        file.release()
        return cls(raw_key, file, labels)

    @property
    def tokens(self) -> list[str]:
        return read_table(self.file, "tokens")

    def __len__(self) -> int:
        return int(self.file.meta["rows"])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.file["token_offsets"])


# Records encoded at a time: a worker's arrays for the lookup stay this size, whatever the shard's.
ENCODE_ROWS = 4096


def encode_words(shard: WordShard, vocab: Vocabulary, max_tokens: int) -> bytes:
    """The shard's records encoded with ``vocab``, exactly as :func:`data.encode_split` does:
    ``vocab.encode(tokens)[:max_tokens] or [UNK_ID]`` per record, as one table lookup.

    Each distinct token is encoded once (one id for a word vocabulary, its pieces for a
    wordpiece one); the records' ids are gathered from that table with numpy,
    ``ENCODE_ROWS`` records at a time.
    """
    tokens = shard.tokens
    if type(vocab) is Vocabulary:  # a word vocabulary: one id per token, in one call
        piece_ids = np.array(vocab.encode(tokens), dtype=np.int64)
        piece_counts = np.ones(len(piece_ids), dtype=np.int64)
    else:
        pieces = [vocab.encode([t]) for t in tokens]
        piece_counts = np.array([len(p) for p in pieces], dtype=np.int64)
        piece_ids = np.array([i for p in pieces for i in p], dtype=np.int64)
    piece_starts = np.zeros(len(piece_counts) + 1, dtype=np.int64)
    np.cumsum(piece_counts, out=piece_starts[1:])
    token_offsets = np.asarray(shard.file["token_offsets"])
    rows = len(token_offsets) - 1
    dtype = id_dtype(vocab)
    ids: list[np.ndarray] = [np.zeros(0, dtype=dtype)]
    lengths: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for first in range(0, rows, ENCODE_ROWS):
        bounds = token_offsets[first : min(first + ENCODE_ROWS, rows) + 1]
        token_ids = np.asarray(shard.file["token_ids"][bounds[0] : bounds[-1]], dtype=np.int64)
        chunk_ids, chunk_lengths = _encode_rows(
            token_ids, np.diff(bounds), piece_ids, piece_counts, piece_starts, max_tokens, dtype
        )
        ids.append(chunk_ids)
        lengths.append(chunk_lengths)
    lengths_all = np.concatenate(lengths)
    offsets = np.zeros(len(lengths_all) + 1, dtype=np.int64)
    np.cumsum(np.where(lengths_all == 0, 1, lengths_all), out=offsets[1:])
    meta = {"raw_key": shard.key, "rows": len(lengths_all), "vocab_fingerprint": vocab.fingerprint()}
    return pack({"ids": np.concatenate(ids), "offsets": offsets}, meta)


def _encode_rows(
    token_ids: np.ndarray,
    row_lengths: np.ndarray,
    piece_ids: np.ndarray,
    piece_counts: np.ndarray,
    piece_starts: np.ndarray,
    max_tokens: int,
    dtype: np.dtype[Any],
) -> tuple[np.ndarray, np.ndarray]:
    """Some consecutive records' ids (each cut to ``max_tokens``, an empty one ``[UNK_ID]``)
    and lengths before the ``<UNK>`` of the empty ones, from their token ids."""
    counts = piece_counts[token_ids]  # pieces per token occurrence
    expanded = np.repeat(piece_starts[token_ids], counts)
    within = np.arange(len(expanded)) - np.repeat(np.cumsum(counts) - counts, counts)
    flat = piece_ids[expanded + within] if len(expanded) else np.zeros(0, dtype=np.int64)
    # Pieces per record, then cut each record to max_tokens and give empty ones one <UNK>.
    row_of_token = np.repeat(np.arange(len(row_lengths)), row_lengths)
    row_pieces = np.bincount(row_of_token, weights=counts, minlength=len(row_lengths)).astype(np.int64)
    row_starts = np.cumsum(row_pieces) - row_pieces
    position = np.arange(len(flat)) - np.repeat(row_starts, row_pieces)
    kept = flat[position < max_tokens]
    lengths = np.minimum(row_pieces, max_tokens)
    empty = lengths == 0
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.where(empty, 1, lengths), out=offsets[1:])
    ids = np.full(int(offsets[-1]), UNK_ID, dtype=dtype)
    nonempty_slots = np.ones(len(ids), dtype=bool)
    nonempty_slots[offsets[:-1][empty]] = False
    ids[nonempty_slots] = kept
    return ids, lengths


def id_dtype(vocab: Vocabulary) -> np.dtype[Any]:
    """2-byte ids for any vocabulary that fits (every word and wordpiece table here does)."""
    return np.dtype(np.uint16) if len(vocab) <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)
