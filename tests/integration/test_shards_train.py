"""The training job on the store's raw batches, through shards: end to end as a process, a
retrain that encodes only its new batch, and a resume from mid-epoch that reaches the
uninterrupted run's weights."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tweetdomains import codecs
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_trainer.checkpoint import checkpoint_key
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.shards import SHARDS_PREFIX
from tweetdomains_trainer.train import TrainOptions, train


def write_batches(store: LocalStore, first: int, count: int) -> None:
    for i in range(first, first + count):
        store.put(f"raw/2026/11/29/{i:02d}/b.jsonl.gz", codecs.write_jsonl_gz(generate(120, seed=i)))


def run_train(store: LocalStore, run_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "tweetdomains", "train", "--store", str(store.root), "--run-id", run_id]
    # The word recipe, the vocabulary ShardedCorpus.prepare builds by default (train's default
    # recipe, quality, keeps a wordpiece vocabulary instead).
    argv += ["--recipe", "word", "--epochs", "2", "--batch-size", "16"]
    argv += ["--embedding-dim", "8", "--hidden-dim", "8"]
    argv += ["--device", "cpu", "--no-progress", "--threads", "1", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def encoded_dirs(store: LocalStore) -> list[Path]:
    return sorted(p for p in (store.root / SHARDS_PREFIX).iterdir() if p.is_dir() and p.name != "words-v1")


@pytest.mark.slow
def test_train_on_the_store_goes_through_shards_and_a_retrain_encodes_only_new_batches(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    write_batches(store, 0, 5)
    done = run_train(store, "first")
    assert json.loads(done.stdout.splitlines()[-1])["published"] is True
    assert "5 tokenized now, 5 encoded now" in done.stderr
    registry = Registry(store)
    lineage = registry.json_artifact("first", "metrics.json")["lineage"]
    corpus = ShardedCorpus.prepare(store, workers=1, keep_vocab=True)
    assert lineage["raw_batches"] == 5 and lineage["raw_last_key"] == "raw/2026/11/29/04/b.jsonl.gz"
    assert lineage["data_sha256"] == corpus.content_sha256
    assert lineage["records"] == 600
    [vocab_dir] = encoded_dirs(store)
    assert len(list(vocab_dir.glob("*.shard"))) == 5

    write_batches(store, 5, 1)  # a retrain after one more batch arrived
    done = run_train(store, "second")
    assert "1 tokenized now, 1 encoded now" in done.stderr
    assert encoded_dirs(store) == [vocab_dir]  # the kept vocabulary: no old shard encoded again
    assert len(list(vocab_dir.glob("*.shard"))) == 6
    assert registry.json_artifact("second", "metrics.json")["lineage"]["raw_batches"] == 6
    assert registry.json_artifact("second", "vocab.json") == registry.json_artifact("first", "vocab.json")

    done = run_train(store, "fresh", "--refresh-vocab", "--dry-run")
    assert "0 tokenized now" in done.stderr


@pytest.mark.slow
def test_resuming_mid_epoch_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    write_batches(store, 0, 5)

    def options(run_id: str, **changes: object) -> TrainOptions:
        return TrainOptions(
            store=str(store.root), run_id=run_id, epochs=2, embedding_dim=8, hidden_dim=8, batch_size=16,
            device="cpu", progress=False, threads=1, publish=False, ema_decay=0.9, **changes,  # type: ignore[arg-type]
        )  # fmt: skip

    whole = train(options("whole"))
    steps = -(-len(whole.encoded.train) // 16)
    # Stopped in the first epoch, then in the second (checkpointing every 7 steps on the
    # way), then run to the end: each part starts where the checkpoint's position says.
    first = train(options("cut", stop_after_steps=5))
    assert not first.completed and not first.history
    state = json.loads(store.get(checkpoint_key("cut", "state.json")))
    assert state["position"] == {"epoch": 0, "step": 5}
    second = train(options("cut", resume=True, stop_after_steps=steps, checkpoint_steps=7))
    assert not second.completed and len(second.history) == 1
    state = json.loads(store.get(checkpoint_key("cut", "state.json")))
    assert state["position"] == {"epoch": 1, "step": 5}
    last = train(options("cut", resume=True))
    assert last.completed
    assert last.history[-1]["train_loss"] == whole.history[-1]["train_loss"]
    for key in ("train_loss", "val_loss", "val_micro_f1"):
        assert [h[key] for h in last.history] == [h[key] for h in whole.history], key
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, last.model.state_dict()[name]), name
    assert last.metrics["test"] == whole.metrics["test"]


def test_step_checkpoints_need_store_data(tmp_path: Path) -> None:
    data = tmp_path / "records.jsonl"
    data.write_text("".join(r.to_json() + "\n" for r in generate(50, seed=1)), encoding="utf-8")
    options = TrainOptions(store=str(tmp_path / "s"), data=[str(data)], stop_after_steps=3, progress=False)
    with pytest.raises(ValueError, match="store's data"):
        train(options)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_dry_run_leaves_the_store_as_it_found_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    write_batches(store, 0, 3)
    options = TrainOptions(
        store=str(store.root), run_id="dry", epochs=1, embedding_dim=8, hidden_dim=8, batch_size=16,
        device="cpu", progress=False, threads=1, dry_run=True,
    )  # fmt: skip
    before = snapshot(store.root)
    assert train(options).history  # it tokenized, encoded and trained a step, in a scratch folder
    assert snapshot(store.root) == before
    # With shards already in the store, a new batch and a fresh vocabulary: still nothing written.
    ShardedCorpus.prepare(store, workers=1, keep_vocab=True)
    write_batches(store, 3, 1)
    before = snapshot(store.root)
    assert train(replace(options, refresh_vocab=True)).history
    assert snapshot(store.root) == before


def test_a_large_validation_split_is_scored_on_a_fixed_sample_and_refit_on_every_row(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    write_batches(store, 0, 5)
    done = run_train(store, "sampled", "--max-eval-rows", "30", "--refit")
    metrics = Registry(store).json_artifact("sampled", "metrics.json")
    data = metrics["data"]
    assert (data["validation_scored"], data["test_scored"]) == (30, 30)
    assert data["validation"] > 30 and data["test"] > 30
    assert metrics["validation"]["n"] == metrics["test"]["n"] == 30
    scoring = f"scoring: 30 of {data['validation']:,} validation and 30 of {data['test']:,} test"
    assert scoring in done.stderr
    # The refit trains on every validation row, not only the scored ones.
    every_row = data["train"] + data["validation"]
    assert f"training again on train + validation ({every_row:,} tweets)" in done.stderr
