"""Exact first occurrences of 8-byte keys across a whole corpus, in memory that does not grow with it.

Deduplication needs every key seen so far, which is O(records) state. :func:`first_positions`
keeps that state on disk, not in memory: each chunk of ``(key, position)`` pairs (one
shard's) is cut to its own first occurrences, then its pairs are appended to one of
``2**bits`` bucket files by the key's top bits (the keys are hashes, so the buckets come out
even, about ``bucket_rows`` pairs each); each bucket is then read back alone and its first
occurrences found. Memory is one chunk's or one bucket's arrays, whatever the corpus size;
the disk holds 16 bytes per distinct key of each chunk, for the length of the call.

The buckets live in a ``.dedupe-*`` folder beside the shards (for a local store, inside it).
A call that is killed (SIGKILL, OOM) cannot remove its folder, so each folder holds a
``lock`` file its call keeps an exclusive ``flock`` on; the kernel drops that lock when the
process dies, however it dies. Every call first removes the folders whose lock it can take:
their owners are gone. A live call's folder is never touched.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

# Pairs a bucket holds (16 bytes each; finding its first occurrences takes about 4x that).
BUCKET_ROWS = 1 << 19
# At most 2**MAX_BITS bucket files open at once (past 2**28 pairs the buckets grow instead).
MAX_BITS = 9
SCRATCH_PREFIX = ".dedupe-"
LOCK = "lock"
# A folder without its lock file is one being made (mkdtemp, then the lock): left alone this long.
UNLOCKED_GRACE_S = 600.0

log = logging.getLogger(__name__)


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
    with scratch_folder(folder) as scratch, ExitStack() as files:
        paths = [scratch / f"{b:05d}.bin" for b in range(1 << bits)]
        with _writing(scratch):
            handles = [files.enter_context(path.open("wb")) for path in paths]
        for keys, positions in chunks:
            first = first_in_chunk(keys)
            pairs = np.empty((len(first), 2), dtype=np.uint64)
            pairs[:, 0] = keys[first]
            pairs[:, 1] = positions[first]
            if shift is None:
                with _writing(scratch):
                    handles[0].write(pairs.tobytes())
                continue
            bucket = (pairs[:, 0] >> shift).astype(np.uint16)  # 2 bytes: a radix sort
            pairs = pairs[np.argsort(bucket, kind="stable")]  # positions stay ascending in a bucket
            ends = np.cumsum(np.bincount(bucket, minlength=len(handles)))
            with _writing(scratch):
                for handle, start, end in zip(handles, np.concatenate([[0], ends[:-1]]), ends, strict=True):
                    if end > start:
                        handle.write(pairs[start:end].tobytes())
        with _writing(scratch):
            files.close()
        for path in paths:
            pairs = np.fromfile(path, dtype=np.uint64).reshape(-1, 2)
            path.unlink()
            yield pairs[first_in_chunk(pairs[:, 0]), 1].astype(np.int64)


@contextmanager
def _writing(scratch: Path) -> Iterator[None]:
    """Bucket writes: a failure (a full disk) says where and how much room the buckets need."""
    try:
        yield
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"cannot write the dedupe buckets under {scratch.parent} ({exc.strerror or exc}): they "
            "need about 16 bytes per record there for the length of the preparation",
        ) from exc


@contextmanager
def scratch_folder(folder: str | Path) -> Iterator[Path]:
    """A new ``.dedupe-*`` folder under ``folder``, locked while the block runs, then removed;
    the folders killed calls left are removed first (see the module doc)."""
    for stale in remove_stale(folder):
        log.warning("removed %s, left by a preparation that was killed", stale)
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=folder))
    fd = os.open(scratch / f"{LOCK}.new", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # Named ``lock`` only once locked, so no one can take the lock between open and flock.
        os.rename(scratch / f"{LOCK}.new", scratch / LOCK)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        os.close(fd)


def remove_stale(folder: str | Path) -> list[Path]:
    """Remove the ``.dedupe-*`` folders under ``folder`` whose owner has died; the ones removed."""
    removed = []
    for scratch in sorted(Path(folder).glob(f"{SCRATCH_PREFIX}*")):
        try:
            fd = os.open(scratch / LOCK, os.O_RDONLY)
        except FileNotFoundError:
            try:
                young = time.time() - scratch.stat().st_mtime < UNLOCKED_GRACE_S
            except FileNotFoundError:
                continue  # removed by another call meanwhile
            if not young and scratch.is_dir():
                shutil.rmtree(scratch, ignore_errors=True)
                removed.append(scratch)
            continue
        except OSError:
            continue  # not ours to judge (a file, no permission)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live call holds it
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            removed.append(scratch)
        finally:
            os.close(fd)
    return removed
