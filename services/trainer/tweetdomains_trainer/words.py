"""Words shards: one raw batch read, normalized and tokenized a chunk of lines at a time (the
hot path of :meth:`corpus.ShardedCorpus.prepare`).

:func:`tokenize_batch` makes the vocabulary-free shard :mod:`shards` describes, byte for
byte the one a record-by-record ``read_jsonl_bytes`` + ``tokenize(normalize(text))`` +
``content_hash`` pass makes: plain INTERFACE.md lines go through orjson straight to the
fields a shard keeps, every other line through the codecs' reader; each chunk's texts are
normalized and tokenized in one pass (``text.tokenize_texts``). A worker holds one chunk's
records as Python objects, whatever the batch's size; the rows go into compact arrays.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import re
import zlib
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import orjson

from tweetdomains import codecs
from tweetdomains.text import content_key_many, retweet_prefix_end, tokenize_texts
from tweetdomains_trainer.shards import ShardFile, pack, string_table


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
_STR_OR_NONE = frozenset({str, type(None)})


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
    get = obj.get
    text, domains, record_id = get("text"), get("domains", obj), get("id")  # obj: "domains" absent
    if (
        type(text) is not str
        or domains is obj
        or type(record_id) not in _STR_OR_NONE
        or type(get("lang")) not in _STR_OR_NONE
        or type(get("created_at")) not in _STR_OR_NONE
    ):
        return None
    for value in (domains, get("domain_ids"), get("entities")):
        if value is not None and (type(value) is not list or (value and not _all_str(value))):
            return None
    return text, domains or [], record_id


def _all_str(values: list[Any]) -> bool:
    try:
        "".join(values)  # C speed; TypeError at the first item that is not a str
    except TypeError:
        return False
    return True


def _labeled(
    lines: list[bytes], odd_breaks: bool, stats: codecs.ParseStats
) -> tuple[list[str], list[list[str]], list[str | None], int]:
    """The labeled records' texts, domains and ids among ``lines``, and the count of unlabeled
    ones: what ``codecs.read_jsonl_bytes`` reads, counted alike in ``stats``.

    Plain INTERFACE.md lines (what the collector writes) are decoded by orjson straight to
    these fields; any other line (legacy, API payloads, bad JSON, odd line breaks, fields
    of other types) goes through the codecs' own reader. ``odd_breaks`` is False only when
    no line holds a line break other than ``\n`` (then none is searched for).
    """
    texts: list[str] = []
    domains: list[list[str]] = []
    ids: list[str | None] = []
    unlabeled = 0
    for line in lines:
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


def _intern(index: dict[str, int], items: list[str]) -> np.ndarray:
    """Each item's id in ``index`` (ids in order of first appearance), new items added."""
    new = [item for item in dict.fromkeys(items) if item not in index]
    index.update(zip(new, range(len(index), len(index) + len(new)), strict=True))
    return np.fromiter(map(index.__getitem__, items), dtype=np.int64, count=len(items))


def _counts(groups: list[list[str]]) -> np.ndarray:
    return np.fromiter(map(len, groups), dtype=np.int64, count=len(groups))


def _word_tokens(texts: list[str]) -> tuple[list[str], list[int], list[str]]:
    """``(tokens of every text in a row, tokens per text, content key per text)`` of raw texts,
    each tokenized as ``tokenize(normalize(text))``; the key is ``content_key``'s when
    unescaping and a retweet prefix change nothing."""
    per_text = tokenize_texts(texts)
    flat = list(itertools.chain.from_iterable(per_text))
    keys = [" ".join(tokens) for tokens in per_text]
    for i, key in enumerate(keys):
        if "'" in key:  # only the clitics ("'s", "n't") hold one, and the key drops them
            keys[i] = " ".join([t for t in per_text[i] if t[0] != "'" and t != "n't"])
    return flat, list(map(len, per_text)), keys


_RT = frozenset({"rt", "rT", "Rt", "RT"})  # what a retweet prefix starts with (IGNORECASE folds no other)


