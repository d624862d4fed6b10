"""Metrics and thresholds against hand-computed values."""

from __future__ import annotations

import numpy as np

from tweetdomains.metrics import binarize, decide, score, tune_thresholds


def test_decide_takes_top_label_when_none_passes() -> None:
    probs = np.array([[0.2, 0.4, 0.1], [0.9, 0.6, 0.1]])
    assert decide(probs).tolist() == [[0, 1, 0], [1, 1, 0]]


def test_score_hand_computed() -> None:
    labels = ["A", "B", "C"]
    y = binarize([["A"], ["A", "B"], ["C"]], labels)
    probs = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.7], [0.3, 0.1, 0.2]])
    # predictions: {A}, {A, C}, {A} (top label)  -> tp A=2, fp A=1, fp C=1, fn B=1, fn C=1
    result = score(y, probs, labels)
    assert result["n"] == 3
    assert result["micro_f1"] == round(2 * 2 / (2 * 2 + 2 + 2), 4)
    assert result["macro_f1"] == round((0.8 + 0 + 0) / 3, 4)
    assert result["p_at_1"] == round(2 / 3, 4)
    assert result["per_label"]["A"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}


def test_macro_counts_only_labels_present() -> None:
    labels = ["A", "B"]
    y = binarize([["A"], ["A"]], labels)
    result = score(y, np.array([[0.9, 0.0], [0.9, 0.0]]), labels)
    assert result["macro_f1"] == 1.0


def test_thresholds_fit_validation_and_respect_floor_and_support() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros((200, 2), dtype=np.float32)
    y[:100, 0] = 1
    y[:3, 1] = 1  # too rare to tune
    probs = rng.uniform(0, 0.3, size=(200, 2))
    probs[:100, 0] += 0.35  # positives sit in [0.35, 0.65]
    t = tune_thresholds(y, probs, min_support=5, floor=0.2)
    assert 0.3 <= t[0] <= 0.375
    assert t[1] == 0.5
    assert (t >= 0.2).all()
