"""The corpus at stream scale: every raw batch as shards, deduplicated and split without records.

:meth:`ShardedCorpus.prepare` is the sharded counterpart of ``load_dataset`` +
``encode_dataset``:

1. every raw batch without a words shard is parsed and tokenized, in a process pool
   (:mod:`.pool`: every per-batch step runs in its workers, the parent only merges);
2. duplicates go by 8-byte hashes, corpus-wide, with ``build_dataset``'s rule (the first
   record of an id wins, then the first of a content), in store key order; the hashes seen
   are kept in bucket files on disk (:mod:`.dedupe`), not in memory, so the parent holds a
   byte per record while it merges and two (a row number) per kept record after;
3. the split is :func:`dataset.split_of` of the content hash, so no tweet changes sides;
4. the vocabulary comes from token counts summed shard by shard over the train split, in
   arrays (:mod:`.shard_vocab`: the same table ``build_vocab`` makes from the records), or is
   given, or (``keep_vocab``) is the one the store's last corpus with the same vocabulary
   options built;
5. every shard not yet encoded with that vocabulary is, by table lookup, in the same pool.

Why a retrain keeps its vocabulary: an encoded shard is named by its vocabulary's
fingerprint, and a vocabulary rebuilt from 5% more tweets almost always differs in a few
rare tokens (a count crossing ``min_count``, a tie at ``max_vocab``), so rebuilding it would
re-encode every old shard and cost as much as a cold start. Keeping the recorded one
encodes only the new batches; their new words map to ``<unk>`` until a run asks for a fresh
vocabulary (``--refresh-vocab``). Which vocabulary is kept is recorded in the store
(``cache/shards/vocab-<options>.json``), so the choice is the same for every run and rank
that reads that store, whatever order they come in.

The splits it returns (:class:`stream.ShardedSplit`) have ``EncodedSplit``'s interface over
memory-mapped shards, so ``train_batches``/``eval_batches`` drive them unchanged;
:func:`stream.stream_batches` adds rank-disjoint streaming with a bounded shuffle buffer and a
resumable position. The rows come in the order ``load_dataset`` keeps
them, so both paths split, count and evaluate the same tweets with the same vocabulary; the
training order differs (the stream shuffles within its shards and buffer), so the same recipe
and seed train weights that differ as two seeds do (measured on the benchmark split: see the
README's data path section).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tweetdomains import codecs
from tweetdomains.dataset import RAW_PREFIX
from tweetdomains.store import LocalStore, ObjectNotFound, ObjectStore
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer.data import SPLITS
from tweetdomains_trainer.dedupe import first_positions
from tweetdomains_trainer.pool import BatchPool, encode_shards, release_freed_heap, tokenize_new
from tweetdomains_trainer.shard_vocab import shard_vocab
from tweetdomains_trainer.shards import (
    SHARDS_PREFIX,
    ShardCache,
    ShardFile,
    WordShard,
    vocab_dir,
    words_key,
)
from tweetdomains_trainer.stream import Part, ShardedSplit, SplitTexts, flat_ranges, row_dtype
from tweetdomains_trainer.words import stats_of

log = logging.getLogger(__name__)

SPLIT_CODES = {"test": 0, "validation": 1, "train": 2}


@dataclass
class CorpusCounts:
    """What the preparation saw, in ``Dataset.summary``'s terms."""

    stats: codecs.ParseStats = field(default_factory=codecs.ParseStats)
    unlabeled: int = 0
    duplicates_by_id: int = 0
    duplicates_by_content: int = 0
    batches: int = 0
    tokenized: int = 0  # batches tokenized by this call (the rest came from their shards)
    encoded: int = 0  # shards encoded with the vocabulary by this call
    label_counts: dict[str, int] = field(default_factory=dict)
    test_percent: int = 20
    validation_percent: int = 10


