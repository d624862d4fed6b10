"""Exact first occurrences of 8-byte keys across a whole corpus, in memory that does not grow with it.

Deduplication needs every key seen so far, which is O(records) state. :func:`first_positions`
keeps that state on disk, not in memory: each chunk of ``(key, position)`` pairs (one
shard's) is cut to its own first occurrences, then its pairs are appended to one of
``2**bits`` bucket files by the key's top bits (the keys are hashes, so the buckets come out
even, about ``bucket_rows`` pairs each); each bucket is then read back alone and its first
occurrences found. Memory is one chunk's or one bucket's arrays, whatever the corpus size;
the disk holds 16 bytes per distinct key of each chunk, for the length of the call.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np

# Pairs a bucket holds (16 bytes each; finding its first occurrences takes about 4x that).
BUCKET_ROWS = 1 << 19
# At most 2**MAX_BITS bucket files open at once (past 2**28 pairs the buckets grow instead).
MAX_BITS = 9


def bucket_bits(total: int, bucket_rows: int = BUCKET_ROWS) -> int:
    """The top key bits that pick a bucket, so ``total`` pairs fill buckets of ``bucket_rows``."""
    return min(MAX_BITS, max(0, int(np.ceil(np.log2(max(total, 1) / bucket_rows)))))


def first_in_chunk(keys: np.ndarray) -> np.ndarray:
    """The indices of the first occurrence of each key in ``keys``, ascending."""
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(keys, return_index=True)[1]] = True  # a mask, not a sort, puts them in order
    return np.flatnonzero(first)


def first_positions(
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    total: int,
    folder: str | Path,
    bucket_rows: int | None = None,
) -> Iterator[np.ndarray]:
    """The position of the first pair of each key, a bucket's worth at a time (int64).

    ``chunks`` yields ``(keys uint64, positions int64)`` with positions ascending, within a
    chunk and from one chunk to the next; ``total`` bounds the pairs (with ``bucket_rows``,
    default ``BUCKET_ROWS``, it sets the buckets).
    The bucket files live in a temporary folder under ``folder`` until the generator ends.
    """
    bits = bucket_bits(total, bucket_rows or BUCKET_ROWS)
    shift = np.uint64(64 - bits) if bits else None
    with tempfile.TemporaryDirectory(prefix=".dedupe-", dir=folder) as scratch, ExitStack() as files:
        paths = [Path(scratch) / f"{b:05d}.bin" for b in range(1 << bits)]
        handles = [files.enter_context(path.open("wb")) for path in paths]
        for keys, positions in chunks:
            first = first_in_chunk(keys)
            pairs = np.empty((len(first), 2), dtype=np.uint64)
            pairs[:, 0] = keys[first]
            pairs[:, 1] = positions[first]
            if shift is None:
                handles[0].write(pairs.tobytes())
                continue
            bucket = (pairs[:, 0] >> shift).astype(np.uint16)  # 2 bytes: a radix sort
            pairs = pairs[np.argsort(bucket, kind="stable")]  # positions stay ascending in a bucket
            ends = np.cumsum(np.bincount(bucket, minlength=len(handles)))
            for handle, start, end in zip(handles, np.concatenate([[0], ends[:-1]]), ends, strict=True):
                if end > start:
                    handle.write(pairs[start:end].tobytes())
        files.close()
        for path in paths:
            pairs = np.fromfile(path, dtype=np.uint64).reshape(-1, 2)
            path.unlink()
            yield pairs[first_in_chunk(pairs[:, 0]), 1].astype(np.int64)
