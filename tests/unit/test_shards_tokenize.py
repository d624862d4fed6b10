"""The words shard of a batch read whole (orjson, batch normalization) is the one the
record-by-record reader made before, byte for byte, whatever the batch holds."""

from __future__ import annotations

import gzip
import hashlib
import html
import random
from array import array
from pathlib import Path

import numpy as np
import pytest

from tweetdomains import codecs
from tweetdomains.records import Record
from tweetdomains.simulate import generate
from tweetdomains.text import (
    content_hash,
    content_key,
    content_key_many,
    normalize,
    normalize_many,
    tokenize,
    tokenize_texts,
)
from tweetdomains_trainer import words
from tweetdomains_trainer.shards import ShardFile, pack, read_table, string_table
from tweetdomains_trainer.words import tokenize_batch

# ----------------------------------------------------------------------------- the previous path
# tokenize_batch as it was before the batch fast path (commit ad7926b), kept as the reference.


def hash64(hex_digest: str) -> int:
    """The first 8 bytes of a hex digest as an unsigned integer (``split_of`` reads its top 4)."""
    return int(hex_digest[:16], 16)


def content_hash64(text: str, tokens: list[str]) -> int:
    """:func:`hash64` of :func:`text.content_hash`, reusing the tweet's tokens where that is exact.

    ``content_key`` unescapes HTML once more than ``normalize`` does and drops a retweet
    prefix first. Where a second unescape changes nothing and no ``rt`` starts the text,
    both are no-ops, so the key is the tokens already made for training, less the clitics.
    """
    unescaped = html.unescape(text) if "&" in text else text
    if unescaped[:2].lower() == "rt" or ("&" in unescaped and html.unescape(unescaped) != unescaped):
        return hash64(content_hash(text))
    key = " ".join(t for t in tokens if not t.startswith("'") and t != "n't")
    return hash64(hashlib.sha1(key.encode("utf-8")).hexdigest())


def id_hash64(record_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(record_id.encode("utf-8"), digest_size=8).digest(), "big")


