"""The corpus-wide first occurrences through buckets on disk agree with the whole-array answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tweetdomains_trainer.dedupe import bucket_bits, first_positions


def reference(keys: np.ndarray) -> np.ndarray:
    """The whole corpus at once, as the corpus did before: each key's first index."""
    return np.sort(np.unique(keys, return_index=True)[1])


@pytest.mark.parametrize(("seed", "bucket_rows"), [(0, 1 << 19), (1, 16), (2, 3), (3, 1)])
def test_first_positions_agree_with_one_unique_over_everything(
    tmp_path: Path, seed: int, bucket_rows: int
) -> None:
    rng = np.random.default_rng(seed)
    # Hash-like keys with many duplicates (a small pool), some in the same chunk, some across.
    pool = rng.integers(0, 2**64, size=300, dtype=np.uint64)
    keys = pool[rng.integers(0, len(pool), size=2000)]
    keys[rng.random(len(keys)) < 0.1] = pool[0]  # one key very often
    # Positions with gaps (rows a caller leaves out), cut into chunks of random sizes (some empty).
    positions = np.sort(rng.choice(10_000, size=len(keys), replace=False)).astype(np.int64)
    cuts = np.sort(rng.integers(0, len(keys), size=12))
    chunks = list(zip(np.split(keys, cuts), np.split(positions, cuts), strict=True))
    found = np.sort(np.concatenate(list(first_positions(chunks, len(keys), tmp_path, bucket_rows))))
    np.testing.assert_array_equal(found, positions[reference(keys)])
    assert not list(tmp_path.iterdir())  # the bucket files are gone


def test_no_pairs_and_the_bucket_count() -> None:
    assert bucket_bits(0) == bucket_bits(100) == 0
    assert bucket_bits(1 << 20, 1 << 19) == 1
    assert bucket_bits((1 << 20) + 1, 1 << 19) == 2


def test_an_empty_corpus(tmp_path: Path) -> None:
    empty = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
    assert sum(len(f) for f in first_positions([empty], 0, tmp_path)) == 0
