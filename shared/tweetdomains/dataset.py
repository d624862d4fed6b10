"""Dataset build: every batch under ``raw/`` (or ``--data`` files) -> deduplicated, split records.

The split is a pure function of a tweet's content (SHA-1 of :func:`text.content_key`), so a
tweet never changes sides as the store grows, and retweets of one text never straddle it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tweetdomains import codecs
from tweetdomains.records import Record
from tweetdomains.store import ObjectStore
from tweetdomains.text import content_hash

RAW_PREFIX = "raw/"
RAW_SUFFIX = ".jsonl.gz"


def raw_batch_key(first_arrival: float, batch_id: str) -> str:
    """The store key of a collected batch: ``raw/YYYY/MM/DD/HH/<stamp>-<batch_id>.jsonl.gz``.

    The folder is the UTC hour its first record arrived (epoch seconds ``first_arrival``) and
    the stamp that second, so keys sort by arrival; ``batch_id`` makes the key unique.
    """
    moment = datetime.fromtimestamp(first_arrival, UTC)
    return f"{RAW_PREFIX}{moment:%Y/%m/%d/%H}/{moment:%Y%m%dT%H%M%SZ}-{batch_id}{RAW_SUFFIX}"


def split_of(digest: str, test_percent: int = 20, validation_percent: int = 10) -> str:
    """``train``, ``validation`` or ``test`` for a :func:`text.content_hash` digest.

    Buckets 0..99: the first ``test_percent`` are test, the next ``validation_percent``
    validation (carved out of the train side), the rest train.
    """
    bucket = int(digest[:8], 16) % 100
    if bucket < test_percent:
        return "test"
    if bucket < test_percent + validation_percent:
        return "validation"
    return "train"


@dataclass
class Dataset:
    """Deduplicated records in their splits, with the counts of how they were built."""

    train: list[Record] = field(default_factory=list)
    validation: list[Record] = field(default_factory=list)
    test: list[Record] = field(default_factory=list)
    stats: codecs.ParseStats = field(default_factory=codecs.ParseStats)
    duplicates_by_id: int = 0
    duplicates_by_content: int = 0
    unlabeled: int = 0

    @property
    def labels(self) -> list[str]:
        """Every label of the train split, sorted: the model's output order."""
        return sorted({d for r in self.train for d in r.domains})

    def summary(self) -> str:
        counts = Counter(d for r in self.train + self.validation + self.test for d in r.domains)
        top = ", ".join(f"{name} {n}" for name, n in counts.most_common(8))
        kept = len(self.train) + len(self.validation) + len(self.test)
        return (
            f"records read {self.stats.records}, kept {kept} "
            f"(train {len(self.train)}, validation {len(self.validation)}, test {len(self.test)}); "
            f"duplicates {self.duplicates_by_id} by id + {self.duplicates_by_content} by content; "
            f"unlabeled {self.unlabeled}; bad lines {self.stats.bad_lines}; "
            f"{len(counts)} labels (top: {top})"
        )


def store_records(
    store: ObjectStore, stats: codecs.ParseStats, keys_read: list[str] | None = None
) -> Iterator[Record]:
    """Every record of every batch under ``raw/``, in key order; each batch's key is appended
    to ``keys_read`` (when given) as it is read: what a dataset was built from."""
    for key in store.list(RAW_PREFIX):
        if key.endswith((".jsonl.gz", ".jsonl")):
            if keys_read is not None:
                keys_read.append(key)
            yield from codecs.read_jsonl_bytes(store.get(key), stats)


def file_records(
    patterns: Iterable[str], stats: codecs.ParseStats, label_field: str = "domains"
) -> Iterator[Record]:
    """Every record of the files (globs allowed) in any format the codecs read."""
    for path in codecs.iter_paths(patterns):
        yield from codecs.iter_records(Path(path), stats, label_field=label_field)


def build_dataset(
    records: Iterable[Record],
    stats: codecs.ParseStats | None = None,
    test_percent: int = 20,
    validation_percent: int = 10,
) -> Dataset:
    """Drop unlabeled records and duplicates (by id, then by content), then split."""
    data = Dataset(stats=stats or codecs.ParseStats())
    seen_ids: set[str] = set()
    seen_content: set[str] = set()
    for record in records:
        if not record.domains:
            data.unlabeled += 1
            continue
        if record.id is not None:
            if record.id in seen_ids:
                data.duplicates_by_id += 1
                continue
            seen_ids.add(record.id)
        key = content_hash(record.text)
        if key in seen_content:
            data.duplicates_by_content += 1
            continue
        seen_content.add(key)
        getattr(data, split_of(key, test_percent, validation_percent)).append(record)
    return data
