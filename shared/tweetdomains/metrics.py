"""Multi-label metrics and decision thresholds (numpy only).

Decision rule everywhere (trainer, evaluate, API, benchmarks): a label is predicted when its
probability reaches its threshold; a tweet where none does gets its top-scored label, because
every annotated tweet has at least one domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def binarize(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """``[n, len(labels)]`` 0/1 matrix; labels not in ``labels`` are ignored."""
    index = {name: i for i, name in enumerate(labels)}
    y = np.zeros((len(label_sets), len(labels)), dtype=np.float32)
    for row, names in enumerate(label_sets):
        for name in names:
            col = index.get(name)
            if col is not None:
                y[row, col] = 1.0
    return y


def decide(probs: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    """0/1 predictions: probability >= threshold, else the top label."""
    pred = (probs >= thresholds).astype(np.int8)
    if len(probs):
        empty = pred.sum(axis=1) == 0
        pred[empty, probs[empty].argmax(axis=1)] = 1
    return pred


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=np.float64), where=denom > 0)


def score(
    y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], thresholds: np.ndarray | float = 0.5
) -> dict[str, Any]:
    """micro-F1, macro-F1 (over labels present in ``y_true``), P@1 and per-label figures."""
    y = y_true.astype(bool)
    pred = decide(probs, thresholds).astype(bool)
    tp = (y & pred).sum(axis=0).astype(np.float64)
    fp = (~y & pred).sum(axis=0).astype(np.float64)
    fn = (y & ~pred).sum(axis=0).astype(np.float64)
    support = y.sum(axis=0)
    per_f1 = _f1(tp, fp, fn)
    present = support > 0
    micro = float(_f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))[0])
    macro = float(per_f1[present].mean()) if present.any() else 0.0
    p_at_1 = float(y[np.arange(len(y)), probs.argmax(axis=1)].mean()) if len(y) else 0.0
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    per_label = {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(per_f1[i]), 4),
            "support": int(support[i]),
        }
        for i, name in enumerate(labels)
    }
    return {
        "n": len(y),
        "micro_f1": round(micro, 4),
        "macro_f1": round(macro, 4),
        "p_at_1": round(p_at_1, 4),
        "per_label": per_label,
    }


def prediction_scores(y_true: np.ndarray, pred: np.ndarray, top: np.ndarray) -> dict[str, Any]:
    """micro-F1, macro-F1 (labels present in ``y_true``) and P@1 of 0/1 decisions ``pred`` and
    top-label indices ``top``: for predictions made elsewhere (another run's, by label name)."""
    y, p = y_true.astype(bool), pred.astype(bool)
    tp = (y & p).sum(axis=0).astype(np.float64)
    fp = (~y & p).sum(axis=0).astype(np.float64)
    fn = (y & ~p).sum(axis=0).astype(np.float64)
    present = y.sum(axis=0) > 0
    micro = float(_f1(tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True))[0])
    macro = float(_f1(tp, fp, fn)[present].mean()) if present.any() else 0.0
    p_at_1 = float(y[np.arange(len(y)), top].mean()) if len(y) else 0.0
    return {"n": len(y), "micro_f1": round(micro, 4), "macro_f1": round(macro, 4), "p_at_1": round(p_at_1, 4)}


def tune_thresholds(
    y_true: np.ndarray,
    probs: np.ndarray,
    min_support: int = 5,
    default: float = 0.5,
    floor: float = 0.2,
    ceiling: float = 0.95,
) -> np.ndarray:
    """Per-label thresholds that maximize F1 on validation data.

    Labels with fewer than ``min_support`` positives keep ``default``: a threshold fitted on two
    examples is noise. Tuned thresholds never go below ``floor``, so a rare domain is not
    predicted for every tweet to catch its few positives, nor above ``ceiling`` (0.5 for
    calibrated probabilities, where F1's best threshold is at most 0.5 anyway).
    """
    candidates = np.round(np.arange(floor, ceiling + 0.001, 0.025), 3)
    thresholds = np.full(y_true.shape[1], default, dtype=np.float32)
    for col in range(y_true.shape[1]):
        positives = y_true[:, col] > 0
        if positives.sum() < min_support:
            continue
        p = probs[:, col][:, None] >= candidates[None, :]
        tp = (p & positives[:, None]).sum(axis=0)
        fp = (p & ~positives[:, None]).sum(axis=0)
        fn = positives.sum() - tp
        f1 = _f1(tp.astype(np.float64), fp.astype(np.float64), fn.astype(np.float64))
        thresholds[col] = candidates[int(f1.argmax())]
    return thresholds
