"""What a published run was trained on, recorded in its ``metrics.json`` under ``lineage``.

Keys (read by the API for ``/model`` and the drift gauges; keep the names)::

    store          the store URI the job read (no credentials)
    raw_batches    raw batches read (null for --data runs), raw_first_key / raw_last_key
    data_path      the --data file names (basenames; null for raw runs)
    records        records read, before deduplication
    data_sha256    SHA-256 of every kept record's split, text and labels (store data, read
                   through shards: of its split, 8-byte content hash and labels)
    recipe         the --recipe preset the options started from ("default" without one)
    git_commit     the commit of the checkout the code runs from; null when unknown (an image)
    label_counts   {domain: tweets carrying it in the training split}

A teacher records :func:`tweets_fingerprint` of what it was fine-tuned on (its metrics'
``data.tweets``): per split, the rows and a digest of their 8-byte content hashes (the shards'
``content_hash``) and labels, in corpus order. Both data paths compute it, records
(:func:`tweets_fingerprint`) and shards (:func:`corpus_fingerprint`, under any split: a
row's side follows from its content hash), so a student on either path can check that a
teacher learned its very tweets.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from tweetdomains.dataset import Dataset
from tweetdomains.text import content_hash
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.data import SPLITS, DataSource, EncodedDataset
from tweetdomains_trainer.shards import WordShard
from tweetdomains_trainer.stream import flat_ranges


def data_lineage(source: DataSource, dataset: Dataset, encoded: EncodedDataset) -> dict[str, Any]:
    """The data part of a run's lineage (everything but the recipe and the commit)."""
    digest = hashlib.sha256()
    for name in SPLITS:
        for record in getattr(dataset, name):
            digest.update(f"{name}\t{record.text}\t{'|'.join(record.domains)}\n".encode())
    raw = source.raw_keys if source.data is None else []
    counts = encoded.train.labels.sum(axis=0)
    return {
        "store": without_credentials(source.store_uri),
        "raw_batches": len(raw) if source.data is None else None,
        "raw_first_key": raw[0] if raw else None,
        "raw_last_key": raw[-1] if raw else None,
        "data_path": ", ".join(Path(p).name for p in source.data) if source.data else None,
        "records": source.records,
        "data_sha256": digest.hexdigest(),
        "label_counts": {label: int(n) for label, n in zip(encoded.labels, counts, strict=True)},
    }


def corpus_lineage(store_uri: str, corpus: ShardedCorpus) -> dict[str, Any]:
    """:func:`data_lineage` of a sharded corpus (the store's raw batches)."""
    raw = [part.key for part in corpus.train.parts]
    counts = corpus.train.label_counts()
    return {
        "store": without_credentials(store_uri),
        "raw_batches": len(raw),
        "raw_first_key": raw[0] if raw else None,
        "raw_last_key": raw[-1] if raw else None,
        "data_path": None,
        "records": corpus.counts.stats.records,
        "data_sha256": corpus.content_sha256,
        "label_counts": {label: int(n) for label, n in zip(corpus.labels, counts, strict=True)},
    }


def run_lineage(data: dict[str, Any] | None, recipe: str | None) -> dict[str, Any]:
    """The ``lineage`` object of a run's metrics: the data's, the recipe and the code's commit."""
    return {**(data or {}), "recipe": recipe or "default", "git_commit": git_commit()}


def without_credentials(uri: str) -> str:
    """``uri`` with any ``user:password@`` part removed."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def git_commit() -> str | None:
    """The ``HEAD`` commit of the checkout the code runs from; None outside one (an image)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def tweets_fingerprint(dataset: Dataset, test_percent: int, validation_percent: int) -> dict[str, Any]:
    """The fingerprint (see the module doc) of a records dataset split with these percentages."""
    digest = _TweetsDigest(test_percent, validation_percent)
    for name in SPLITS:
        records = getattr(dataset, name)
        digest.add(
            name,
            np.array([int(content_hash(r.text)[:16], 16) for r in records], dtype=np.uint64),
            np.array([len(r.domains) for r in records], dtype=np.int64),
            np.array([label_key(d) for r in records for d in r.domains], dtype=np.uint64),
        )
    return digest.fingerprint()


def corpus_fingerprint(corpus: ShardedCorpus, test_percent: int, validation_percent: int) -> dict[str, Any]:
    """:func:`tweets_fingerprint` of a sharded corpus's kept rows, split with these percentages
    (the corpus's own or another: :func:`dataset.split_of` of each row's content hash)."""
    digest = _TweetsDigest(test_percent, validation_percent)
    for shard, rows in kept_rows(corpus):
        content = np.asarray(shard.file["content_hash"])[rows]
        bucket = (content >> np.uint64(32)) % np.uint64(100)
        side = {
            "test": bucket < test_percent,
            "validation": (bucket >= test_percent) & (bucket < test_percent + validation_percent),
            "train": bucket >= test_percent + validation_percent,
        }
        offsets, label_ids = np.asarray(shard.file["label_offsets"]), np.asarray(shard.file["label_ids"])
        names = np.array([label_key(n) for n in shard.labels] or [0], dtype=np.uint64)
        for name in SPLITS:
            mine = rows[side[name]]
            starts, ends = offsets[mine], offsets[mine + 1]
            digest.add(name, content[side[name]], ends - starts, names[label_ids[flat_ranges(starts, ends)]])
        shard.file.release()
    return digest.fingerprint()


def kept_rows(corpus: ShardedCorpus) -> Iterator[tuple[WordShard, np.ndarray]]:
    """Each words shard of the corpus with its kept rows (every split), ascending: corpus order."""
    assert corpus.cache is not None, "a prepared corpus keeps its shard cache"
    splits = [corpus.split(name) for name in SPLITS]
    for index, part in enumerate(corpus.train.parts):
        rows = np.sort(np.concatenate([s.parts[index].shard_rows() for s in splits]))
        if len(rows):
            yield WordShard.open(corpus.cache, part.key), rows


def label_key(name: str) -> int:
    """A label name as 8 bytes (what the fingerprint hashes in place of the name)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big")


class _TweetsDigest:
    """Per split: the rows, and SHA-256 streams of their content hashes, label counts and label
    keys, each fed in row order (so chunking does not change it)."""

    def __init__(self, test_percent: int, validation_percent: int) -> None:
        self.percents = {"test_percent": test_percent, "validation_percent": validation_percent}
        self.rows = dict.fromkeys(SPLITS, 0)
        self.streams = {name: [hashlib.sha256() for _ in range(3)] for name in SPLITS}

    def add(self, split: str, content: np.ndarray, label_counts: np.ndarray, labels: np.ndarray) -> None:
        self.rows[split] += len(content)
        arrays = (content.astype("<u8"), label_counts.astype("<i8"), labels.astype("<u8"))
        for stream, array in zip(self.streams[split], arrays, strict=True):
            stream.update(array.tobytes())

    def fingerprint(self) -> dict[str, Any]:
        total = hashlib.sha256()
        for name in SPLITS:
            total.update(f"{name} {self.rows[name]}\n".encode())
            for stream in self.streams[name]:
                total.update(stream.digest())
        return {**self.percents, "rows": dict(self.rows), "sha256": total.hexdigest()}
