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
is the collector's decision, see :func:`keep_reason`.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from tweetdomains import taxonomy
from tweetdomains.records import Record, RecordError

LEGACY_SEPARATOR = "<COMMA>"

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


@dataclass
class ParseStats:
    """What a reader saw: input units, records made, malformed lines, and why things were skipped.

    ``lines`` counts non-blank input lines (a pretty-printed JSON file counts as one).
    ``bad_lines`` counts lines that could not be decoded at all (broken JSON, a broken legacy
    literal, a record with wrong-typed fields, a corrupt gzip stream). ``skipped`` counts, by
    reason, everything that did not become a record (the malformed lines included, under
    ``bad_json``, ``bad_legacy``, ``bad_record``, ``bad_gzip``; API ``errors`` entries under
    ``api_error``; objects without tweet text under ``no_text``; JSON of no known shape under
    ``unknown_shape``). ``repaired`` counts records kept after a repair (``utf8_replaced``,
    ``surrogates_replaced``, ``lossy_id``).
    """

    lines: int = 0
    records: int = 0
    bad_lines: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        """Count ``count`` items that did not become records, for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def bad(self, reason: str) -> None:
        """Count one malformed line (also under ``skipped[reason]``)."""
        self.bad_lines += 1
        self.skip(reason)

    def repair(self, reason: str) -> None:
        """Count one record kept after a repair."""
        self.repaired[reason] = self.repaired.get(reason, 0) + 1

    def merge(self, other: ParseStats) -> ParseStats:
        """Add ``other``'s counts to this one; returns self."""
        self.lines += other.lines
        self.records += other.records
        self.bad_lines += other.bad_lines
        for reason, count in other.skipped.items():
            self.skip(reason, count)
        for reason, count in other.repaired.items():
            self.repaired[reason] = self.repaired.get(reason, 0) + count
        return self

    def summary(self) -> str:
        """One line: ``lines=12 records=9 bad_lines=2 skipped[api_error=1 bad_json=2]``."""
        text = f"lines={self.lines} records={self.records} bad_lines={self.bad_lines}"
        if self.skipped:
            text += " skipped[" + " ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) + "]"
        if self.repaired:
            text += " repaired[" + " ".join(f"{k}={v}" for k, v in sorted(self.repaired.items())) + "]"
        return text


# --------------------------------------------------------------------------- API tweets


def _clean(text: str, stats: ParseStats | None) -> str:
    """Replace lone UTF-16 surrogates (JSON allows ``"\\ud83d"`` alone; UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        if stats is not None:
            stats.repair("surrogates_replaced")
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _opt_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _annotations(tweet: Mapping[str, Any]) -> list[Any]:
    value = tweet.get("context_annotations")
    if isinstance(value, str):  # some exports store the list as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


def _labels(annotations: list[Any]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(sorted unique canonical domain names, their ids, unique entity names in order)."""
    ids_by_name: dict[str, str] = {}
    entities: dict[str, None] = {}
    for item in annotations:
        if not isinstance(item, Mapping):
            continue
        domain = item.get("domain")
        if isinstance(domain, Mapping) and isinstance(domain.get("name"), str) and domain["name"].strip():
            name = taxonomy.canonical_name(domain["name"])
            if name not in ids_by_name:
                ids_by_name[name] = taxonomy.id_for(name) or _opt_str(domain.get("id")) or ""
        entity = item.get("entity")
        if isinstance(entity, Mapping) and isinstance(entity.get("name"), str):
            entities.setdefault(entity["name"], None)
    names = tuple(sorted(ids_by_name))
    return names, tuple(ids_by_name[n] for n in names), tuple(entities)


def _tweet_text(tweet: Mapping[str, Any]) -> str | None:
    note = tweet.get("note_tweet")  # long posts: "text" is cut, the whole text is here
    if isinstance(note, Mapping) and isinstance(note.get("text"), str):
        return str(note["text"])
    text = tweet.get("text")
    if isinstance(text, str):
        return text
    html_text = tweet.get("html")  # an export that renamed "text" and escaped its newlines
    if isinstance(html_text, str):
        return html_text.replace("\\n", "\n")
    return None


