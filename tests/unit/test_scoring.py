"""What a run scores: every row of a small split; a fixed sample of a large one (for records and
for shards alike), its batches, labels and texts those of the rows it names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tweetdomains import codecs
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.data import EncodedSplit, encode_dataset, load_dataset
from tweetdomains_trainer.scoring import sample_rows, scored_dataset, subset


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalStore:
    store = LocalStore(tmp_path_factory.mktemp("scoring") / "store")
    for i in range(5):
        store.put(f"raw/2026/12/02/{i:02d}/b.jsonl.gz", codecs.write_jsonl_gz(generate(300, seed=i)))
    return store


def assert_rows_of(sample: EncodedSplit, split: EncodedSplit, rows: np.ndarray) -> None:
    assert len(sample) == len(rows)
    np.testing.assert_array_equal(sample.lengths, split.lengths[rows])
    np.testing.assert_array_equal(sample.labels, split.labels[rows])
    order = np.random.default_rng(1).permutation(len(rows))
    for ours, theirs in zip(sample.batch(order), split.batch(rows[order]), strict=True):
        assert torch.equal(ours, theirs)


def test_the_sample_is_fixed_ascending_and_only_past_the_bound() -> None:
    assert sample_rows(100, 100) is None and sample_rows(100, 0) is None
    rows = sample_rows(1000, 100)
    assert rows is not None and len(np.unique(rows)) == 100
    assert np.all(np.diff(rows) > 0) and rows[-1] < 1000
    np.testing.assert_array_equal(rows, sample_rows(1000, 100))  # the same every run


def test_a_sample_of_shards_and_of_records_reads_the_rows_it_names(store: LocalStore) -> None:
    corpus = ShardedCorpus.prepare(store, workers=1)
    records = encode_dataset(load_dataset(store), None, use_cache=False, vocab=corpus.vocab)
    for split, other in ((corpus.validation, records.validation), (corpus.test, records.test)):
        rows = sample_rows(len(split), len(split) // 3)
        assert rows is not None
        assert_rows_of(subset(split, rows), split, rows)  # type: ignore[arg-type]
        assert_rows_of(subset(other, rows), other, rows)


def test_scored_dataset_cuts_validation_test_and_texts_and_keeps_train(store: LocalStore) -> None:
    corpus = ShardedCorpus.prepare(store, workers=1)
    assert scored_dataset(corpus, 0) is corpus  # type: ignore[arg-type]
    assert scored_dataset(corpus, len(corpus.test)) is corpus  # type: ignore[arg-type]
    scored = scored_dataset(corpus, 40)  # type: ignore[arg-type]
    assert (len(scored.validation), len(scored.test)) == (40, 40)
    assert scored.train is corpus.train and scored.vocab is corpus.vocab
    rows = sample_rows(len(corpus.validation), 40)
    assert rows is not None
    texts = list(corpus.validation_texts)
    assert list(scored.validation_texts) == [texts[i] for i in rows]
    assert len(corpus.validation) > 40  # the corpus itself is untouched