def _content_key(text: str, own_key: str) -> str | None:
    """``content_key(text)`` from the key of the text's own tokens, or None where only
    ``content_key`` can tell (a second unescape changes the text, or a URL could reach
    across its retweet prefix).

    Without a retweet prefix the two keys are one. With one, the tokens of the text are
    ``rt`` and then those of the text after the prefix: the mention is dropped by both, and
    what the prefix leaves (``:``, spaces) is no token.
    """
    if "&" not in text and text[:2] not in _RT:
        return own_key
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


# Lines read into Python objects at a time, and decompressed bytes read at a time: what a
# worker holds beyond the shard it builds, whatever the size of the batch.
CHUNK_LINES = 1024
READ_BYTES = 1 << 20


class _NotOneGzipMember(Exception):
    """The batch is not one whole gzip member (truncated, damaged, several): read it whole."""


def _gunzipped(data: bytes) -> Iterator[bytes]:
    """A gzip batch's bytes, ``READ_BYTES`` at a time, when it is one whole member (trailing
    NULs aside): exactly ``gzip.decompress``; else :class:`_NotOneGzipMember`, at the end."""
    decompressor = zlib.decompressobj(wbits=31)
    tail = data
    try:
        while not decompressor.eof:
            piece = decompressor.decompress(tail, READ_BYTES)
            tail = decompressor.unconsumed_tail
            if piece:
                yield piece
            elif not tail:
                break  # the input is used up before the end of the stream: truncated
    except zlib.error:
        raise _NotOneGzipMember from None
    if not decompressor.eof or decompressor.unused_data.lstrip(b"\0"):
        raise _NotOneGzipMember


def _line_chunks(pieces: Iterable[bytes]) -> Iterator[tuple[list[bytes], bool]]:
    """The lines (split at ``\\n``, as ``bytes.split``) of the concatenated ``pieces``, at most
    ``CHUNK_LINES`` at a time, each chunk with whether it may hold another line break."""
    rest: list[bytes] = []  # the line the pieces so far end in, not yet whole
    for piece in pieces:
        if b"\n" not in piece:
            rest.append(piece)
            continue
        buffer = b"".join([*rest, piece])
        lines = buffer.split(b"\n")
        rest = [lines.pop()]
        odd = any(b in buffer for b in _OTHER_LINE_BREAK_BYTES)  # memchr: faster than the regex
        for at in range(0, len(lines), CHUNK_LINES):
            yield lines[at : at + CHUNK_LINES], odd
    last = b"".join(rest)
    yield [last], any(b in last for b in _OTHER_LINE_BREAK_BYTES)


