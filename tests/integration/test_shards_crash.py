"""A shard preparation killed with SIGKILL (tokenizing, or in the corpus-wide dedupe) loses and
corrupts nothing: the next preparation of the same store makes the shards, splits and listing a
clean one makes, and no scratch file of the killed one is left in the store. A disk that fills
up during the dedupe ends ``train`` with a one-line error and leaves the shards as they were."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tweetdomains import codecs
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_trainer.corpus import ShardedCorpus

BATCHES = 12

# Prepares the store at argv[1] with two workers. Phase "dedupe" stalls inside the corpus-wide
# dedupe once its buckets are on disk (and says so in argv[3]), so the kill lands there.
_PREPARE = """
import sys, time
from pathlib import Path
from tweetdomains.store import LocalStore
from tweetdomains_trainer import corpus, dedupe
root, phase, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3])
if phase == "dedupe":
    dedupe.BUCKET_ROWS = 256  # many buckets
    real = corpus.first_positions
    def stalled(*args, **kwargs):
        for i, first in enumerate(real(*args, **kwargs)):
            if i == 1:
                ready.write_text("buckets written, one read back")
                time.sleep(600)
            yield first
    corpus.first_positions = stalled
corpus.ShardedCorpus.prepare(LocalStore(root), workers=2)
"""


def write_store(root: Path) -> LocalStore:
    store = LocalStore(root)
    for i in range(BATCHES):
        store.put(f"raw/2026/12/02/{i:02d}/b.jsonl.gz", codecs.write_jsonl_gz(generate(3000, seed=i)))
    return store


def shard_bytes(store: LocalStore) -> dict[str, bytes]:
    return {str(p.relative_to(store.root)): p.read_bytes() for p in store.root.rglob("*.shard")}


def kill_preparation(store: LocalStore, phase: str, tmp_path: Path) -> None:
    """Start a preparation in its own process group and SIGKILL the whole group (as the OOM
    killer or a node loss takes a container: workers too) at ``phase``."""
    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [sys.executable, "-c", _PREPARE, str(store.root), phase, str(ready)], start_new_session=True
    )
    deadline = time.monotonic() + 120
    try:
        while not (ready.exists() if phase == "dedupe" else shard_bytes(store)):
            assert child.poll() is None, f"the preparation ended (rc {child.returncode}) before {phase}"
            assert time.monotonic() < deadline, f"the preparation never reached {phase}"
            time.sleep(0.005)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("phase", ["tokenize", "dedupe"])
def test_a_preparation_killed_mid_way_is_finished_by_the_next_as_a_clean_one(
    tmp_path: Path, phase: str
) -> None:
    store, clean = write_store(tmp_path / "store"), write_store(tmp_path / "clean")
    kill_preparation(store, phase, tmp_path)
    killed_shards = shard_bytes(store)
    if phase == "tokenize":  # killed with batches left to tokenize, so the next has work to finish
        assert 0 < len(killed_shards) < BATCHES
    else:  # every batch tokenized; the dedupe's buckets left on disk, inside the store
        assert len(killed_shards) == BATCHES
        assert list((store.root / "cache").rglob(".dedupe-*/*.bin"))

    resumed = ShardedCorpus.prepare(store, workers=1)
    reference = ShardedCorpus.prepare(clean, workers=1)
    assert shard_bytes(store) == shard_bytes(clean)
    for name in ("train", "validation", "test"):
        ours, theirs = resumed.split(name), reference.split(name)
        assert len(ours) == len(theirs) > 0
        np.testing.assert_array_equal(ours.label_counts(), theirs.label_counts())
    assert resumed.content_sha256 == reference.content_sha256
    assert (resumed.counts.duplicates_by_id, resumed.counts.duplicates_by_content) == (
        reference.counts.duplicates_by_id,
        reference.counts.duplicates_by_content,
    )
    assert list(store.list()) == list(clean.list())  # nothing of the killed run is listed
    assert not list(store.root.rglob(".dedupe-*"))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_full_during_the_dedupe_is_one_line_and_leaves_the_shards_whole(small_disk: Path) -> None:
    store = write_store(small_disk / "store")
    before = ShardedCorpus.prepare(
        store, workers=1
    )  # shards and vocabulary made: a retrain writes only buckets
    shards = shard_bytes(store)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 32 * 1024))  # the buckets need ~0.5 MB
    argv = [sys.executable, "-m", "tweetdomains", "train", "--store", str(store.root), "--recipe", "word"]
    argv += ["--epochs", "1", "--device", "cpu", "--threads", "1", "--no-progress"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    [error] = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert "cannot write the dedupe buckets under" in error and "No space left on device" in error
    assert shard_bytes(store) == shards
    assert not list(store.root.rglob(".dedupe-*"))
    filler.unlink()
    after = ShardedCorpus.prepare(store, workers=1)
    assert after.content_sha256 == before.content_sha256
    assert shard_bytes(store) == shards
