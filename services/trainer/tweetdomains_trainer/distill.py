"""The student's side of distillation (``train --teacher``): the teacher checked against the data,
its soft labels for labeled and unlabeled tweets, and the splits that carry them.

A teacher (:mod:`.teacher`) is usable when it was fine-tuned on this run's labeled tweets with
a split whose train side holds none of this run's validation or test tweets (its
``metrics.json`` records its options and the fingerprint of its tweets,
:func:`~.lineage.tweets_fingerprint`, which this run computes under the teacher's split and
compares; a teacher from before that fingerprint is compared by its dataset summary), and when
it scores every label of the data (extra labels are dropped; their columns would be unread).
The store's sharded corpus applies the same rules through :mod:`.corpus_distill`, with the
pieces here (:func:`recorded_problem`, :func:`score_tweets`, :func:`read_unlabeled`). The
unlabeled tweets (``--unlabeled``) are read as ``teacher-score`` reads them; exact repeats and
any tweet whose content key (:func:`tweetdomains.text.content_hash`) is one of the labeled
data's, in any split, are dropped, so no validation or test tweet comes back as unlabeled.

The teacher scores, through :func:`~.soft_labels.soft_labels` (cached in the store, so a
retrain with the same data and teacher never rescores), the train and validation tweets (the
refit trains on both) in one call, and the unlabeled tweets in another, as the list
``teacher-score --data`` makes of the same files (each text once, in file order): a
``teacher-score`` run beforehand fills the cache ``train`` then reads. The tweets dropped from
that list are dropped after scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tweetdomains import codecs
from tweetdomains.dataset import Dataset
from tweetdomains.registry import RegistryError
from tweetdomains.store import ObjectStore
from tweetdomains.text import content_hash, tokenize_texts
from tweetdomains_trainer.data import (
    DistillSplit,
    EncodedDataset,
    EncodedSplit,
    UnlabeledTweets,
    concat_splits,
    encode_split,
    first_rows,
    read_dataset,
)
from tweetdomains_trainer.lineage import tweets_fingerprint
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.pretrain_corpus import read_texts
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.soft_labels import soft_labels
from tweetdomains_trainer.soft_stream import DistillShardedSplit
from tweetdomains_trainer.teacher_model import TEACHERS_PREFIX, resolve_teacher, teacher_registry

# A dry run distils one batch: only this many labeled and unlabeled rows are scored (not cached).
DRY_RUN_ROWS = 32


@dataclass
class Distillation:
    """The splits a distilled run trains on, and what they were made of (for the run's lineage)."""

    train: DistillSplit | DistillShardedSplit  # the labeled train rows, then the unlabeled ones
    # The validation rows with their soft labels (the refit trains on them).
    validation: DistillSplit | DistillShardedSplit
    summary: dict[str, Any] = field(default_factory=dict)


def map_labels(probs: np.ndarray, teacher_labels: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """The teacher's probabilities ``[n, teacher labels]`` as columns in ``labels``' order.

    Labels the teacher has and the data lacks are dropped; ValueError naming them when the
    data has labels the teacher lacks (it cannot teach them).
    """
    column = {name: i for i, name in enumerate(teacher_labels)}
    missing = [name for name in labels if name not in column]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(
            f"the teacher does not score {len(missing)} of the data's labels ({shown}): fine-tune a "
            "teacher on this data"
        )
    return np.ascontiguousarray(probs[:, [column[name] for name in labels]], dtype=np.float32)


def recorded_problem(
    store: ObjectStore, run_id: str, options: TrainOptions, labels: Sequence[str]
) -> tuple[str | None, dict[str, Any]]:
    """What the teacher's own records refuse (None: nothing), and its metrics: labels it does
    not score, another label field, no recorded split, or a split whose train side holds
    some of this run's validation or test tweets."""
    registry = teacher_registry(store)
    try:
        teacher_labels = set(registry.json_artifact(run_id, "labels.json"))
        metrics = registry.json_artifact(run_id, "metrics.json")
    except (RegistryError, KeyError, ValueError) as exc:
        return f"its labels and metrics cannot be read ({exc})", {}
    missing = sorted(set(labels) - teacher_labels)
    if missing:
        return f"it does not score {len(missing)} of the data's labels ({', '.join(missing[:5])})", metrics
    recorded = metrics.get("options") or {}
    if recorded.get("label_field", "domains") != options.label_field:
        return (
            f"it learned --label-field {recorded.get('label_field')!r}, this run {options.label_field!r}",
            metrics,
        )
    test, val = teacher_split(metrics)
    if test < 0 or val < 0 or not (metrics.get("data") or {}).get("summary"):
        return "its metrics do not record the split it was fine-tuned on", metrics
    if test + val < options.test_percent + options.validation_percent:
        return (
            f"it was fine-tuned with --test-percent {test} --validation-percent {val}, so its train "
            f"side holds tweets this run validates or tests on (--test-percent {options.test_percent} "
            f"--validation-percent {options.validation_percent}); fine-tune it with this run's split"
        ), metrics
    return None, metrics


def teacher_split(metrics: dict[str, Any]) -> tuple[int, int]:
    """The ``--test-percent`` and ``--validation-percent`` a teacher was fine-tuned with (-1: unknown)."""
    recorded = metrics.get("options") or {}
    return int(recorded.get("test_percent", -1)), int(recorded.get("validation_percent", -1))


def other_data(metrics: dict[str, Any], mine: dict[str, Any] | str) -> str:
    """The reason for a teacher fine-tuned on other tweets than ``mine`` (a fingerprint, or a
    dataset summary) describes."""
    data = metrics["data"]
    theirs = fingerprint_line(data["tweets"]) if data.get("tweets") else data["summary"]
    ours = fingerprint_line(mine) if isinstance(mine, dict) else mine
    return f"it was fine-tuned on other data ({data.get('source')}: {theirs}), not this run's ({ours})"


def fingerprint_line(fingerprint: dict[str, Any]) -> str:
    rows = ", ".join(f"{name} {n}" for name, n in fingerprint["rows"].items())
    return f"{rows}; tweets sha256 {fingerprint['sha256'][:12]}"


def teacher_problem(
    store: ObjectStore, run_id: str, options: TrainOptions, dataset: Dataset, labels: Sequence[str]
) -> str | None:
    """Why teacher ``run_id`` cannot teach this run of records (None: it can): what
    :func:`recorded_problem` refuses, or other data: the tweets' fingerprints differ
    (:func:`~.lineage.tweets_fingerprint`, under the teacher's split), or for a teacher from
    before it recorded one, the dataset summaries."""
    problem, metrics = recorded_problem(store, run_id, options, labels)
    if problem:
        return problem
    test, val = teacher_split(metrics)
    if (test, val) != (options.test_percent, options.validation_percent):
        dataset = read_dataset(store, options.data, test, val, options.label_field)[0]
    if metrics["data"].get("tweets"):
        mine = tweets_fingerprint(dataset, test, val)
        return other_data(metrics, mine) if mine != metrics["data"]["tweets"] else None
    summary = dataset.summary()
    return other_data(metrics, summary) if summary != metrics["data"]["summary"] else None


def auto_teacher(store: ObjectStore, problem: Callable[[str], str | None]) -> tuple[str | None, str]:
    """``--teacher auto``: the latest published teacher when it can teach this run (``problem``
    of its run id is None), else None; and the one line that says which recipe was chosen and why."""
    where = f"{store.uri}/{TEACHERS_PREFIX}/"
    try:
        run_id = resolve_teacher(store, "latest")
    except ValueError:
        return None, f"recipe: quality (no teacher published under {where})"
    reason = problem(run_id)
    if reason:
        return None, f"recipe: quality (teacher {run_id} not used: {reason})"
    return run_id, f"recipe: quality distilled from teacher {run_id} ({where}latest.json)"


def records_problem(
    store: ObjectStore, options: TrainOptions, encoded: EncodedDataset
) -> Callable[[str], str | None]:
    """:func:`teacher_problem` of a run id, for this run's records (for :func:`auto_teacher`)."""
    return lambda run_id: teacher_problem(
        store, run_id, options, _labeled_dataset(store, options, encoded), encoded.labels
    )


def prepare_distillation(
    options: TrainOptions, store: ObjectStore, encoded: EncodedDataset, progress: Progress
) -> Distillation:
    """Check the teacher, read the unlabeled tweets, score everything (or read the cache) and
    build the distillation splits. ValueError for an unusable teacher or unlabeled file."""
    assert options.teacher and options.teacher != "auto"
    run_id = resolve_teacher(store, options.teacher)
    dataset = _labeled_dataset(store, options, encoded)
    if (len(dataset.train), len(dataset.validation)) != (len(encoded.train), len(encoded.validation)):
        raise ValueError("--teacher: the data read again differs from the encoded dataset")
    problem = teacher_problem(store, run_id, options, dataset, encoded.labels)
    if problem:
        raise ValueError(f"--teacher {options.teacher}: teacher {run_id} cannot teach this run: {problem}")
    tweets = encoded.unlabeled or read_unlabeled(store, options.unlabeled or [], dataset)
    unlabeled, kept, counts, tokens = tweets.texts, tweets.kept, tweets.counts, tweets.tokens
    if options.unlabeled:
        say_unlabeled(progress, counts)
    labeled_train, labeled_val = encoded.train, encoded.validation
    if options.dry_run:  # one batch: score a few rows, cache nothing
        labeled_train, labeled_val = first_rows(labeled_train, DRY_RUN_ROWS), first_rows(labeled_val, 1)
        unlabeled, kept = unlabeled[:DRY_RUN_ROWS], kept[kept < DRY_RUN_ROWS]
        tokens = tokens[: len(kept)]
    n_train, n_val = len(labeled_train), len(labeled_val)
    labeled_texts = [r.text for r in dataset.train[:n_train]] + [r.text for r in dataset.validation[:n_val]]
    labeled_probs, unlabeled_probs, scored = score_tweets(
        store, run_id, options, progress, labeled_texts, unlabeled, kept, encoded.labels
    )
    extra = encode_split(
        tokens,
        [()] * len(kept),
        encoded.vocab,
        encoded.labels,
        encoded.max_tokens,
    )
    train = _with_soft(
        concat_splits(labeled_train, extra),
        np.concatenate([labeled_probs[:n_train], unlabeled_probs]),
        np.arange(n_train + len(kept)) < n_train,
    )
    validation = _with_soft(labeled_val, labeled_probs[n_train:], np.ones(n_val, bool))
    summary = distillation_summary(options, run_id, counts, scored, (n_train, len(kept)), progress)
    return Distillation(train, validation, summary)


def distillation_summary(
    options: TrainOptions,
    run_id: str,
    counts: dict[str, int],
    scored: dict[str, list[Any]],
    rows: tuple[int, int],
    progress: Progress,
) -> dict[str, Any]:
    """What a distilled run's lineage records of its distillation; ``rows`` (the labeled and
    unlabeled tweets it trains on) said in one line."""
    progress.say(
        f"distillation: {rows[0]:,} labeled + {rows[1]:,} unlabeled tweets, "
        f"weight {options.distill_weight}, temperature {options.temperature}"
    )
    return {
        "teacher": run_id,
        "distill_weight": options.distill_weight,
        "temperature": options.temperature,
        "unlabeled": counts,
        **scored,
    }


def say_unlabeled(progress: Progress, counts: dict[str, int]) -> None:
    progress.say(
        f"unlabeled: {counts['kept']:,} tweets kept of {counts['read']:,} read "
        f"({counts['repeats']:,} repeats, {counts['labeled']:,} of the labeled data's tweets dropped)"
    )


def score_tweets(
    store: ObjectStore,
    run_id: str,
    options: TrainOptions,
    progress: Progress,
    labeled_texts: Sequence[str],
    unlabeled: Sequence[str],
    kept: np.ndarray,
    labels: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, dict[str, list[Any]]]:
    """The teacher's probabilities (in ``labels``' order) for the labeled texts and for the kept
    unlabeled ones, each list scored in one :func:`~.soft_labels.soft_labels` call (cached unless
    a dry run), and the cache keys and hits for the run's lineage."""
    progress.say(
        f"soft labels: teacher {run_id} for {len(labeled_texts):,} labeled and "
        f"{len(unlabeled):,} unlabeled tweets"
    )
    scored = [
        soft_labels(
            store,
            run_id,
            texts,
            options.device,
            precision=options.precision,
            progress=progress,
            cache=not options.dry_run,
        )
        for texts in (labeled_texts, unlabeled)
        if texts
    ]
    labeled_probs = map_labels(scored[0].probs, scored[0].labels, labels)
    unlabeled_probs = (
        map_labels(scored[1].probs, scored[1].labels, labels)[kept]
        if len(scored) > 1
        else np.zeros((0, len(labels)), np.float32)
    )
    cache = {"soft_labels": [one.key for one in scored], "soft_labels_cached": [one.cached for one in scored]}
    return labeled_probs, unlabeled_probs, cache


def read_unlabeled(
    store: ObjectStore, patterns: Sequence[str], labeled: Dataset | Callable[[Sequence[str]], np.ndarray]
) -> UnlabeledTweets:
    """The texts of ``patterns`` as ``teacher-score`` lists them (each exact text once, in file
    order), the indices of those kept (once each by content, none of the labeled data's, any
    split) with their word tokens, and the counts of what was read and dropped. ``labeled`` is
    the labeled dataset, or a function that says which content keys
    (:func:`~tweetdomains.text.content_hash`) are the labeled data's. ValueError for a file
    that is not there."""
    counts = {"read": 0, "repeats": 0, "labeled": 0, "kept": 0}
    if not patterns:
        return UnlabeledTweets([], np.zeros(0, dtype=np.int64), counts, [])
    try:
        lines = list(read_texts(store, patterns, codecs.ParseStats()))
    except FileNotFoundError as exc:
        raise ValueError(f"--unlabeled: {exc}") from None
    texts = list(dict.fromkeys(lines))
    keys = [content_hash(text) for text in texts]
    is_labeled = (_labeled_keys(labeled) if isinstance(labeled, Dataset) else labeled)(keys)
    seen: set[str] = set()
    kept: list[int] = []
    for i, key in enumerate(keys):
        if is_labeled[i]:
            counts["labeled"] += 1
        elif key not in seen:
            seen.add(key)
            kept.append(i)
    counts["read"] = len(lines)
    counts["kept"] = len(kept)
    counts["repeats"] = len(lines) - counts["labeled"] - len(kept)
    tokens = tokenize_texts([texts[i] for i in kept])
    return UnlabeledTweets(texts, np.asarray(kept, dtype=np.int64), counts, tokens)


def _labeled_keys(dataset: Dataset) -> Callable[[Sequence[str]], np.ndarray]:
    labeled = {
        content_hash(r.text) for split in (dataset.train, dataset.validation, dataset.test) for r in split
    }
    return lambda keys: np.array([key in labeled for key in keys], dtype=bool)


def _with_soft(split: EncodedSplit, soft: np.ndarray, labeled: np.ndarray) -> DistillSplit:
    return DistillSplit(split.ids, split.offsets, split.labels, soft, labeled)


def _labeled_dataset(store: ObjectStore, options: TrainOptions, encoded: EncodedDataset) -> Dataset:
    """The records ``encoded`` was made from: kept by ``prepare_records``, else read again."""
    if encoded.dataset is not None:
        return encoded.dataset
    return read_dataset(
        store, options.data, options.test_percent, options.validation_percent, options.label_field
    )[0]
