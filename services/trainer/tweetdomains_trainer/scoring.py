"""The validation and test rows a run scores: every row, or a fixed sample of a split too large.

A run scores validation after every epoch (early stopping), fits its calibration and thresholds
there, re-scores the champion on the validation texts (promotion), and scores test once. Each
holds the split's probabilities, ``rows x labels`` float32, in memory: for a corpus of 10
million tweets (1 million validation rows, 2 million test rows, 80 labels) that is 320 MB per
copy of validation and 640 MB of test, against a preparation that stays under 0.5 GB.

So a split of more than ``--max-eval-rows`` rows (default 100,000) is scored on a sample of
that many. The sample is drawn with a fixed seed, not the run's, so every epoch and every run
of a corpus scores the same rows and promotion compares like with like; a sample of 100,000
puts a micro-F1's standard error near 0.0015. Only what is scored changes: the refit still
trains on every validation row, and no tweet changes sides. Below the bound (every corpus of
up to about a million tweets at the default 10% validation, 20% test) every row is scored, as
before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import numpy as np

from tweetdomains_trainer.data import EncodedDataset, EncodedSplit
from tweetdomains_trainer.stream import ShardedSplit, SplitTexts, flat_ranges

# The sample's seed: the same rows for every run of a corpus, whatever its --seed.
SAMPLE_SEED = 0

Split = TypeVar("Split", EncodedSplit, ShardedSplit)


def sample_rows(rows: int, max_rows: int) -> np.ndarray | None:
    """The ascending row numbers of a split of ``rows`` scored under ``max_rows`` (None: all)."""
    if not max_rows or rows <= max_rows:
        return None
    return np.sort(np.random.default_rng(SAMPLE_SEED).choice(rows, size=max_rows, replace=False))


def subset(split: Split, rows: np.ndarray) -> Split:
    """The split of ``rows`` (ascending) of ``split``, in that order; nothing read from the shards."""
    if isinstance(split, ShardedSplit):
        bounds = np.searchsorted(rows, split.bases)  # rows are ascending: one slice a part
        parts = [
            replace(part, rows=part.rows[rows[start:end] - base])
            for part, start, end, base in zip(
                split.parts, bounds[:-1], bounds[1:], split.bases[:-1].tolist(), strict=True
            )
        ]
        return ShardedSplit(parts, split.num_labels)
    starts, ends = split.offsets[rows], split.offsets[rows + 1]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=offsets[1:])
    return EncodedSplit(split.ids[flat_ranges(starts, ends)], offsets, split.labels[rows])


def _texts(texts: Sequence[str], split: EncodedSplit | ShardedSplit, rows: np.ndarray) -> Sequence[str]:
    if isinstance(texts, SplitTexts) and isinstance(split, ShardedSplit):
        return SplitTexts(texts.store, split)  # read only the sample's batches, when used
    if len(texts) < int(rows[-1]) + 1:
        return texts  # no texts kept (a sweep's cached arrays): nothing to cut
    return [texts[int(i)] for i in rows]


def scored_dataset(encoded: EncodedDataset, max_rows: int) -> EncodedDataset:
    """``encoded`` with its validation and test splits (and validation texts) cut to their
    scored rows; ``encoded`` itself when every row is scored."""
    changes: dict[str, object] = {}
    for name in ("validation", "test"):
        split = encoded.split(name)
        rows = sample_rows(len(split), max_rows)
        if rows is None:
            continue
        sample = subset(split, rows)
        changes[name] = sample
        if name == "validation":
            changes["validation_texts"] = _texts(encoded.validation_texts, sample, rows)
    return replace(encoded, **changes) if changes else encoded
