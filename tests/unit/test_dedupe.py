"""The corpus-wide first occurrences through buckets on disk agree with the whole-array answer, and
the buckets a killed call leaves are removed by the next call (never a live call's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tweetdomains_trainer.dedupe import UNLOCKED_GRACE_S, bucket_bits, first_positions, remove_stale


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


# A child that starts a dedupe in FOLDER, writes its first chunk's buckets, says so and waits.
_HOLDER = """
import sys, time
from pathlib import Path
import numpy as np
from tweetdomains_trainer.dedupe import first_positions
folder, ready = Path(sys.argv[1]), Path(sys.argv[2])
def chunks():
    keys = np.arange(1000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    yield keys, np.arange(1000, dtype=np.int64)
    ready.write_text("written")
    time.sleep(600)
    yield keys[:0], np.zeros(0, dtype=np.int64)
for _ in first_positions(chunks(), 2000, folder, bucket_rows=100):
    pass
"""


def _start_holder(tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    ready = tmp_path / f"{name}.ready"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "spill"), str(ready)])
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None, "the holder exited before writing its buckets"
        assert time.monotonic() < deadline, "the holder never wrote its buckets"
        time.sleep(0.05)
    return child, ready


def _scratch_folders(folder: Path) -> list[Path]:
    return sorted(folder.glob(".dedupe-*"))


def test_buckets_of_a_killed_dedupe_are_removed_by_the_next_and_a_live_ones_kept(tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    killed, _ = _start_holder(tmp_path, "killed")
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(30) == -signal.SIGKILL
    [left] = _scratch_folders(spill)  # SIGKILL runs no cleanup: its buckets are still there
    assert len(list(left.glob("*.bin"))) == 1 << bucket_bits(2000, 100)
    live, _ = _start_holder(tmp_path, "live")  # the next call removes the dead one's folder
    try:
        [held] = _scratch_folders(spill)
        assert held != left
        keys = np.array([5, 3, 5, 7, 3], dtype=np.uint64)
        found = np.concatenate(list(first_positions([(keys, np.arange(5, dtype=np.int64))], 5, spill)))
        np.testing.assert_array_equal(np.sort(found), [0, 1, 3])
        assert _scratch_folders(spill) == [held]  # a live call's folder is kept
        assert len(list(held.glob("*.bin"))) == 1 << bucket_bits(2000, 100)
    finally:
        live.kill()
        live.wait(30)
    assert remove_stale(spill) == [held]
    assert not _scratch_folders(spill)


def test_a_folder_still_being_made_is_left_alone_until_it_is_old(tmp_path: Path) -> None:
    making = tmp_path / ".dedupe-new"
    making.mkdir()  # mkdtemp done, the lock not yet made
    assert remove_stale(tmp_path) == []
    old = time.time() - UNLOCKED_GRACE_S - 1
    os.utime(making, (old, old))
    assert remove_stale(tmp_path) == [making]
    assert not making.exists()
