"""The quality benchmark's recurrent rows: one of the trainer's recipes trained by its own
``train()`` once per seed, each model scored on the test split and entered in the speed trial."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from quality_rows import VALIDATION_PERCENT, Row, SpeedTrial, Split, append_scores, expand, score_pair

from tweetdomains.metrics import binarize
from tweetdomains.predict import Classifier, run_artifacts
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.train import train


def train_recurrent(
    recipe: dict[str, Any],
    data: Sequence[Path],
    seed: int,
    store: str,
    label_field: str = "domains",
    max_epochs: int | None = None,
) -> tuple[Classifier, float]:
    """Train ``recipe`` with the trainer on ``data`` (validation carved by content hash, no
    test share); the classifier keeps the trainer's thresholds tuned on validation."""
    options = {
        "validation_percent": VALIDATION_PERCENT,
        **recipe,
        "data": [str(p) for p in data],
        "label_field": label_field,
        "test_percent": 0,
        "seed": seed,
        "store": store,
        "publish": False,
        "progress": False,
    }
    if max_epochs is not None:
        options["epochs"] = min(max_epochs, int(options.get("epochs", max_epochs)))
    started = time.perf_counter()
    result = train(TrainOptions(**options))
    seconds = time.perf_counter() - started
    classifier = Classifier(
        result.model, result.encoded.vocab, result.encoded.labels, result.thresholds, run_id=result.run_id
    )
    return classifier, seconds


def artifact_size(classifier: Classifier) -> int:
    """Bytes of the run as the trainer publishes it (weights, vocabulary, config, labels...)."""
    files = run_artifacts(classifier.model, classifier.vocab, classifier.labels, classifier.thresholds, {})
    return sum(len(b) for b in files.values())


def recurrent_row(
    name: str,
    recipe: dict[str, Any],
    data: Sequence[Path],
    test: Split,
    labels: list[str],
    seeds: Sequence[int],
    store: str,
    trial: SpeedTrial,
    label_field: str = "domains",
    max_epochs: int | None = None,
    bfloat16_row: Row | None = None,
) -> Row:
    """Train ``recipe`` once per seed; the row holds each seed's test figures, and each model
    joins ``trial`` to be timed. With ``bfloat16_row``, the same models are scored (and
    timed) again served in bfloat16 into that row."""
    row = Row(name, [], [], [], [], [], [], [], [], 0)
    y_test = binarize(test.label_sets, labels)
    for seed in seeds:
        print(f"  {name}, seed {seed}", flush=True)
        classifier, seconds = train_recurrent(recipe, data, seed, store, label_field, max_epochs)
        exact = _score_classifier(row, classifier, test, labels, y_test, seconds, trial)
        if bfloat16_row is not None:
            # The same weights in a model of its own: preparing sets the model's serving tables.
            fast = replace(classifier, model=copy.deepcopy(classifier.model), precision="bfloat16")
            served = _score_classifier(bfloat16_row, fast, test, labels, y_test, seconds, trial)
            print(f"    bfloat16: largest probability change {np.abs(served - exact).max():.1e}", flush=True)
    return row


def _score_classifier(
    row: Row,
    classifier: Classifier,
    test: Split,
    labels: list[str],
    y_test: np.ndarray,
    seconds: float,
    trial: SpeedTrial,
) -> np.ndarray:
    """Score one trained classifier into ``row`` and enter it in ``trial``; returns its test
    probabilities."""
    probs = classifier.predict_proba(test.texts)
    trial.add(row, classifier.predict_proba)
    probs = expand(probs, classifier.labels, labels)
    thresholds = expand(classifier.thresholds[None, :], classifier.labels, labels)[0]
    thresholds[thresholds == 0] = 0.5
    plain, tuned = score_pair(y_test, probs, labels, thresholds)
    append_scores(row, plain, tuned, seconds)
    row.size_bytes = artifact_size(classifier)
    print(
        f"    test micro {plain['micro_f1']:.3f} macro {plain['macro_f1']:.3f} P@1 {plain['p_at_1']:.3f}",
        flush=True,
    )
    return probs
