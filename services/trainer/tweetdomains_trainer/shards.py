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
import html
import itertools
import json
import os
import re
import tempfile
from array import array
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tweetdomains import codecs
from tweetdomains.store import LocalStore, ObjectStore
from tweetdomains.text import (
    TEXT_END,
    content_key_many,
    normalize_many,
    retweet_prefix_end,
    tokenize,
    tokenize_many,
)
from tweetdomains.vocab import UNK_ID, Vocabulary

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
    out = bytearray(start + offset)
    out[: len(MAGIC)] = MAGIC
    out[len(MAGIC) : len(MAGIC) + 8] = len(header).to_bytes(8, "little")
    out[len(MAGIC) + 8 : len(MAGIC) + 8 + len(header)] = header
    for name, values in arrays.items():
        at = start + layout[name]["offset"]
        out[at : at + values.nbytes] = np.ascontiguousarray(values).tobytes()
    return bytes(out)


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

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            spec = self._layout[name]
            shape = tuple(spec["shape"])
            if _nbytes(spec) == 0:  # np.memmap refuses an empty map
                self._cache[name] = np.zeros(shape, dtype=np.dtype(spec["dtype"]))
            else:
                self._cache[name] = np.memmap(
                    self.path, dtype=np.dtype(spec["dtype"]), mode="r", offset=self._start + spec["offset"],
                    shape=shape,
                )  # fmt: skip
        return self._cache[name]


def _nbytes(spec: Mapping[str, Any]) -> int:
    return int(np.prod(spec["shape"], dtype=np.int64)) * np.dtype(spec["dtype"]).itemsize


