"""Distillation on the store's sharded path (``train --store S``, no ``--data``), end to end.

Raw batches in a store, a tiny BERT teacher fine-tuned on them by ``tweetdomains teacher
--store S`` (which reads them as records), then ``tweetdomains train --store S`` with the
default recipe: it must choose that teacher (``--teacher auto``), score the corpus's rows
once (the soft-label cache), dedupe ``--unlabeled`` tweets against the shards' content hashes,
and refuse teachers that learned other tweets or a split that holds its validation tweets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import free_port
from tests.unit.test_shards import batch_records, write_batch
from tweetdomains import codecs
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains.text import content_hash
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.data import (
    DistillSplit,
    concat_splits,
    encode_dataset,
    encode_split,
    load_dataset,
    read_dataset,
)
from tweetdomains_trainer.lineage import corpus_fingerprint, tweets_fingerprint
from tweetdomains_trainer.phase import label_totals
from tweetdomains_trainer.soft_stream import DistillShardedSplit, memory_parts
from tweetdomains_trainer.teacher_model import teacher_registry, write_tiny_bert

TEACHER = ["--max-length", "16", "--batch-size", "16", "--epochs", "2", "--max-steps", "4"]
TEACHER += ["--min-support", "2", "--no-progress", "--threads", "1"]
# The default recipe (quality: MiniLM wordpieces, a BiLSTM, a refit), made small.
STUDENT = ["--epochs", "1", "--batch-size", "32", "--embedding-dim", "384", "--hidden-dim", "8"]
STUDENT += ["--device", "cpu", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store of three raw batches, teacher ``teacher-s1`` fine-tuned on them (no --data), and an
    unlabeled file: new tweets, two repeats, and copies of labeled tweets (one retweeted)."""
    root = tmp_path_factory.mktemp("distill-store")
    store = LocalStore(root / "store")
    for i in range(3):
        store.put(f"raw/2026/11/29/{i:02d}/b.jsonl.gz", codecs.write_jsonl_gz(generate(120, seed=i)))
    model = write_tiny_bert(root / "tiny-bert")
    argv = ["teacher", "--store", str(store.root), "--model", str(model), "--run-id", "teacher-s1"]
    assert cli_main([*argv, *TEACHER]) == 0
    dataset = read_dataset(store, None, 20, 10)[0]
    labeled = [r.text for r in dataset.validation[:2]] + ["RT @someone: " + dataset.test[0].text]
    labeled.append(dataset.train[0].text)
    fresh = [r.text for r in generate(30, seed=77)]
    unlabeled = root / "unlabeled.txt"
    unlabeled.write_text("\n".join([*fresh, fresh[0], fresh[1], *labeled]) + "\n", encoding="utf-8")
    splits = (dataset.train, dataset.validation, dataset.test)
    keys = {content_hash(r.text) for split in splits for r in split}
    distinct = list(dict.fromkeys(fresh))
    return {
        "root": root,
        "store": store,
        "model": model,
        "unlabeled": str(unlabeled),
        "read": len(fresh) + 2 + len(labeled),
        "kept": len({content_hash(t) for t in distinct} - keys),
    }


