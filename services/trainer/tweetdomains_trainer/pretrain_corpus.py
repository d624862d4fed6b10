"""The pre-training corpus (`tweetdomains pretrain`): unlabeled texts, deduplicated, split, encoded."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from tweetdomains import codecs
from tweetdomains.dataset import split_of, store_records
from tweetdomains.store import ObjectStore
from tweetdomains.text import content_hash, normalize, tokenize
from tweetdomains.vocab import Vocabulary
from tweetdomains_trainer.data import EncodedSplit, build_vocab, encode_split


@dataclass
class Corpus:
    """The deduplicated texts, encoded, split by content hash into train and held-out validation."""

    train: EncodedSplit
    validation: EncodedSplit
    vocab: Vocabulary
    texts_read: int
    duplicates: int
    too_short: int
    sources: list[str]


def read_texts(store: ObjectStore, data: Sequence[str] | None, stats: codecs.ParseStats) -> Iterator[str]:
    """Tweet texts of the ``--data`` files, or of every batch under the store's ``raw/``.

    A ``.txt`` file is one tweet a line; any other file is read by the codecs (every record's
    text, labeled or not). FileNotFoundError for a pattern that matches nothing; ValueError
    for a file that cannot be read.
    """
    if not data:
        for record in store_records(store, stats):
            yield record.text
        return
    for path in codecs.iter_paths(data):
        try:
            if path.suffix == ".txt":
                with open(path, encoding="utf-8", errors="replace") as handle:
                    for line in handle:
                        if line.strip():
                            stats.lines += 1
                            stats.records += 1
                            yield line.strip()
            else:
                for record in codecs.iter_records(path, stats):
                    yield record.text
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc}") from None


def load_corpus(
    store: ObjectStore,
    data: Sequence[str] | None,
    max_texts: int | None = None,
    validation_percent: int = 5,
    min_count: int = 2,
    max_tokens: int = 64,
    seed: int = 13,
) -> Corpus:
    """Read, deduplicate by content, cap to ``max_texts`` (a seeded sample), split, build the
    wordpiece vocabulary from the train side and encode both sides.

    Texts of fewer than two word tokens are dropped: they hold nothing to predict. ValueError
    when too little is left to train and validate on.
    """
    stats = codecs.ParseStats()
    source = ", ".join(data) if data else f"{store.uri}/raw/"
    seen: set[str] = set()
    digests: list[str] = []
    token_lists: list[list[str]] = []
    read = duplicates = too_short = 0
    for text in read_texts(store, data, stats):
        read += 1
        digest = content_hash(text)
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        tokens = tokenize(normalize(text))
        if len(tokens) < 2:
            too_short += 1
            continue
        digests.append(digest)
        token_lists.append(tokens)
    if not token_lists:
        raise ValueError(f"no usable texts in {source} (read {read}; {stats.summary()})")
    if max_texts is not None and len(token_lists) > max_texts:
        keep = np.sort(np.random.default_rng(seed).choice(len(token_lists), max_texts, replace=False))
        digests = [digests[i] for i in keep]
        token_lists = [token_lists[i] for i in keep]
    sides: dict[str, list[list[str]]] = {"train": [], "validation": []}
    for digest, tokens in zip(digests, token_lists, strict=True):
        sides[split_of(digest, 0, validation_percent)].append(tokens)
    if not sides["train"] or not sides["validation"]:
        raise ValueError(
            f"{len(token_lists)} usable texts in {source}: too few for a train and a "
            f"{validation_percent}% validation side; give more data or a larger --validation-percent"
        )
    vocab = build_vocab(sides["train"], "wordpiece", min_count=min_count)
    train_split, validation_split = (
        encode_split(tokens, [()] * len(tokens), vocab, [], max_tokens) for tokens in sides.values()
    )
    return Corpus(
        train_split,
        validation_split,
        vocab,
        texts_read=read,
        duplicates=duplicates,
        too_short=too_short,
        sources=list(data) if data else [source],
    )
