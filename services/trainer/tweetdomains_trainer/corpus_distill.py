"""Distillation on the store's sharded path (``train --store S --teacher ...``, no ``--data``).

The records path's rules (:mod:`.distill`) over a :class:`~.corpus.ShardedCorpus`:

- the teacher fits when :func:`~.distill.recorded_problem` finds nothing and the fingerprint of
  the tweets it was fine-tuned on (its metrics' ``data.tweets``,
  :func:`~.lineage.tweets_fingerprint`) is the corpus's under the teacher's split
  (:func:`~.lineage.corpus_fingerprint`): the same labeled tweets, split the same way. A
  teacher published before it recorded one is refused, with that reason;
- the train and validation rows' texts are read back from their raw batches
  (:class:`~.stream.SplitTexts`) and scored in one :func:`~.soft_labels.soft_labels` call (cached
  in the store by teacher and texts, so a retrain reads them back);
- the ``--unlabeled`` tweets are dropped when their content is any kept row's (any split),
  found through the shards' 8-byte content hashes, shard by shard; the rest are encoded with
  the corpus's vocabulary (fixed by the corpus) and join the train split as in-memory parts
  (:mod:`.soft_stream`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tweetdomains.store import ObjectStore
from tweetdomains_trainer.corpus import ShardedCorpus
from tweetdomains_trainer.data import encode_split
from tweetdomains_trainer.distill import (
    DRY_RUN_ROWS,
    Distillation,
    distillation_summary,
    other_data,
    read_unlabeled,
    recorded_problem,
    say_unlabeled,
    score_tweets,
    teacher_split,
)
from tweetdomains_trainer.lineage import corpus_fingerprint, kept_rows
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.soft_stream import DistillShardedSplit, first_rows, memory_parts
from tweetdomains_trainer.stream import SplitTexts
from tweetdomains_trainer.teacher_model import resolve_teacher


def corpus_teacher_problem(
    store: ObjectStore, run_id: str, options: TrainOptions, corpus: ShardedCorpus
) -> str | None:
    """Why teacher ``run_id`` cannot teach this run on ``corpus`` (None: it can)."""
    problem, metrics = recorded_problem(store, run_id, options, corpus.labels)
    if problem:
        return problem
    recorded = metrics["data"].get("tweets")
    if not recorded:
        return (
            "its metrics record no fingerprint of the tweets it was fine-tuned on (a teacher from "
            "before the store's sharded path distilled): fine-tune it again"
        )
    test, val = teacher_split(metrics)
    mine = corpus_fingerprint(corpus, test, val)
    return other_data(metrics, mine) if mine != recorded else None


def corpus_problem(
    store: ObjectStore, options: TrainOptions, corpus: ShardedCorpus
) -> Callable[[str], str | None]:
    """:func:`corpus_teacher_problem` of a run id, for this corpus (for :func:`~.distill.auto_teacher`)."""
    return lambda run_id: corpus_teacher_problem(store, run_id, options, corpus)


def labeled_keys(corpus: ShardedCorpus) -> Callable[[Sequence[str]], np.ndarray]:
    """Which content keys (:func:`~tweetdomains.text.content_hash`) are a kept row's of the
    corpus, any split: compared by their first 8 bytes, the shards' ``content_hash``."""

    def is_labeled(keys: Sequence[str]) -> np.ndarray:
        wanted = np.array([int(key[:16], 16) for key in keys], dtype=np.uint64)
        found = np.zeros(len(wanted), dtype=bool)
        if len(wanted):
            for shard, rows in kept_rows(corpus):
                found |= np.isin(wanted, np.asarray(shard.file["content_hash"])[rows])
                shard.file.release()
        return found

    return is_labeled


def prepare_corpus_distillation(
    options: TrainOptions, store: ObjectStore, corpus: ShardedCorpus, progress: Progress
) -> Distillation:
    """:func:`~.distill.prepare_distillation` for a sharded corpus (see the module doc).
    ValueError for an unusable teacher or unlabeled file."""
    assert options.teacher and options.teacher != "auto"
    run_id = resolve_teacher(store, options.teacher)
    problem = corpus_teacher_problem(store, run_id, options, corpus)
    if problem:
        raise ValueError(f"--teacher {options.teacher}: teacher {run_id} cannot teach this run: {problem}")
    tweets = read_unlabeled(store, options.unlabeled or [], labeled_keys(corpus))
    unlabeled, kept, counts, tokens = tweets.texts, tweets.kept, tweets.counts, tweets.tokens
    if options.unlabeled:
        say_unlabeled(progress, counts)
    train, validation = corpus.train, corpus.validation
    validation_texts = corpus.validation_texts
    if options.dry_run:  # one batch: score a few rows, cache nothing
        train, validation = first_rows(train, DRY_RUN_ROWS), first_rows(validation, 1)
        validation_texts = SplitTexts(store, validation)
        unlabeled, kept = unlabeled[:DRY_RUN_ROWS], kept[kept < DRY_RUN_ROWS]
        tokens = tokens[: len(kept)]
    n_train, n_val = len(train), len(validation)
    labeled_texts = [*SplitTexts(store, train), *validation_texts]
    labeled_probs, unlabeled_probs, scored = score_tweets(
        store, run_id, options, progress, labeled_texts, unlabeled, kept, corpus.labels
    )
    extra = encode_split(tokens, [()] * len(kept), corpus.vocab, corpus.labels, corpus.max_tokens)
    train_split = DistillShardedSplit(
        train.parts + memory_parts("unlabeled", extra),
        len(corpus.labels),
        np.concatenate([labeled_probs[:n_train], unlabeled_probs]),
        np.arange(n_train + len(kept)) < n_train,
    )
    validation_split = DistillShardedSplit(
        list(validation.parts), len(corpus.labels), labeled_probs[n_train:], np.ones(n_val, dtype=bool)
    )
    summary = distillation_summary(options, run_id, counts, scored, (n_train, len(kept)), progress)
    return Distillation(train_split, validation_split, summary)
