"""What a reader saw while turning input into records: :class:`ParseStats`, and the one text repair."""

from __future__ import annotations

from dataclasses import dataclass, field


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


def clean_text(text: str, stats: ParseStats | None) -> str:
    """Replace lone UTF-16 surrogates (JSON allows ``"\\ud83d"`` alone; UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        if stats is not None:
            stats.repair("surrogates_replaced")
        return text.encode("utf-8", "replace").decode("utf-8")
    return text
