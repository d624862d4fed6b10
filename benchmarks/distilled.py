"""The quality benchmark's teacher and student rows: the fine-tuned MiniLM teacher (reused from
a store or fine-tuned in the run) scored as a peer, and the unlabeled tweets the distilled LSTM
learns from."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from quality_rows import Row, SpeedTrial, Split, append_scores, expand, score_pair

from tweetdomains import codecs
from tweetdomains.metrics import binarize
from tweetdomains.store import open_store
from tweetdomains.text import content_hash
from tweetdomains_trainer.data import read_dataset
from tweetdomains_trainer.distill import teacher_problem
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.pretrain_corpus import read_texts
from tweetdomains_trainer.soft_labels import teacher_probs
from tweetdomains_trainer.teacher import fine_tune
from tweetdomains_trainer.teacher_model import (
    load_teacher,
    resolve_teacher,
    teacher_registry,
    write_tiny_bert,
)
from tweetdomains_trainer.teacher_options import TeacherOptions

FINETUNED = "MiniLM fine-tuned (teacher)"
DISTILLED = "LSTM distilled (ours)"
TWEETEVAL_TEXTS = "raw/cardiffnlp__tweeteval/datasets/*/*_text.txt"


def unlabeled_texts(
    patterns: Sequence[str], limit: int | None, path: Path, test: Split, seed: int = 0
) -> list[str]:
    """The unlabeled tweets of ``patterns`` (a seeded sample of ``limit`` when capped) written to
    ``path``, one a line, for the distilled rows' ``--unlabeled``; the list of that file.

    Tweets whose content matches a test tweet are left out here: the trainer drops copies of
    its own data's tweets, but the test split is a file it never reads. Otherwise the texts stay
    as read, in order, so an uncapped ``.txt`` already scored by ``teacher-score`` on the
    teacher's store keeps its cached soft labels.
    """
    texts = [
        t.replace("\r", " ").replace("\n", " ").strip()
        for t in read_texts(open_store(str(path.parent / "store")), patterns, codecs.ParseStats())
    ]
    tested = {content_hash(t) for t in test.texts}
    kept = [t for t in texts if t and content_hash(t) not in tested]
    left_out = len(texts) - len(kept)
    print(f"  unlabeled: {len(kept):,} of {len(texts):,} tweets ({left_out:,} empty or test tweets left out)")
    texts = kept
    if limit is not None and len(texts) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(texts), limit, replace=False))
        texts = [texts[i] for i in keep]
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return [str(path)]


def prepare_teacher(
    args: argparse.Namespace, train_file: Path, work: Path, validation_percent: int, dry_run: bool
) -> tuple[str, str, float]:
    """The teacher's store URI and run id, and its training seconds: ``--teacher-store`` and
    ``--teacher`` when given (checked to have been fine-tuned on ``train_file`` with no test
    share and a validation share covering this run's; ValueError otherwise), else one
    fine-tuned now on the train part (a tiny BERT for a dry run)."""
    student = TrainOptions(
        store=str(work / "store"),
        data=[str(train_file)],
        test_percent=0,
        validation_percent=validation_percent,
    )
    if args.teacher:
        store = open_store(args.teacher_store)
        run_id = resolve_teacher(store, args.teacher)
        dataset = read_dataset(store, student.data, 0, validation_percent)[0]
        problem = teacher_problem(store, run_id, student, dataset, dataset.labels)
        if problem:
            raise ValueError(
                f"--teacher {args.teacher}: teacher {run_id} does not fit this benchmark: {problem}"
            )
        metrics = teacher_registry(store).json_artifact(run_id, "metrics.json")
        print(f"  teacher: {run_id} from {store.uri} ({metrics.get('train_seconds', 0):.0f} s of training)")
        return store.uri, run_id, float(metrics.get("train_seconds", 0.0))
    return fine_tune_teacher(
        [train_file], work / "teacher-store", "teacher-bench", validation_percent, args.threads, dry_run
    )


def fine_tune_teacher(
    data: Sequence[Path],
    store: Path,
    run_id: str,
    validation_percent: int,
    threads: int,
    dry_run: bool,
    label_field: str = "domains",
    recipe: dict[str, Any] | None = None,
) -> tuple[str, str, float]:
    """A teacher fine-tuned now on ``data``'s train part (no test share, ``validation_percent``
    carved as the students' rows carve it), published in ``store``: its URI, run id and
    training seconds. ``recipe``: :class:`TeacherOptions` fields (default: its defaults, what
    ``tweetdomains teacher`` fine-tunes); a tiny BERT for two steps in a dry run."""
    options: dict[str, Any] = dict(recipe or {})
    if dry_run:
        options = {
            "model": str(write_tiny_bert(store.parent / "tiny-bert")),
            "max_steps": 2,
            "max_length": 32,
            "epochs": 1,
        }
    base = "a tiny BERT (dry run)" if dry_run else "all-MiniLM-L6-v2"
    print(f"  teacher: fine-tuning {base} on the train part", flush=True)
    started = time.perf_counter()
    result = fine_tune(
        TeacherOptions(
            store=str(store),
            data=[str(p) for p in data],
            label_field=label_field,
            test_percent=0,
            validation_percent=validation_percent,
            threads=threads,
            progress=True,
            run_id=run_id,
            **options,
        )
    )
    return str(store), result.run_id, time.perf_counter() - started


def finetuned_row(
    store_uri: str, run_id: str, test: Split, labels: list[str], trial: SpeedTrial, seconds: float
) -> Row:
    """The fine-tuned teacher scored as a peer: rule 0.5, and its thresholds tuned on its validation."""
    store = open_store(store_uri)
    teacher = load_teacher(store, run_id, torch.device("cpu"))

    def predict(texts: list[str]) -> np.ndarray:
        return teacher_probs(teacher, texts, torch.device("cpu"), batch_size=64)

    y_test = binarize(test.label_sets, labels)
    probs = expand(predict(test.texts), teacher.labels, labels)
    thresholds = expand(teacher.thresholds[None, :], teacher.labels, labels)[0]
    thresholds[thresholds == 0] = 0.5
    plain, tuned = score_pair(y_test, probs, labels, thresholds)
    size = sum(len(b) for b in teacher_registry(store).artifacts(run_id).values() if b)
    row = Row(FINETUNED, [], [], [], [], [], [], [], [], size)
    append_scores(row, plain, tuned, seconds)
    trial.add(row, predict)
    print(
        f"    test micro {plain['micro_f1']:.3f} macro {plain['macro_f1']:.3f} P@1 {plain['p_at_1']:.3f}",
        flush=True,
    )
    return row