def previous_tokenize_batch(raw_key: str, data: bytes) -> bytes:
    """One raw batch's words shard (see the module doc). Runs in a worker process.

    Unlabeled records are counted and dropped (as :func:`dataset.build_dataset` does); the
    others keep their order, so the corpus order is the store's key order, record by record.
    """
    stats = codecs.ParseStats()
    token_index: dict[str, int] = {}
    label_index: dict[str, int] = {}
    token_ids, token_offsets = array("I"), array("q", [0])
    label_ids, label_offsets = array("H"), array("q", [0])
    content, ids, has_id = array("Q"), array("Q"), array("B")
    unlabeled = 0
    for record in codecs.read_jsonl_bytes(data, stats):
        if not record.domains:
            unlabeled += 1
            continue
        tokens = tokenize(normalize(record.text))
        token_ids.extend([token_index.setdefault(t, len(token_index)) for t in tokens])
        token_offsets.append(len(token_ids))
        label_ids.extend([label_index.setdefault(d, len(label_index)) for d in record.domains])
        label_offsets.append(len(label_ids))
        content.append(content_hash64(record.text, tokens))
        ids.append(id_hash64(record.id) if record.id is not None else 0)
        has_id.append(record.id is not None)
    token_blob, token_table_offsets = string_table(list(token_index))
    label_blob, label_table_offsets = string_table(list(label_index))
    arrays: dict[str, np.ndarray] = {
        "token_ids": np.frombuffer(token_ids, dtype=np.uint32),
        "token_offsets": np.frombuffer(token_offsets, dtype=np.int64),
        "label_ids": np.frombuffer(label_ids, dtype=np.uint16),
        "label_offsets": np.frombuffer(label_offsets, dtype=np.int64),
        "content_hash": np.frombuffer(content, dtype=np.uint64),
        "id_hash": np.frombuffer(ids, dtype=np.uint64),
        "has_id": np.frombuffer(has_id, dtype=np.uint8).astype(bool),
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


# ----------------------------------------------------------------------------- the batches

TRICKY_TEXTS = [
    "Fish &amp; chips &lt;3 at the match",
    "a &amp; b &amp;amp; c",
    "&amp;lt;3 double escaped",
    "RT @someone: Big win for the team tonight!",
    "rt @x retweeted text",
    "RT&#32;@x: an escaped space",
    "&#82;T @x: an escaped R",
    "rtl is a channel",
    "RT @http://t.co/x across the prefix",
    "RT @name://x a scheme after the name",
    "RT @userwww.example.com/x a URL inside the name",
    "rt @WWW.x.com upper-case www",
    "RT @name:'s clitic after the colon",
    "RT @x:Σ sigma, RT @y: nested ΣΑΣ",
    "RT\t@x\n:  whitespace",
    "RT @x",
    "RT @x:",
    "RT @x: @y #tag https://t.co/z",
    "RT @x: &amp;amp; double",
    "RT @x.don't stop",
    "RT @x: rt @y: twice",
    "⚽ goal!!! 🎮🎵 https://t.co/x @who #WorldCup",
    "WWW.Example.com and HTTPS://T.CO/abc, httpſ://odd",
    "Don't stop, we're 'quoted' n't it’s",
    "ΟΔΟΣ Σ ΣΑΣ İstanbul straße",
    "tabs\tand\u3000ideographic\xa0spaces\u2009here \x1f sep",
    "a NUL \x00 inside",
    "line\u2028separator and\u0085next line",
    "",
    "   ",
    "u.s covid-19 3.5 e-mail __init__ x_y",
]


def lines_of(records: list[Record]) -> list[str]:
    return [r.to_json() for r in records]


def plain_batch(seed: int) -> list[str]:
    records = generate(60, seed=seed)
    tricky = [
        Record(text=t, domains=("Sport", "Food"), id=f"t{seed}-{i}") for i, t in enumerate(TRICKY_TEXTS)
    ]
    unlabeled = [Record(text="no labels here", id=f"unlabeled{seed}"), Record(text="nor here")]
    duplicates = [
        Record(text="other text, same id", domains=("Music",), id=records[0].id),
        Record(text=records[1].text, domains=records[1].domains, id=f"copy{seed}"),
        records[2],
    ]
    return lines_of(records + tricky + unlabeled + duplicates)


ODD_LINES = [
    '{"id": "s1", "text": "lone \\ud83d surrogate", "domains": ["Sport"]}',
    '{"id": "s2", "text": "a pair \\ud83d\\ude00 escaped", "domains": ["Sport"]}',
    '{"id": 123, "text": "an integer id", "domains": ["Sport"]}',
    '{"id": 1.542085202e+18, "text": "a float id", "domains": ["Sport"]}',
    '{"id": 123456789012345678901234567890, "text": "a huge id", "domains": ["Sport"]}',
    '{"id": "b1", "text": "a boolean id", "domains": ["Sport"], "lang": true}',
    '{"id": "d1", "text": "an integer domain", "domains": ["Sport", 7]}',
    '{"id": "d2", "text": "domains not a list", "domains": "Sport"}',
    '{"id": "d3", "text": "entities not a list", "domains": ["Sport"], "entities": "x"}',
    '{"id": "d4", "text": "null fields", "domains": ["Sport"], "entities": null, "lang": null}',
    '{"id": "d5", "text": "null domains", "domains": null}',
    '{"id": "t1", "text": "topics as labels", "topics": ["Music"]}',
    '{"id": "n1", "text": 42, "domains": ["Sport"]}',
    '{"id": "x1", "text": "a NaN", "domains": ["Sport"], "score": NaN}',
    '{"id": "k1", "text": "first", "text": "duplicate key wins", "domains": ["Sport"]}',
    '{"text": "no id at all", "domains": ["Sport"]}',
    '{"data": {"id": "9", "text": "an API tweet", "context_annotations": '
    '[{"domain": {"id": "10", "name": "Person"}, "entity": {"id": "1", "name": "Ann"}}]}}',
    '{"id": "8", "text": "a bare API tweet", "author_id": "5", "context_annotations": '
    '[{"domain": {"id": "65", "name": "Hobbies"}, "entity": {"id": "2", "name": "x"}}]}',
    '{"errors": [{"title": "Not Found"}]}',
    "[1, 2, 3]",
    "{not json",
    '"just a string"',
    "\ufeff" + '{"id": "bom", "text": "a BOM", "domains": ["Sport"]}',
    '{"id": "cr", "text": "a CRLF line", "domains": ["Sport"]}\r',
    '{"id": "ws", "text": "padded", "domains": ["Sport"]}   \t',
    "\xa0",
    "\x1f",
    "",
    '{"id": "u1", "text": "raw \u2028 line separator", "domains": ["Sport"]}',
    '{"id": "u2", "text": "raw \u0085 next line", "domains": ["Sport"]}',
    '{"id": "u3", "text": "raw \x1c file separator", "domains": ["Sport"]}',
    '{"id": "z1", "text": "escaped NUL \\u0000 inside", "domains": ["Sport"]}',
    '{"id": "deep", "text": "x", "domains": ["Sport"], "nest": ' + "[" * 2000 + "]" * 2000 + "}",
    codecs.format_legacy_line(Record(text="a legacy line \u00e9", domains=("Sport", "Music"))),
]


def batches() -> dict[str, bytes]:
    plain = "\n".join(plain_batch(0)) + "\n"
    odd = "\n".join(ODD_LINES + plain_batch(1)) + "\n"
    invalid_utf8 = odd.encode() + b'{"id": "iu", "text": "bad \xff\xfe bytes", "domains": ["Sport"]}\n'
    whole = gzip.compress(plain.encode(), mtime=0)
    return {
        "gzip": whole,
        "plain": plain.encode(),
        "odd lines": gzip.compress(invalid_utf8, mtime=0),
        "no final newline": plain.rstrip("\n").encode(),
        "truncated gzip": whole[: len(whole) // 2],
        "two gzip members": whole + gzip.compress(odd.encode(), mtime=0),
        "gzip then NULs": whole + b"\0" * 9,
        "gzip then garbage": whole + b"not gzip",
        "a damaged gzip": whole[:40] + bytes(b ^ 0x5A for b in whole[40:80]) + whole[80:],
        "empty": b"",
        "empty gzip": gzip.compress(b"", mtime=0),
        "blank lines only": b"\n\n  \n",
        "unlabeled only": "\n".join(lines_of([Record(text="nothing"), Record(text="x", id="1")])).encode(),
        "a NUL in every text": "\n".join(
            lines_of([Record(text=f"nul \x00 {i}", domains=("Sport",)) for i in range(3)])
        ).encode(),
    }


@pytest.mark.parametrize("name", list(batches()))
def test_the_fast_shard_is_the_previous_paths_byte_for_byte(name: str) -> None:
    data = batches()[name]
    assert tokenize_batch("raw/b.jsonl.gz", data) == previous_tokenize_batch("raw/b.jsonl.gz", data)


@pytest.mark.parametrize("read_bytes", [1, 61, 4096])
@pytest.mark.parametrize("name", list(batches()))
def test_a_batch_read_in_small_pieces_gives_the_same_shard(
    name: str, read_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker decompresses and reads a batch a piece and a few lines at a time (its memory
    does not follow the batch's size): piece and chunk edges change no byte of the shard."""
    data = batches()[name]
    whole = previous_tokenize_batch("raw/b.jsonl.gz", data)
    monkeypatch.setattr(words, "CHUNK_LINES", 3)
    monkeypatch.setattr(words, "READ_BYTES", read_bytes)
    assert tokenize_batch("raw/b.jsonl.gz", data) == whole


def test_the_odd_batch_exercises_what_it_means_to() -> None:
    stats = codecs.ParseStats()
    records = list(codecs.read_jsonl_bytes(batches()["odd lines"], stats))
    assert (
        stats.bad_lines > 0 and stats.repaired.get("surrogates_replaced") and stats.repaired.get("lossy_id")
    )
    assert any(not r.domains for r in records) and any("\ufffd" in r.text for r in records)


def test_batch_normalization_and_content_keys_are_the_per_text_ones() -> None:
    texts = TRICKY_TEXTS + [r.text for r in generate(200, seed=5)] + ["RT @a: " + t for t in TRICKY_TEXTS]
    assert normalize_many(texts) == [normalize(t) for t in texts]
    assert content_key_many(texts) == [content_key(t) for t in texts]


# What each of tokenize_texts' shortcuts turns on: entities, URLs in every case (and the long s
# that folds to "s"), mentions, "#", apostrophes of both kinds, contractions, joiners, "_",
# emoji (some of them digits), final sigma, whitespace of every kind, NUL.
PIECES = [
    *"abdnNtTsSrRmhHpPwW '\u2019.-_#@&;:/xX019 \t\n",
    "n't", "N'T", "'s", "'re", "'S", "'ll", "&amp;", "&amp", "&lt", "&#82;", "&#39;", "&#8217;",
    "&#35;", "&num;", "&commat;", "&#0;", "http://", "HTTPS://", "httpſ://", "www.", "WwW.",
    "Σ", "ΑΣ", "İ", "ß", "é", "\u00ad", "\u0301", "⚽", "❶", "①", "²", "Ⅻ", "\U0001f600", "\u2764",
    "\u2028", "\xa0", "\u3000", "\x1c", "\x1f", "\x00", "RT @x: ", "don't", "u.s.", "covid-19",
    "a..b", "--", "ſ", "\u212a",
]  # fmt: skip


def test_tokenize_texts_is_tokenize_of_normalize_for_any_text() -> None:
    rng = random.Random(0)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 16))) for _ in range(20_000)]
    texts += TRICKY_TEXTS + [r.text for r in generate(300, seed=7)]
    assert tokenize_texts(texts) == [tokenize(normalize(t)) for t in texts]


@pytest.mark.parametrize("names", [["a", "bé", "", "⚽x"], ["", ""], [], ["one\nline", "x"]])
def test_a_string_table_reads_back_whole(tmp_path: Path, names: list[str]) -> None:
    blob, offsets = string_table(names)
    (tmp_path / "t.shard").write_bytes(pack({"t_blob": blob, "t_offsets": offsets}, {}))
    assert read_table(ShardFile(tmp_path / "t.shard"), "t") == names
