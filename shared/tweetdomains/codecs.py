"""Readers and writers for every tweet format the project meets, all yielding :class:`Record`.

Formats, detected per line (or per file, for one pretty-printed JSON document):

``api``
    X API v2 payloads: sampled/filtered-stream messages ``{"data": {tweet}, "includes": ...,
    "matching_rules": ...}``, search and lookup responses ``{"data": [tweets], "includes": ...}``
    (also with twarc2's ``__twarc``), error payloads ``{"errors": [...]}``, a bare list of tweets,
    and an ``includes`` object saved on its own (``{"tweets": [...], "users": [...]}``).
``tweet``
    One tweet object per line: twarc2's flattened form (``author``, inlined ``referenced_tweets``)
    or a bare API tweet.
``normalized``
    The INTERFACE.md record, the benchmark files, TweetTopicXL (``topics`` as the labels).
``legacy``
    The original project's stream file: ``b'<python bytes literal>'<COMMA>Domain<COMMA>...``.

Bad input never raises: each line that yields no record is counted in :class:`ParseStats`.
Tweets without context annotations still become records (with no domains); dropping them
is the collector's decision, see :func:`keep_reason`. The X API tweet objects are read by
:mod:`tweetdomains.xapi`, the legacy lines by :mod:`tweetdomains.legacy`; the names they
export are re-exported here, the one reader module the services import.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

from tweetdomains.legacy import LEGACY_SEPARATOR as LEGACY_SEPARATOR
from tweetdomains.legacy import LegacyFormatError as LegacyFormatError
from tweetdomains.legacy import decode_bytes_literal as decode_bytes_literal
from tweetdomains.legacy import format_legacy_line as format_legacy_line
from tweetdomains.legacy import parse_legacy_line
from tweetdomains.parse_stats import ParseStats as ParseStats
from tweetdomains.parse_stats import clean_text
from tweetdomains.records import Record, RecordError
from tweetdomains.xapi import referenced_map, tweets_to_records
from tweetdomains.xapi import tweet_to_record as tweet_to_record

FORMAT_API = "api"
FORMAT_TWEET = "tweet"
FORMAT_NORMALIZED = "normalized"
FORMAT_LEGACY = "legacy"
FORMAT_UNKNOWN = "unknown"

# Keys only a tweet object from the API (or twarc's flattening of one) carries; a normalized
# record has none of them, so their presence tells the two apart.
_TWEET_KEYS = frozenset(
    {
        "context_annotations",
        "author_id",
        "author",
        "referenced_tweets",
        "edit_history_tweet_ids",
        "conversation_id",
        "public_metrics",
        "possibly_sensitive",
        "reply_settings",
        "attachments",
        "in_reply_to_user_id",
        "note_tweet",
        "__twarc",
    }
)
_PAYLOAD_KEYS = frozenset({"data", "errors", "includes", "matching_rules", "meta"})


# --------------------------------------------------------------------------- API tweets
def _classify(obj: Any, label_field: str = "domains") -> str:
    if isinstance(obj, list):
        return FORMAT_API
    if not isinstance(obj, Mapping):
        return FORMAT_UNKNOWN
    if "text" not in obj and (_PAYLOAD_KEYS & obj.keys() or isinstance(obj.get("tweets"), list)):
        return FORMAT_API
    if label_field in obj or "domains" in obj or "topics" in obj:
        return FORMAT_NORMALIZED
    if ("text" in obj or "html" in obj) and (
        _TWEET_KEYS & obj.keys() or isinstance(obj.get("entities"), Mapping)
    ):
        return FORMAT_TWEET
    if "text" in obj:
        return FORMAT_NORMALIZED
    return FORMAT_UNKNOWN


def detect_format(first_line_or_obj: str | bytes | Any) -> str:
    """The format of one input line or one decoded JSON value.

    Returns ``"api"``, ``"tweet"``, ``"normalized"``, ``"legacy"`` or ``"unknown"``.
    """
    value = first_line_or_obj
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        line = value.strip()
        if line.startswith(("b'", 'b"')):
            return FORMAT_LEGACY
        try:
            value = json.loads(line)
        except ValueError:
            return FORMAT_UNKNOWN
    return _classify(value)


def parse_payload(obj: Any, stats: ParseStats | None = None, label_field: str = "domains") -> list[Record]:
    """The records in one decoded JSON value: a stream message, an API response, a tweet, a
    normalized record, or a list of any of these. Never raises: API ``errors`` entries and
    anything unusable are counted in ``stats``."""
    stats = stats if stats is not None else ParseStats()
    if not isinstance(obj, list):
        return _parse_object(obj, stats, label_field)
    records: list[Record] = []
    pending: list[Any] = [obj]  # lists of lists, flattened without recursion
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(reversed(item))
        else:
            records.extend(_parse_object(item, stats, label_field))
    return records


def _parse_object(obj: Any, stats: ParseStats, label_field: str) -> list[Record]:
    kind = _classify(obj, label_field)
    records: list[Record]
    if kind == FORMAT_API:
        errors = obj.get("errors")
        if isinstance(errors, list) and errors:
            stats.skip("api_error", len(errors))
        elif errors:
            stats.skip("api_error")
        includes = obj.get("includes")
        data = obj.get("data")
        if "data" not in obj and isinstance(obj.get("tweets"), list):
            # An "includes" object saved on its own: its tweets are the content.
            data, includes = obj["tweets"], obj
        referenced = referenced_map(includes)
        if isinstance(data, Mapping):
            records = tweets_to_records([data], referenced, stats)
        elif isinstance(data, list):
            records = tweets_to_records(data, referenced, stats)
        else:
            if data is not None:
                stats.skip("unknown_shape")
            records = []
    elif kind == FORMAT_TWEET:
        records = tweets_to_records([obj], {}, stats)
    elif kind == FORMAT_NORMALIZED:
        if isinstance(obj.get("id"), float):
            # TweetTopicXL's es/ja files store ids as floats (1.542085202e+18): digits are lost,
            # so the id is dropped rather than the tweet.
            obj = {**obj, "id": None}
            stats.repair("lossy_id")
        try:
            record = Record.from_dict(obj, label_field=label_field)
        except RecordError:
            stats.bad("bad_record")
            return []
        text = clean_text(record.text, stats)
        records = [record if text is record.text else replace(record, text=text)]
    else:
        stats.skip("unknown_shape")
        records = []
    stats.records += len(records)
    return records


def keep_reason(
    record: Record, languages: Iterable[str] | None = ("en",), require_annotations: bool = True
) -> str | None:
    """Why the collector should drop ``record`` (``"empty_text"``, ``"lang"``,
    ``"no_annotations"``), or None to keep it.

    ``languages`` None or empty keeps every language; a record of unknown language (``lang``
    None, as in the legacy file) passes the language test. The API's ``"und"`` does not.
    """
    if not record.text.strip():
        return "empty_text"
    allowed = tuple(languages or ())
    if allowed and record.lang is not None and record.lang not in allowed:
        return "lang"
    if require_annotations and not record.domains:
        return "no_annotations"
    return None


# --------------------------------------------------------------------------- legacy format


# --------------------------------------------------------------------------- lines and files


def _parse_line(line: str, stats: ParseStats, label_field: str) -> list[Record]:
    """Decode one non-blank line; counts it and any failure in ``stats``."""
    stats.lines += 1
    stripped = line.strip()
    if stripped.startswith(("b'", 'b"')):
        try:
            record = parse_legacy_line(stripped, stats)
        except LegacyFormatError:
            stats.bad("bad_legacy")
            return []
        stats.records += 1
        return [record]
    try:
        obj = json.loads(stripped)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        stats.bad("bad_json")
        return []
    return parse_payload(obj, stats, label_field)


def _iter_lines(lines: Iterable[str], stats: ParseStats, label_field: str) -> Iterator[Record]:
    for line in lines:
        if line.strip():
            yield from _parse_line(line, stats, label_field)


def _open_text(path: Path) -> IO[str]:
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline=None)
    return open(path, encoding="utf-8", errors="replace", newline=None)


def _first_line_parses(line: str) -> bool:
    stripped = line.strip()
    if stripped.startswith(("b'", 'b"')):
        return True
    try:
        json.loads(stripped)
    except (ValueError, RecursionError):
        return False
    return True


def iter_records(
    path: str | Path, stats: ParseStats | None = None, label_field: str = "domains"
) -> Iterator[Record]:
    """Every record in one file (plain or gzip), whatever its format, detected line by line.

    A file whose first line is not a value on its own is tried as one (pretty-printed) JSON
    document; if that fails too, it is read line by line and its bad lines are counted.
    A truncated or corrupt gzip stream ends the file and is counted under ``bad_gzip``.
    """
    path = Path(path)
    stats = stats if stats is not None else ParseStats()
    try:
        with _open_text(path) as handle:
            first = ""
            for candidate in handle:
                if candidate.strip():
                    first = candidate
                    break
            if not first:
                return
            if _first_line_parses(first):
                yield from _iter_lines([first], stats, label_field)
                yield from _iter_lines(handle, stats, label_field)
                return
            document = first + handle.read()
        try:
            obj = json.loads(document)
        except (ValueError, RecursionError):
            yield from _iter_lines(document.splitlines(), stats, label_field)
            return
        stats.lines += 1
        yield from parse_payload(obj, stats, label_field)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        stats.bad("bad_gzip")


def iter_paths(patterns: Iterable[str | Path]) -> Iterator[Path]:
    """The files named by ``patterns`` (paths, globs with ``**``, or folders, read recursively),
    each pattern's matches sorted, each file once. Raises FileNotFoundError for a pattern
    that matches no file."""
    seen: set[Path] = set()
    for pattern in patterns:
        text = os.path.expanduser(str(pattern))
        base = Path(text)
        if base.is_dir():
            matches = sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif base.is_file():
            matches = [base]
        else:
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not matches:
            raise FileNotFoundError(f"no files match {str(pattern)!r}")
        for match in matches:
            if match not in seen:
                seen.add(match)
                yield match


# --------------------------------------------------------------------------- store batches


def write_jsonl_gz(records: Iterable[Record], compresslevel: int = 9) -> bytes:
    """Records as gzip-compressed JSONL (one INTERFACE.md object a line), reproducibly
    (no timestamp in the gzip header)."""
    lines = "".join(record.to_json() + "\n" for record in records)
    return gzip.compress(lines.encode("utf-8", "replace"), compresslevel=compresslevel, mtime=0)


def gunzip_batch(data: bytes, stats: ParseStats) -> bytes:
    """A gzip batch's bytes; a truncated or damaged stream gives what it still holds and
    counts one ``bad_gzip`` line."""
    try:
        return gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        pass
    # Keep what a truncated or damaged stream still holds; its cut last line counts as bad.
    stats.bad("bad_gzip")
    decompressor = zlib.decompressobj(wbits=31)
    try:
        return decompressor.decompress(data)
    except zlib.error:
        return b""


def read_jsonl_bytes(
    data: bytes, stats: ParseStats | None = None, label_field: str = "domains"
) -> Iterator[Record]:
    """The records of one store batch (gzip or plain bytes, any line format)."""
    stats = stats if stats is not None else ParseStats()
    if data[:2] == b"\x1f\x8b":
        data = gunzip_batch(data, stats)
    text = data.decode("utf-8", "replace")
    yield from _iter_lines(text.splitlines(), stats, label_field)


def read_text_lines(
    lines: Iterable[str], stats: ParseStats | None = None, label_field: str = "domains"
) -> Iterator[Record]:
    """The records of decoded lines, as :func:`read_jsonl_bytes` reads each (blank ones skipped)."""
    return _iter_lines(lines, stats if stats is not None else ParseStats(), label_field)