def _retweeted(
    tweet: Mapping[str, Any], referenced: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    refs = tweet.get("referenced_tweets")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("type") == "retweeted":
            if _tweet_text(ref) is not None:  # twarc's flattened form inlines the tweet
                return ref
            found = referenced.get(str(ref.get("id")))
            if found is not None and _tweet_text(found) is not None:
                return found
    return None


def tweet_to_record(
    tweet: Any,
    referenced: Mapping[str, Mapping[str, Any]] | None = None,
    stats: ParseStats | None = None,
) -> Record | None:
    """One API tweet object (or twarc's flattened tweet) as a Record; None when it has no text.

    A retweet's own text is cut short (``RT @user: ...…``): when the retweeted tweet is in
    ``referenced`` (the payload's ``includes.tweets`` by id) or inlined, its full text is used.
    The retweet keeps its own id, language and annotations, and borrows the original's
    annotations when it has none.
    """
    if not isinstance(tweet, Mapping):
        return None
    text = _tweet_text(tweet)
    if text is None:
        return None
    annotations = _annotations(tweet)
    original = _retweeted(tweet, referenced or {})
    if original is not None:
        text = _tweet_text(original) or text
        if not annotations:
            annotations = _annotations(original)
    domains, domain_ids, entities = _labels(annotations)
    return Record(
        text=_clean(text, stats),
        domains=domains,
        domain_ids=domain_ids,
        entities=entities,
        id=_opt_str(tweet.get("id")),
        lang=_str_or_none(tweet.get("lang")),
        created_at=_str_or_none(tweet.get("created_at")),
    )


def _referenced_map(includes: Any) -> dict[str, Mapping[str, Any]]:
    tweets = includes.get("tweets") if isinstance(includes, Mapping) else None
    if not isinstance(tweets, list):
        return {}
    return {str(t["id"]): t for t in tweets if isinstance(t, Mapping) and "id" in t}


def _tweets_to_records(
    tweets: Iterable[Any], referenced: Mapping[str, Mapping[str, Any]], stats: ParseStats
) -> list[Record]:
    records = []
    for tweet in tweets:
        record = tweet_to_record(tweet, referenced, stats)
        if record is None:
            stats.skip("no_text")
        else:
            records.append(record)
    return records


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
        referenced = _referenced_map(includes)
        if isinstance(data, Mapping):
            records = _tweets_to_records([data], referenced, stats)
        elif isinstance(data, list):
            records = _tweets_to_records(data, referenced, stats)
        else:
            if data is not None:
                stats.skip("unknown_shape")
            records = []
    elif kind == FORMAT_TWEET:
        records = _tweets_to_records([obj], {}, stats)
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
        text = _clean(record.text, stats)
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


class LegacyFormatError(ValueError):
    """A line that is not ``b'<bytes literal>'<COMMA>Domain...``."""


_SIMPLE_ESCAPES = {
    "n": 0x0A,
    "t": 0x09,
    "r": 0x0D,
    "\\": 0x5C,
    "'": 0x27,
    '"': 0x22,
    "a": 0x07,
    "b": 0x08,
    "f": 0x0C,
    "v": 0x0B,
}
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"


def decode_bytes_literal(line: str) -> tuple[bytes, int]:
    """Decode the Python bytes literal at the start of ``line`` without evaluating it.

    Returns the bytes and the index just past the closing quote. Handles ``\\xNN``, octal,
    ``\\n \\t \\r \\a \\b \\f \\v \\\\ \\' \\"`` and, like Python, keeps an unknown escape's
    backslash. Raises :class:`LegacyFormatError` on anything else.
    """
    if len(line) < 3 or line[0] != "b" or line[1] not in "'\"":
        raise LegacyFormatError("not a bytes literal")
    quote = line[1]
    out = bytearray()
    i, end = 2, len(line)
    while i < end:
        char = line[i]
        if char == quote:
            return bytes(out), i + 1
        if char == "\\":
            if i + 1 >= end:
                break
            code = line[i + 1]
            if code in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[code])
                i += 2
            elif code == "x":
                digits = line[i + 2 : i + 4]
                if len(digits) != 2 or any(d not in _HEX for d in digits):
                    raise LegacyFormatError(f"bad \\x escape at column {i}")
                out.append(int(digits, 16))
                i += 4
            elif code in _OCTAL:
                j = i + 1
                while j < min(i + 4, end) and line[j] in _OCTAL:
                    j += 1
                out.append(int(line[i + 1 : j], 8) & 0xFF)
                i = j
            elif code == "\n":  # line continuation
                i += 2
            else:
                out.extend(b"\\")
                i += 1
        elif char in "\r\n":
            raise LegacyFormatError("unescaped line break inside the literal")
        else:
            out.extend(char.encode("utf-8"))  # Python allows ASCII only; be lenient
            i += 1
    raise LegacyFormatError("unterminated bytes literal")


def parse_legacy_line(line: str, stats: ParseStats | None = None) -> Record:
    """One legacy line as a Record (no id or language; domains canonical, sorted, unique).

    Invalid UTF-8 in the literal is replaced by U+FFFD and counted under
    ``repaired["utf8_replaced"]``. Raises :class:`LegacyFormatError` on a malformed line.
    """
    line = line.rstrip("\r\n")
    raw, end = decode_bytes_literal(line)
    rest = line[end:]
    if rest and not rest.startswith(LEGACY_SEPARATOR):
        raise LegacyFormatError(f"expected {LEGACY_SEPARATOR} after the literal")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        if stats is not None:
            stats.repair("utf8_replaced")
    names = {taxonomy.canonical_name(n) for n in rest.split(LEGACY_SEPARATOR)[1:] if n.strip()}
    domains = tuple(sorted(names))
    return Record(
        text=text,
        domains=domains,
        domain_ids=tuple(taxonomy.id_for(n) or "" for n in domains),
    )


def format_legacy_line(record: Record) -> str:
    """The record as one legacy line (no newline): ``repr(text as UTF-8)<COMMA>Domain...``.

    The literal is exactly Python's ``repr(bytes)``, so the original file's literals come out
    byte for byte and :func:`parse_legacy_line` reads the line back to an equal record.
    """
    for name in record.domains:
        if LEGACY_SEPARATOR in name or "\n" in name or "\r" in name:
            raise ValueError(f"domain {name!r} cannot be written in the legacy format")
    literal = repr(record.text.encode("utf-8", "replace"))
    return literal + "".join(LEGACY_SEPARATOR + name for name in record.domains)


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


def _gunzip(data: bytes, stats: ParseStats) -> bytes:
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
        data = _gunzip(data, stats)
    text = data.decode("utf-8", "replace")
    yield from _iter_lines(text.splitlines(), stats, label_field)