def _table(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-8 byte array and ``[n + 1]`` offsets (no object arrays)."""
    encoded = [n.encode("utf-8") for n in names]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def read_table(shard: ShardFile, name: str) -> list[str]:
    """The strings :func:`_table` stored under ``name``."""
    blob, offsets = bytes(shard[f"{name}_blob"]), shard[f"{name}_offsets"].tolist()
    return [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]


# ----------------------------------------------------------------------------- store locations


def raw_key_hash(key: str) -> str:
    """The file name part of a raw batch's shards (raw batches are never rewritten in place)."""
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def words_key(raw_key: str) -> str:
    return f"{SHARDS_PREFIX}{WORDS_DIR}/{raw_key_hash(raw_key)}.shard"


def vocab_dir(vocab: Vocabulary, max_tokens: int) -> str:
    """``<kind>-<fingerprint>-t<max_tokens>``: the folder of one vocabulary's shards."""
    kind = str(json.loads(vocab.to_json()).get("kind", "word"))
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
    """

    def __init__(self, store: ObjectStore, local_dir: str | Path | None = None) -> None:
        self.store = store
        if isinstance(store, LocalStore):
            self.root = store.root
        else:
            digest = hashlib.sha1(str(getattr(store, "uri", repr(store))).encode()).hexdigest()[:12]
            default = Path(tempfile.gettempdir()) / "tweetdomains-shards" / digest
            self.root = Path(local_dir) if local_dir is not None else default

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file() or self.store.exists(key)

    def put(self, key: str, data: bytes) -> None:
        self.store.put(key, data)
        if not isinstance(self.store, LocalStore):
            _write_atomic(self.root / key, data)

    def open(self, key: str) -> ShardFile:
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


# ----------------------------------------------------------------------------- parse and tokenize


def id_hash64(record_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest(), "big")


# Bytes at which str.splitlines breaks a line besides "\n" (\r, \v, \f, \x1c-\x1e, U+0085,
# U+2028, U+2029): a piece between "\n"s that holds one is read line by line as codecs does.
_OTHER_LINE_BREAKS = re.compile(rb"[\r\x0b\x0c\x1c-\x1e]|\xc2\x85|\xe2\x80[\xa8\xa9]")
_OTHER_LINE_BREAK_BYTES = (
    b"\r",
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\x1d",
    b"\x1e",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
    b"\xe2\x80\xa9",
)
_LIST_FIELDS = ("domain_ids", "entities")
_STR_FIELDS = ("id", "lang", "created_at")


def _plain_line(line: bytes) -> tuple[str, list[str], str | None] | None:
    try:
        return _plain_fields(orjson.loads(line))
    except orjson.JSONDecodeError:
        return None


def _plain_fields(obj: Any) -> tuple[str, list[str], str | None] | None:
    """``(text, domains, id)`` of a decoded line that is a plain INTERFACE.md record, one
    ``Record.from_dict`` would take as it is (every field of the type it expects, the text
    valid UTF-8: orjson refuses lone surrogates); None for anything else."""
    if type(obj) is not dict:
        return None
    text, domains = obj.get("text"), obj.get("domains", obj)  # obj: "domains" absent
    if type(text) is not str or domains is obj:
        return None
    for name in _STR_FIELDS:
        value = obj.get(name)
        if value is not None and type(value) is not str:
            return None
    for value in (domains, *(obj.get(name) for name in _LIST_FIELDS)):
        if value is not None and (type(value) is not list or not _all_str(value)):
            return None
    return text, domains or [], obj.get("id")


def _all_str(values: list[Any]) -> bool:
    try:
        "".join(values)  # C speed; TypeError at the first item that is not a str
    except TypeError:
        return False
    return True


def _labeled(
    data: bytes, stats: codecs.ParseStats
) -> tuple[list[str], list[list[str]], list[str | None], int]:
    """The labeled records' texts, domains and ids, and the count of unlabeled ones: what
    ``codecs.read_jsonl_bytes`` reads, counted alike in ``stats``.

    Plain INTERFACE.md lines (what the collector writes) are decoded by orjson straight to
    these fields; any other line (legacy, API payloads, bad JSON, odd line breaks, fields
    of other types) goes through the codecs' own reader.
    """
    if data[:2] == b"\x1f\x8b":
        data = codecs.gunzip_batch(data, stats)
    odd_breaks = any(b in data for b in _OTHER_LINE_BREAK_BYTES)  # memchr: faster than the regex
    texts: list[str] = []
    domains: list[list[str]] = []
    ids: list[str | None] = []
    unlabeled = 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        fields = None if odd_breaks and _OTHER_LINE_BREAKS.search(line) else _plain_line(line)
        if fields is not None:
            stats.lines += 1
            stats.records += 1
            if fields[1]:
                texts.append(fields[0])
                domains.append(fields[1])
                ids.append(fields[2])
            else:
                unlabeled += 1
            continue
        for record in codecs.read_text_lines(line.decode("utf-8", "replace").splitlines(), stats):
            if record.domains:
                texts.append(record.text)
                domains.append(list(record.domains))
                ids.append(record.id)
            else:
                unlabeled += 1
    return texts, domains, ids, unlabeled


def _interned(items: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct ``items`` in order of first appearance, and each item's index among them."""
    table = list(dict.fromkeys(items))
    index = {item: i for i, item in enumerate(table)}
    ids = np.array(list(map(index.__getitem__, items)), dtype=np.int64)
    return table, ids


def _word_tokens(normalized: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """``(token table, token ids, [n + 1] offsets, content key per text)`` of normalized texts;
    the key is ``content_key``'s when unescaping and a retweet prefix change nothing."""
    if not normalized:
        return [], np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), []
    flat = tokenize_many(normalized)
    if flat is None:  # a tweet holding TEXT_END: one text at a time
        flat = [t for text in normalized for t in (*tokenize(text), TEXT_END)]
    table, flat_ids = _interned(flat)
    end_id = table.index(TEXT_END)
    in_key = np.array([t == TEXT_END or not (t.startswith("'") or t == "n't") for t in table], dtype=bool)
    del table[end_id]
    ends = flat_ids == end_id
    end_at = np.flatnonzero(ends)
    token_ids = flat_ids[~ends]
    token_ids -= (token_ids > end_id).astype(np.int64)  # ids in the table without TEXT_END
    offsets = np.zeros(len(normalized) + 1, dtype=np.int64)
    offsets[1:] = end_at - np.arange(len(end_at))
    # Every text's key words joined at once, then cut at the TEXT_ENDs kept among them.
    kept = itertools.compress(flat, in_key[flat_ids].tolist())
    keys = [key.strip(" ") for key in " ".join(kept).split(TEXT_END)[: len(normalized)]]
    return table, token_ids, offsets, keys


def _content_key(text: str, own_key: str) -> str | None:
    """``content_key(text)`` from the key of the text's own tokens, or None where only
    ``content_key`` can tell (a second unescape changes the text, or a URL could reach
    across its retweet prefix).

    Without a retweet prefix the two keys are one. With one, the tokens of the text are
    ``rt`` and then those of the text after the prefix: the mention is dropped by both, and
    what the prefix leaves (``:``, spaces) is no token.
    """
    unescaped = html.unescape(text)  # the text itself when it holds no "&"
    if "&" in unescaped and html.unescape(unescaped) != unescaped:
        return None
    end = retweet_prefix_end(unescaped)
    if not end:
        return own_key
    span = unescaped[: end + 3]  # a URL reaching across the prefix shows its "://" or "www." here
    if "://" in span or "www." in span.lower() or not (own_key == "rt" or own_key.startswith("rt ")):
        return None
    return own_key[3:]


def tokenize_batch(raw_key: str, data: bytes) -> bytes:
    """One raw batch's words shard (see the module doc). Runs in a worker process.

    Unlabeled records are counted and dropped (as :func:`dataset.build_dataset` does); the
    others keep their order, so the corpus order is the store's key order, record by record.
    The batch is read, normalized and tokenized as a whole (see :func:`_labeled`,
    ``text.normalize_many``, ``text.tokenize_many``): the shard is the one record-by-record
    ``read_jsonl_bytes`` + ``tokenize(normalize(text))`` + ``content_hash`` gives.
    """
    stats = codecs.ParseStats()
    texts, domains, record_ids, unlabeled = _labeled(data, stats)
    tokens, token_ids, token_offsets, keys = _word_tokens(normalize_many(texts))
    labels, label_ids = _interned(list(itertools.chain.from_iterable(domains)))
    label_offsets = np.zeros(len(domains) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, domains), dtype=np.int64, count=len(domains)), out=label_offsets[1:])
    derived = [_content_key(text, key) for text, key in zip(texts, keys, strict=True)]
    rekeyed = iter(content_key_many([text for text, key in zip(texts, derived, strict=True) if key is None]))
    keys = [key if key is not None else next(rekeyed) for key in derived]
    content = array("Q", [int.from_bytes(hashlib.sha1(k.encode("utf-8")).digest()[:8], "big") for k in keys])
    ids = array("Q", [id_hash64(i) if i is not None else 0 for i in record_ids])
    token_blob, token_table_offsets = _table(tokens)
    label_blob, label_table_offsets = _table(labels)
    arrays: dict[str, np.ndarray] = {
        "token_ids": token_ids.astype(np.uint32),
        "token_offsets": token_offsets,
        "label_ids": label_ids.astype(np.uint16),
        "label_offsets": label_offsets,
        "content_hash": np.frombuffer(content, dtype=np.uint64),
        "id_hash": np.frombuffer(ids, dtype=np.uint64),
        "has_id": np.array([i is not None for i in record_ids], dtype=bool),
        "tokens_blob": token_blob,
        "tokens_offsets": token_table_offsets,
        "labels_blob": label_blob,
        "labels_offsets": label_table_offsets,
    }
    meta = {
        "raw_key": raw_key,
        "raw_bytes": len(data),
        "rows": len(content),
        "unlabeled": unlabeled,
        "stats": {
            "lines": stats.lines,
            "records": stats.records,
            "bad_lines": stats.bad_lines,
            "skipped": stats.skipped,
            "repaired": stats.repaired,
        },
    }
    return pack(arrays, meta)


