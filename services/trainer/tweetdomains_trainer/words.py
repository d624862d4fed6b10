"""Words shards: one raw batch read, normalized and tokenized as a whole (the hot path of
:meth:`corpus.ShardedCorpus.prepare`).

:func:`tokenize_batch` makes the vocabulary-free shard :mod:`shards` describes, byte for
byte the one a record-by-record ``read_jsonl_bytes`` + ``tokenize(normalize(text))`` +
``content_hash`` pass makes: plain INTERFACE.md lines go through orjson straight to the
fields a shard keeps, every other line through the codecs' reader; the texts are normalized
and tokenized in one pass (``text.tokenize_texts``).
"""

from __future__ import annotations

import hashlib
import html
import itertools
import re
from array import array
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
    index = dict(zip(table, range(len(table)), strict=True))
    ids = np.fromiter(map(index.__getitem__, items), dtype=np.int64, count=len(items))
    return table, ids


def _word_tokens(texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """``(token table, token ids, [n + 1] offsets, content key per text)`` of raw texts, each
    tokenized as ``tokenize(normalize(text))``; the key is ``content_key``'s when unescaping
    and a retweet prefix change nothing."""
    per_text = tokenize_texts(texts)
    flat = list(itertools.chain.from_iterable(per_text))
    table, token_ids = _interned(flat)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text)), out=offsets[1:])
    keys = [" ".join(tokens) for tokens in per_text]
    for i, key in enumerate(keys):
        if "'" in key:  # only the clitics ("'s", "n't") hold one, and the key drops them
            keys[i] = " ".join([t for t in per_text[i] if t[0] != "'" and t != "n't"])
    return table, token_ids, offsets, keys


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


def tokenize_batch(raw_key: str, data: bytes) -> bytes:
    """One raw batch's words shard (see the module doc). Runs in a worker process.

    Unlabeled records are counted and dropped (as :func:`dataset.build_dataset` does); the
    others keep their order, so the corpus order is the store's key order, record by record.
    The batch is read, normalized and tokenized as a whole (see :func:`_labeled`,
    ``text.tokenize_texts``): the shard is the one record-by-record
    ``read_jsonl_bytes`` + ``tokenize(normalize(text))`` + ``content_hash`` gives.
    """
    stats = codecs.ParseStats()
    texts, domains, record_ids, unlabeled = _labeled(data, stats)
    tokens, token_ids, token_offsets, keys = _word_tokens(texts)
    labels, label_ids = _interned(list(itertools.chain.from_iterable(domains)))
    label_offsets = np.zeros(len(domains) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, domains), dtype=np.int64, count=len(domains)), out=label_offsets[1:])
    derived = [_content_key(text, key) for text, key in zip(texts, keys, strict=True)]
    rekeyed = iter(content_key_many([text for text, key in zip(texts, derived, strict=True) if key is None]))
    keys = [key if key is not None else next(rekeyed) for key in derived]
    content = array("Q", [int.from_bytes(hashlib.sha1(k.encode("utf-8")).digest()[:8], "big") for k in keys])
    ids = array("Q", [id_hash64(i) if i is not None else 0 for i in record_ids])
    token_blob, token_table_offsets = string_table(tokens)
    label_blob, label_table_offsets = string_table(labels)
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