@dataclass
class ShardedCorpus:
    """The three splits over shards, with the vocabulary and label order they use."""

    train: ShardedSplit
    validation: ShardedSplit
    test: ShardedSplit
    vocab: Vocabulary
    labels: list[str]
    data_hash: str
    max_tokens: int
    counts: CorpusCounts
    # SHA-256 of every kept row's split, content hash and labels (the lineage's data_sha256).
    content_sha256: str = field(default="", compare=False)
    # What the corpus was read from, for a run's lineage (see lineage.corpus_lineage); the job
    # fills it in as it does for an EncodedDataset.
    lineage: dict[str, Any] | None = field(default=None, compare=False)
    # The validation split's texts in row order (promotion re-scores the champion on them),
    # read from the raw batches only when used.
    validation_texts: Sequence[str] = field(default=(), compare=False)
    cache: ShardCache | None = field(default=None, compare=False, repr=False)

    @property
    def cache_key(self) -> str:
        """The store key of this corpus's manifest (a checkpoint names its data by it)."""
        return f"{SHARDS_PREFIX}{vocab_dir(self.vocab, self.max_tokens)}/corpus-{self.data_hash}.json"

    def split(self, name: str) -> ShardedSplit:
        split: ShardedSplit = getattr(self, name)
        return split

    def summary(self) -> str:
        c = self.counts
        top = ", ".join(f"{n} {k}" for n, k in Counter(c.label_counts).most_common(8))
        kept = len(self.train) + len(self.validation) + len(self.test)
        return (
            f"records read {c.stats.records}, kept {kept} (train {len(self.train)}, "
            f"validation {len(self.validation)}, test {len(self.test)}); duplicates {c.duplicates_by_id} "
            f"by id + {c.duplicates_by_content} by content; unlabeled {c.unlabeled}; bad lines "
            f"{c.stats.bad_lines}; {len(c.label_counts)} labels (top: {top}); {c.batches} batches, "
            f"{c.tokenized} tokenized now, {c.encoded} encoded now"
        )

    @classmethod
    def prepare(
        cls,
        store: ObjectStore,
        vocab: Vocabulary | None = None,
        vocab_kind: str = "word",
        min_count: int = 2,
        max_vocab: int = 50_000,
        max_tokens: int = 64,
        test_percent: int = 20,
        validation_percent: int = 10,
        workers: int | None = None,
        local_dir: str | None = None,
        say: Callable[[str], None] = log.info,
        raw_keys: Sequence[str] | None = None,
        keep_vocab: bool = False,
        dry_run: bool = False,
    ) -> ShardedCorpus:
        """Shard, deduplicate, split and encode every batch under ``raw/`` (see the module doc).

        ``workers`` processes tokenize new batches (default: the CPUs); ``raw_keys`` limits
        the corpus to those batches (:meth:`load` uses it). Without ``vocab``,
        ``keep_vocab`` reuses the vocabulary recorded for these options by an earlier call;
        one built from the counts is recorded for the calls after. ``dry_run`` writes nothing
        to the store (new shards go to a temporary folder the corpus keeps). ValueError when
        the corpus cannot train a model.
        """
        cache = ShardCache(store, local_dir, read_only=dry_run)
        if raw_keys is None:
            raw_keys = [k for k in store.list(RAW_PREFIX) if k.endswith((".jsonl.gz", ".jsonl"))]
        counts = CorpusCounts(
            batches=len(raw_keys), test_percent=test_percent, validation_percent=validation_percent
        )
        with BatchPool(workers) as pool:  # pass 1, merges, pass 2: see the pool module
            missing = [k for k in raw_keys if _needs_tokenizing(cache, k)]
            if missing:
                say(f"shards: tokenizing {len(missing)} of {len(raw_keys)} raw batches")
                counts.tokenized = tokenize_new(store, cache, missing, pool)
            shards = [WordShard.open(cache, k) for k in raw_keys]
            codes = _split_codes(shards, counts, test_percent, validation_percent, cache.spill_dir())
            labels = _train_labels(shards, codes)
            kept_key = _kept_vocab_key(vocab_kind, min_count, max_vocab, test_percent, validation_percent)
            if vocab is None and keep_vocab:
                vocab = _kept_vocab(store, kept_key)
                if vocab is not None:
                    say(
                        f"vocabulary: reusing {kept_key} ({len(vocab):,} tokens; "
                        "--refresh-vocab builds a fresh one)"
                    )
            if vocab is None:
                vocab = shard_vocab(shards, codes, SPLIT_CODES["train"], vocab_kind, min_count, max_vocab)
                if not dry_run:
                    store.put(kept_key, vocab.to_json().encode())  # the one later retrains keep
            release_freed_heap()  # the merges' freed blocks, before pass 2 adds the workers' peak
            encoded, counts.encoded = encode_shards(cache, shards, vocab, max_tokens, pool)
        splits = {name: _split(shards, encoded, codes, SPLIT_CODES[name], labels) for name in SPLITS}
        _count_labels(counts, labels, splits)
        digest = _data_hash(shards, test_percent, validation_percent)
        corpus = cls(
            vocab=vocab, labels=labels, data_hash=digest, max_tokens=max_tokens, counts=counts,
            content_sha256=_content_sha256(shards, codes), **splits,
        )  # fmt: skip
        corpus.validation_texts = SplitTexts(store, corpus.validation)
        source = f"{getattr(store, 'uri', store)}/raw/"
        if not len(corpus.train):
            raise ValueError(f"no labeled training records in {source} ({corpus.summary()})")
        if not len(corpus.validation):
            raise ValueError(
                f"no validation records in {source}: need more labeled tweets ({corpus.summary()})"
            )
        corpus.cache = cache  # its memory maps may live in the dry run's temporary folder
        if not dry_run:
            store.put(corpus.cache_key, json.dumps(corpus.manifest(), indent=1).encode())
        return corpus

    @classmethod
    def load(cls, store: ObjectStore, cache_key: str, **options: Any) -> ShardedCorpus:
        """The corpus a manifest names (a checkpoint's ``cache_key``): its batches only, with
        its vocabulary and split, even after more batches arrived. ValueError when its data
        no longer reads the same."""
        manifest = json.loads(store.get(cache_key))
        corpus = cls.prepare(
            store,
            vocab=Vocabulary.from_json(manifest["vocab_json"]),
            max_tokens=int(manifest["max_tokens"]),
            test_percent=int(manifest["test_percent"]),
            validation_percent=int(manifest["validation_percent"]),
            raw_keys=manifest["batches"],
            **options,
        )
        if corpus.cache_key != cache_key or corpus.labels != manifest["labels"]:
            raise ValueError(f"the batches {cache_key} names changed since it was written")
        return corpus

    def manifest(self) -> dict[str, Any]:
        """The corpus as JSON: its batches, vocabulary, labels and split sizes."""
        return {
            "data_hash": self.data_hash,
            "vocab_dir": vocab_dir(self.vocab, self.max_tokens),
            "vocab_json": self.vocab.to_json(),
            "labels": self.labels,
            "max_tokens": self.max_tokens,
            "test_percent": self.counts.test_percent,
            "validation_percent": self.counts.validation_percent,
            "batches": [p.key for p in self.train.parts],
            "rows": {name: len(self.split(name)) for name in SPLITS},
            "summary": self.summary(),
        }


