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
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tweetdomains.dataset import Dataset
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.data import SPLITS, DataSource, EncodedDataset


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