def tokenize_task(args: tuple[str, bytes]) -> tuple[str, bytes]:
    """``(raw key, words shard)`` for a pool worker (this module imports no torch)."""
    return args[0], tokenize_batch(*args)


def stats_of(shard: ShardFile) -> codecs.ParseStats:
    saved = shard.meta["stats"]
    return codecs.ParseStats(
        saved["lines"], saved["records"], saved["bad_lines"], dict(saved["skipped"]), dict(saved["repaired"])
    )


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
        return cls(raw_key, file, read_table(file, "labels"))

    @property
    def tokens(self) -> list[str]:
        return read_table(self.file, "tokens")

    def __len__(self) -> int:
        return int(self.file.meta["rows"])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.file["token_offsets"])


def encode_words(shard: WordShard, vocab: Vocabulary, max_tokens: int) -> bytes:
    """The shard's records encoded with ``vocab``, exactly as :func:`data.encode_split` does:
    ``vocab.encode(tokens)[:max_tokens] or [UNK_ID]`` per record, as one table lookup.

    Each distinct token is encoded once (one id for a word vocabulary, its pieces for a
    wordpiece one); the records' ids are gathered from that table with numpy.
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

    token_ids = np.asarray(shard.file["token_ids"], dtype=np.int64)
    row_lengths = np.diff(shard.file["token_offsets"])
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
    ids = np.full(int(offsets[-1]), UNK_ID, dtype=id_dtype(vocab))
    nonempty_slots = np.ones(len(ids), dtype=bool)
    nonempty_slots[offsets[:-1][empty]] = False
    ids[nonempty_slots] = kept
    meta = {"raw_key": shard.key, "rows": len(lengths), "vocab_fingerprint": vocab.fingerprint()}
    return pack({"ids": ids, "offsets": offsets}, meta)


def id_dtype(vocab: Vocabulary) -> np.dtype[Any]:
    """2-byte ids for any vocabulary that fits (every word and wordpiece table here does)."""
    return np.dtype(np.uint16) if len(vocab) <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)