# ----------------------------------------------------------------------------- the steps


def _needs_tokenizing(cache: ShardCache, raw_key: str) -> bool:
    key = words_key(raw_key)
    if not cache.exists(key):
        return True
    if isinstance(cache.store, LocalStore):  # a batch rewritten in place (tests do) is re-read
        try:
            shard = ShardFile(cache.root / key)
        except (ValueError, OSError, KeyError):
            return True
        return int(shard.meta["raw_bytes"]) != (cache.store.root / raw_key).stat().st_size
    return False


def _split_codes(
    shards: Sequence[WordShard],
    counts: CorpusCounts,
    test_percent: int,
    validation_percent: int,
    spill_dir: str | Path,
) -> list[np.ndarray]:
    """Per shard, each row's split code (``SPLIT_CODES``), or -1 for a duplicate.

    ``build_dataset``'s rule over the whole corpus at once: a record whose id an earlier
    record had is a duplicate by id (and does not claim its content); of the rest, the first
    record of each content hash is kept. The corpus-wide first occurrences come from
    :func:`dedupe.first_positions` (buckets on disk under ``spill_dir``), so this process
    holds a byte per record and one shard's or one bucket's arrays, never the corpus's hashes.
    """
    for shard in shards:
        counts.stats.merge(stats_of(shard.file))
        counts.unlabeled += int(shard.file.meta["unlabeled"])
    sizes = np.array([len(s) for s in shards], dtype=np.int64)
    bases = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    # 0: a duplicate by id; 1: the first of its id (or without one); 2: the first of its content too.
    state = np.zeros(int(bases[-1]), dtype=np.int8)

    def ids() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for shard, base in zip(shards, bases.tolist(), strict=False):
            has_id = np.asarray(shard.file["has_id"])
            state[base : base + len(has_id)][~has_id] = 1
            with_id = np.flatnonzero(has_id)
            yield np.asarray(shard.file["id_hash"])[with_id], base + with_id
            shard.file.release()

    for first in first_positions(ids(), len(state), spill_dir):
        state[first] = 1
    counts.duplicates_by_id = int(np.count_nonzero(state == 0))

    def contents() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for shard, base in zip(shards, bases.tolist(), strict=False):
            candidates = np.flatnonzero(state[base : base + len(shard)])
            yield np.asarray(shard.file["content_hash"])[candidates], base + candidates
            shard.file.release()

    for first in first_positions(contents(), len(state) - counts.duplicates_by_id, spill_dir):
        state[first] = 2
    counts.duplicates_by_content = int(np.count_nonzero(state == 1))
    codes = np.split(state, bases[1:-1]) if shards else []
    for shard, code in zip(shards, codes, strict=True):  # in place: the state becomes the codes
        # split_of reads the digest's first 8 hex digits: the hash's top 4 bytes.
        bucket = (np.asarray(shard.file["content_hash"]) >> np.uint64(32)) % np.uint64(100)
        kept = code == 2
        code[:] = SPLIT_CODES["train"]
        code[bucket < test_percent + validation_percent] = SPLIT_CODES["validation"]
        code[bucket < test_percent] = SPLIT_CODES["test"]
        code[~kept] = -1
        shard.file.release()
    return codes


