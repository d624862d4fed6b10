"""The original project's stream file: ``b'<python bytes literal>'<COMMA>Domain<COMMA>...``."""

from __future__ import annotations

from tweetdomains import taxonomy
from tweetdomains.parse_stats import ParseStats
from tweetdomains.records import Record

LEGACY_SEPARATOR = "<COMMA>"


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