def _run(store: LocalStore, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tweetdomains", "train", "--store", str(store.root), *STUDENT, *extra]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)


def _train(store: LocalStore, *extra: str) -> tuple[dict[str, Any], str]:
    """``tweetdomains train --store S ...`` as a process: its last line (JSON) and its stderr."""
    done = _run(store, *extra)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def _refused(store: LocalStore, *extra: str) -> str:
    """The error a ``train`` command line that must fail prints."""
    done = _run(store, *extra)
    assert done.returncode != 0, done.stdout[-2000:]
    return done.stderr


def test_both_data_paths_fingerprint_the_same_tweets_under_any_split(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for i in range(3):
        write_batch(store, i, batch_records(i))  # duplicates, retweets, an empty and an unlabeled tweet
    corpus = ShardedCorpus.prepare(store, workers=1)
    for test, validation in [(20, 10), (20, 15), (0, 30)]:
        dataset = read_dataset(store, None, test, validation)[0]
        assert corpus_fingerprint(corpus, test, validation) == tweets_fingerprint(dataset, test, validation)
    other = read_dataset(store, None, 20, 10)[0]
    other.train[0] = replace(other.train[0], domains=("Another",))
    assert corpus_fingerprint(corpus, 20, 10) != tweets_fingerprint(other, 20, 10)


def test_a_sharded_split_with_soft_labels_batches_as_the_records_distill_split_does(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for i in range(3):
        write_batch(store, i, batch_records(i))
    corpus = ShardedCorpus.prepare(store, workers=1)
    records = encode_dataset(load_dataset(store), None, use_cache=False, vocab=corpus.vocab)
    tokens = [["fresh", "words", str(n)] for n in range(20)]
    extra = encode_split(tokens, [()] * len(tokens), corpus.vocab, corpus.labels, corpus.max_tokens)
    rng = np.random.default_rng(0)
    labels = len(corpus.labels)
    n_train, n_val = len(corpus.train), len(corpus.validation)
    soft = rng.random((n_train + len(tokens), labels)).astype(np.float32)
    labeled = np.arange(len(soft)) < n_train
    val_soft = rng.random((n_val, labels)).astype(np.float32)
    ours = DistillShardedSplit(corpus.train.parts + memory_parts("u", extra, 7), labels, soft, labeled)
    ours = ours.concat(DistillShardedSplit(corpus.validation.parts, labels, val_soft, np.ones(n_val, bool)))
    plain = concat_splits(records.train, extra)
    theirs = DistillSplit(plain.ids, plain.offsets, plain.labels, soft, labeled)
    validation = records.validation
    theirs = theirs.concat(
        DistillSplit(validation.ids, validation.offsets, validation.labels, val_soft, np.ones(n_val, bool))
    )
    assert len(ours) == len(theirs) and len(ours.parts) == 2 * len(corpus.train.parts) + 3
    rows = rng.permutation(len(ours))[:64]
    for a, b in zip(ours.batch(rows), theirs.batch(rows), strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(label_totals(ours)[0], label_totals(theirs)[0])
    assert label_totals(ours)[1] == label_totals(theirs)[1] == n_train + n_val


def test_train_on_the_store_distils_the_published_teacher_and_a_retrain_reads_the_cache(
    setup: dict[str, Any],
) -> None:
    store: LocalStore = setup["store"]
    summary, err = _train(store, "--run-id", "store-1", "--unlabeled", setup["unlabeled"])
    assert summary["published"] is True
    assert "recipe: quality distilled from teacher teacher-s1" in err
    assert "refit: training again on train + validation" in err
    assert "scoring" in err  # the first run scores the rows (the retrain below must not)
    metrics = Registry(store).json_artifact("store-1", "metrics.json")
    distilled = metrics["lineage"]["distillation"]
    assert distilled["teacher"] == "teacher-s1" and distilled["soft_labels_cached"] == [False, False]
    # Copies of labeled tweets (train, validation, a retweeted test one) and the repeats dropped.
    assert distilled["unlabeled"] == {
        "read": setup["read"],
        "repeats": setup["read"] - 4 - setup["kept"],
        "labeled": 4,
        "kept": setup["kept"],
    }
    keys = distilled["soft_labels"]
    assert all(store.exists(key) and key.startswith("teachers/teacher-s1/scores/") for key in keys)
    # The retrain must not rescore: with the teacher's weights gone it could not.
    weights = "teachers/teacher-s1/model.safetensors"
    saved = store.get(weights)
    store.delete(weights)
    try:
        summary, err = _train(store, "--run-id", "store-2", "--unlabeled", setup["unlabeled"])
    finally:
        store.put(weights, saved)
    again = Registry(store).json_artifact("store-2", "metrics.json")["lineage"]["distillation"]
    assert again["soft_labels_cached"] == [True, True] and again["soft_labels"] == distilled["soft_labels"]
    assert "scoring" not in err


def test_a_dry_run_distils_a_batch_and_writes_nothing(setup: dict[str, Any]) -> None:
    store: LocalStore = setup["store"]
    before = sorted(p for p in store.root.rglob("*") if p.is_file())
    summary, err = _train(store, "--dry-run", "--teacher", "latest", "--unlabeled", setup["unlabeled"])
    assert summary["published"] is False
    assert "soft labels: teacher teacher-s1 for 33 labeled" in err and "distillation: 32 labeled" in err
    assert sorted(p for p in store.root.rglob("*") if p.is_file()) == before


def test_a_distilled_run_stopped_mid_epoch_resumes(setup: dict[str, Any]) -> None:
    store: LocalStore = setup["store"]
    run = ["--run-id", "store-r", "--recipe", "word", "--teacher", "teacher-s1", "--epochs", "2"]
    summary, err = _train(store, *run, "--stop-after-steps", "3")
    assert "continue with --resume" in err
    summary, err = _train(store, "--run-id", "store-r", "--resume")
    assert summary["published"] is True and "resuming run store-r after epoch 0, step 3" in err
    distilled = Registry(store).json_artifact("store-r", "metrics.json")["lineage"]["distillation"]
    assert distilled["teacher"] == "teacher-s1" and distilled["soft_labels_cached"] == [True]


def test_a_teacher_of_other_tweets_a_narrower_split_or_no_fingerprint_is_refused(
    setup: dict[str, Any],
) -> None:
    store: LocalStore = setup["store"]
    root: Path = setup["root"]
    dry = ["--dry-run", "--recipe", "word"]
    # Validation 15% > the teacher's 10%: the teacher trained on some of this run's validation tweets.
    err = _refused(store, *dry, "--teacher", "teacher-s1", "--validation-percent", "15")
    assert "--validation-percent 10, so its train side holds tweets this run validates" in err
    assert "fine-tune it with this run's split" in err
    registry = teacher_registry(store)
    # A teacher from before teachers recorded their tweets' fingerprint.
    prefix = "teachers/teacher-s1/"
    files = {k[len(prefix) :]: store.get(k) for k in store.list(prefix) if "/scores/" not in k}
    files.pop("manifest.json")
    metrics = json.loads(files["metrics.json"])
    del metrics["data"]["tweets"]
    registry.publish("teacher-old", {**files, "metrics.json": json.dumps(metrics).encode()})
    assert "record no fingerprint of the tweets" in _refused(store, *dry, "--teacher", "teacher-old")
    # A teacher fine-tuned on other tweets (a file of the batches' records but the last few:
    # every label still there), and one on a wider split of these (its train side is inside
    # this run's: it fits).
    records = [r for i in range(3) for r in generate(120, seed=i)][:-5]
    data = root / "fewer.jsonl"
    data.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    base = ["teacher", "--store", str(store.root), "--model", str(setup["model"]), *TEACHER]
    assert cli_main([*base, "--run-id", "teacher-wide", "--validation-percent", "15"]) == 0
    assert cli_main([*base, "--run-id", "teacher-other", "--data", str(data)]) == 0
    try:
        err = _refused(store, *dry, "--teacher", "teacher-other")
        assert "teacher teacher-other cannot teach this run: it was fine-tuned on other data" in err
        _, err = _train(store, "--dry-run")
        assert "recipe: quality (teacher teacher-other not used: it was fine-tuned on other data" in err
        _, err = _train(store, *dry, "--teacher", "teacher-wide")
        assert "soft labels: teacher teacher-wide" in err
    finally:
        registry.set_latest("teacher-s1")


@pytest.mark.slow
def test_two_torchrun_ranks_distil_with_the_soft_labels_rank_0_scored(setup: dict[str, Any]) -> None:
    store: LocalStore = setup["store"]
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
    argv += ["--master-addr", "127.0.0.1", "--master-port", str(free_port())]
    argv += ["-m", "tweetdomains", "train", "--store", str(store.root), *STUDENT]
    argv += ["--recipe", "word", "--batch-size", "8", "--run-id", "store-ddp", "--teacher", "teacher-s1"]
    argv += ["--unlabeled", setup["unlabeled"], "--validation-percent", "10"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(world 2)" in done.stderr
    distilled = Registry(store).json_artifact("store-ddp", "metrics.json")["lineage"]["distillation"]
    assert distilled["teacher"] == "teacher-s1" and distilled["unlabeled"]["kept"] == setup["kept"]
    assert all(store.exists(key) for key in distilled["soft_labels"])