class _ShardBuilder:
    """A words shard built chunk by chunk: the tables grow, the rows go into compact arrays."""

    def __init__(self) -> None:
        self.stats = codecs.ParseStats()
        self.unlabeled = 0
        self.tokens: dict[str, int] = {}
        self.labels: dict[str, int] = {}
        self.arrays: dict[str, list[np.ndarray]] = {name: [] for name in _ROW_ARRAYS}

    def add(self, lines: list[bytes], odd_breaks: bool) -> None:
        texts, domains, record_ids, unlabeled = _labeled(lines, odd_breaks, self.stats)
        self.unlabeled += unlabeled
        flat, lengths, keys = _word_tokens(texts)
        derived = [_content_key(text, key) for text, key in zip(texts, keys, strict=True)]
        rekeyed = iter(content_key_many([t for t, key in zip(texts, derived, strict=True) if key is None]))
        keys = [key if key is not None else next(rekeyed) for key in derived]
        content = array(
            "Q", [int.from_bytes(hashlib.sha1(k.encode("utf-8")).digest()[:8], "big") for k in keys]
        )
        ids = array("Q", [id_hash64(i) if i is not None else 0 for i in record_ids])
        out = self.arrays
        out["token_ids"].append(_intern(self.tokens, flat).astype(np.uint32))
        out["token_counts"].append(np.array(lengths, dtype=np.int64))
        out["label_ids"].append(
            _intern(self.labels, list(itertools.chain.from_iterable(domains))).astype(np.uint16)
        )
        out["label_counts"].append(_counts(domains))
        out["content_hash"].append(np.frombuffer(content, dtype=np.uint64))
        out["id_hash"].append(np.frombuffer(ids, dtype=np.uint64))
        out["has_id"].append(np.array([i is not None for i in record_ids], dtype=bool))

    def pack(self, raw_key: str, raw_bytes: int) -> bytes:
        # Each array's chunks are let go as it is joined: the rows are held once, not twice.
        rows = {name: np.concatenate(self.arrays.pop(name)) for name in _ROW_ARRAYS}
        token_blob, token_table_offsets = string_table(list(self.tokens))
        label_blob, label_table_offsets = string_table(list(self.labels))
        arrays: dict[str, np.ndarray] = {
            "token_ids": rows["token_ids"],
            "token_offsets": _offsets(rows["token_counts"]),
            "label_ids": rows["label_ids"],
            "label_offsets": _offsets(rows["label_counts"]),
            "content_hash": rows["content_hash"],
            "id_hash": rows["id_hash"],
            "has_id": rows["has_id"],
            "tokens_blob": token_blob,
            "tokens_offsets": token_table_offsets,
            "labels_blob": label_blob,
            "labels_offsets": label_table_offsets,
        }
        stats = self.stats
        meta = {
            "raw_key": raw_key,
            "raw_bytes": raw_bytes,
            "rows": len(rows["content_hash"]),
            "unlabeled": self.unlabeled,
            "stats": {
                "lines": stats.lines,
                "records": stats.records,
                "bad_lines": stats.bad_lines,
                "skipped": stats.skipped,
                "repaired": stats.repaired,
            },
        }
        return pack(arrays, meta)


_ROW_ARRAYS = ("token_ids", "token_counts", "label_ids", "label_counts", "content_hash", "id_hash", "has_id")


def _offsets(counts: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def tokenize_batch(raw_key: str, data: bytes) -> bytes:
    """One raw batch's words shard (see the module doc). Runs in a worker process.

    Unlabeled records are counted and dropped (as :func:`dataset.build_dataset` does); the
    others keep their order, so the corpus order is the store's key order, record by record.
    The batch is decompressed ``READ_BYTES`` and read ``CHUNK_LINES`` lines at a time, each
    chunk normalized and tokenized as a whole (see :func:`_labeled`, ``text.tokenize_texts``),
    so a worker's memory is the shard's arrays, not the batch's records as objects. The shard
    is the one record-by-record ``read_jsonl_bytes`` + ``tokenize(normalize(text))`` +
    ``content_hash`` gives.
    """
    if data[:2] == b"\x1f\x8b":
        builder = _ShardBuilder()
        try:
            for lines, odd in _line_chunks(_gunzipped(data)):
                builder.add(lines, odd)
            return builder.pack(raw_key, len(data))
        except _NotOneGzipMember:
            pass  # read again from the start, as the codecs do (what they count and keep)
        builder = _ShardBuilder()
        pieces: Iterable[bytes] = [codecs.gunzip_batch(data, builder.stats)]
    else:
        builder = _ShardBuilder()
        pieces = (data[at : at + READ_BYTES] for at in range(0, len(data), READ_BYTES))
    for lines, odd in _line_chunks(pieces):
        builder.add(lines, odd)
    return builder.pack(raw_key, len(data))


def tokenize_task(args: tuple[str, bytes]) -> tuple[str, bytes]:
    """``(raw key, words shard)`` for a pool worker (this module imports no torch)."""
    return args[0], tokenize_batch(*args)


def stats_of(shard: ShardFile) -> codecs.ParseStats:
    saved = shard.meta["stats"]
    return codecs.ParseStats(
        saved["lines"], saved["records"], saved["bad_lines"], dict(saved["skipped"]), dict(saved["repaired"])
    )
