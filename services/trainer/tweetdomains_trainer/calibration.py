"""Calibration and decision thresholds of a run, both fitted on validation predictions only.

Platt scaling per domain (:mod:`tweetdomains.calibration` says why Platt). The thresholds are
tuned for F1 on the validation scores, then carried onto the calibrated scale through the same
monotone map and capped at 0.5 (the served rule): tuning on calibrated scores over the images of
the grid picks the same tweets, whereas a fixed [0.2, 0.5] grid on calibrated scores cannot go
below a rare domain's calibrated range (measured on the benchmark's validation split, original
recipe: macro-F1 0.154 with the carried thresholds against 0.135 with the fixed grid).
A domain with too few validation positives keeps raw 0.5, carried over likewise.
"""

from __future__ import annotations

import numpy as np

from tweetdomains.calibration import Calibration, fit_platt, logits_of
from tweetdomains.predict import MAX_THRESHOLD
from tweetdomains_trainer.steps import fit_thresholds


def fit_calibration(
    targets: np.ndarray, raw_probs: np.ndarray, min_support: int
) -> tuple[Calibration, np.ndarray, np.ndarray]:
    """``(calibration, thresholds on calibrated scores, thresholds on raw scores)``."""
    raw_thresholds = fit_thresholds(targets, raw_probs, min_support)
    calibration = fit_platt(targets, raw_probs)
    carried = calibration.apply_logits(logits_of(raw_thresholds[None, :]))[0]
    return calibration, np.minimum(carried, MAX_THRESHOLD).astype(np.float32), raw_thresholds
