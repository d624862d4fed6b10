"""The training job on a sharded corpus: the same run, step for step, as on today's data path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tweetdomains import codecs
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.train import TrainOptions, train


@pytest.mark.slow
@pytest.mark.parametrize("refit", [False, True])
def test_train_on_shards_reproduces_the_run_on_records(tmp_path: Path, refit: bool) -> None:
    store = LocalStore(tmp_path / "store")
    for i in range(5):
        store.put(f"raw/2026/11/29/{i:02d}/b.jsonl.gz", codecs.write_jsonl_gz(generate(120, seed=i)))

    def options(run_id: str) -> TrainOptions:
        return TrainOptions(
            store=str(store.root), run_id=run_id, epochs=2, embedding_dim=8, hidden_dim=8, batch_size=16,
            device="cpu", progress=False, threads=1, refit=refit, publish=False,
        )  # fmt: skip

    today = train(options("records"), store)
    corpus = ShardedCorpus.prepare(store, workers=1)
    sharded = train(options("shards"), store, encoded=corpus)  # type: ignore[arg-type]
    assert [h["train_loss"] for h in sharded.history] == [h["train_loss"] for h in today.history]
    assert [h["val_micro_f1"] for h in sharded.history] == [h["val_micro_f1"] for h in today.history]
    for name in ("micro_f1", "macro_f1", "p_at_1"):
        assert sharded.metrics["test"][name] == today.metrics["test"][name]
