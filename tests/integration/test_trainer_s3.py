"""The trainer against a real S3 server: raw batches in, a published and promoted run out."""

from __future__ import annotations

from tweetdomains import codecs
from tweetdomains.predict import Classifier
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import open_store
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.train import train


def test_train_from_s3_raw_batches_publishes_to_s3(s3_uri: str) -> None:
    store = open_store(s3_uri)
    records = generate(600, seed=5)
    store.put("raw/2026/11/29/01/a.jsonl.gz", codecs.write_jsonl_gz(records[:300]))
    store.put("raw/2026/11/29/02/b.jsonl.gz", codecs.write_jsonl_gz(records[300:]))
    options = TrainOptions(store=s3_uri, embedding_dim=12, hidden_dim=12, epochs=2, progress=False)
    result = train(options)
    assert result.published and result.promoted
    # The raw batches went through shards kept in the store (two words shards, two encoded).
    assert len([k for k in store.list("cache/shards/") if k.endswith(".shard")]) == 4
    assert result.metrics["lineage"]["raw_batches"] == 2
    classifier = Classifier.load(Registry(open_store(s3_uri)), "best")
    probs = classifier.predict_proba(["Taylor Swift just dropped a new album"])
    assert probs.shape == (1, len(classifier.labels))