def _train_labels(shards: Sequence[WordShard], codes: Sequence[np.ndarray]) -> list[str]:
    """Every label of the kept train rows, sorted: the model's output order."""
    names: set[str] = set()
    for shard, code in zip(shards, codes, strict=True):
        offsets = shard.file["label_offsets"]
        rows = np.flatnonzero(code == SPLIT_CODES["train"])
        used = np.unique(np.asarray(shard.file["label_ids"])[flat_ranges(offsets[rows], offsets[rows + 1])])
        names.update(shard.labels[i] for i in used)
        shard.file.release()
    return sorted(names)


def _split(
    shards: Sequence[WordShard],
    encoded: Sequence[ShardFile],
    codes: Sequence[np.ndarray],
    code: int,
    labels: Sequence[str],
) -> ShardedSplit:
    column = {name: i for i, name in enumerate(labels)}
    parts = [
        Part(
            key=shard.key,
            ids=file["ids"],
            offsets=np.asarray(file["offsets"]),
            rows=np.flatnonzero(shard_codes == code).astype(row_dtype(len(shard))),
            label_ids=shard.file["label_ids"],
            label_offsets=np.asarray(shard.file["label_offsets"]),
            label_columns=np.array([column.get(n, -1) for n in shard.labels] or [-1], dtype=np.int64),
            files=(file, shard.file),
        )
        for shard, file, shard_codes in zip(shards, encoded, codes, strict=True)
    ]
    return ShardedSplit(parts, len(labels))


def _count_labels(counts: CorpusCounts, labels: Sequence[str], splits: dict[str, ShardedSplit]) -> None:
    """Label frequencies over the kept rows of every split (the summary's top labels);
    ``ShardedSplit.label_counts`` drops each part's pages after it."""
    total = sum((s.label_counts() for s in splits.values()), np.zeros(len(labels), dtype=np.int64))
    counts.label_counts = {name: int(n) for name, n in zip(labels, total, strict=True) if n}


def _data_hash(shards: Sequence[WordShard], test_percent: int, validation_percent: int) -> str:
    """A digest of the batches (raw batches are immutable, so key and size name one) and split."""
    digest = hashlib.sha1(f"split {test_percent} {validation_percent}\n".encode())
    for shard in shards:
        digest.update(f"{shard.key}\t{shard.file.meta['raw_bytes']}\n".encode())
    return digest.hexdigest()[:16]


def _kept_vocab_key(
    kind: str, min_count: int, max_vocab: int, test_percent: int, validation_percent: int
) -> str:
    return f"{SHARDS_PREFIX}vocab-{kind}-m{min_count}-v{max_vocab}-s{test_percent}-{validation_percent}.json"


def _kept_vocab(store: ObjectStore, key: str) -> Vocabulary | None:
    try:
        return Vocabulary.from_json(store.get(key).decode())
    except ObjectNotFound:
        return None
    except (ValueError, KeyError) as exc:  # a damaged record is replaced by a fresh vocabulary
        log.warning("ignoring unreadable vocabulary %s: %s", key, exc)
        return None


def _content_sha256(shards: Sequence[WordShard], codes: Sequence[np.ndarray]) -> str:
    """SHA-256 of each split's kept rows, shard by shard: content hashes, label counts, label
    ids and the shard's label names they index (arrays hashed whole, no loop over rows)."""
    digest = hashlib.sha256()
    for name in SPLITS:
        digest.update(f"{name}\n".encode())
        for shard, code in zip(shards, codes, strict=True):
            rows = np.flatnonzero(code == SPLIT_CODES[name])
            if not len(rows):
                continue
            offsets = np.asarray(shard.file["label_offsets"])
            label_ids = np.asarray(shard.file["label_ids"])[flat_ranges(offsets[rows], offsets[rows + 1])]
            digest.update(np.asarray(shard.file["content_hash"])[rows].tobytes())
            digest.update((offsets[rows + 1] - offsets[rows]).tobytes())
            digest.update(label_ids.tobytes())
            digest.update("\n".join(shard.labels).encode() + b"\0")
            shard.file.release()
    return digest.hexdigest()
