"""Per-domain Platt calibration of a model's probabilities (numpy only: fitted by the trainer,
applied by :class:`~tweetdomains.predict.Classifier` at serve time).

A domain's calibrated probability is ``sigmoid(a * logit + b)``, ``logit`` the model's raw
score. Why Platt, not a per-domain temperature or isotonic regression:

- a temperature (``logit / T``) keeps 0.5 where it was, but this model's error is mostly an
  offset: a rare domain's positive-weighted loss pushes its scores up for every tweet, so the
  bias ``b`` is needed to bring a 0.7 that is right 30% of the time down to 0.3;
- isotonic regression is a step function fitted on a handful of validation positives per
  domain (many domains have fewer than ten): it overfits, ties distinct scores and so moves
  the top domain; two parameters per domain, monotone, do not.

Each domain's fit is shrunk towards one fit over all (tweet, domain) pairs, so a domain with
few validation positives gets the shared correction rather than noise. Stored as
``calibration.json`` (plain JSON beside ``thresholds.json``); a run without it is served
uncalibrated (:meth:`Calibration.identity`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

METHOD = "platt"
_EPS = 1e-6
MAX_SCALE = 10.0
MAX_BIAS = 20.0


def logits_of(probs: np.ndarray) -> np.ndarray:
    """The log-odds of probabilities (clipped away from 0 and 1)."""
    p = np.clip(probs.astype(np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True)
class Calibration:
    """``sigmoid(scale * logit + bias)`` per domain."""

    scale: np.ndarray
    bias: np.ndarray
    method: str = METHOD

    @classmethod
    def identity(cls, num_labels: int) -> Calibration:
        return cls(np.ones(num_labels), np.zeros(num_labels), "identity")

    @property
    def is_identity(self) -> bool:
        return bool(np.all(self.scale == 1.0) and np.all(self.bias == 0.0))

    def apply_logits(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``[n, labels]`` (float32) from raw logits."""
        return _sigmoid(logits * self.scale + self.bias).astype(np.float32)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from uncalibrated ones."""
        if self.is_identity:
            return probs.astype(np.float32)
        return self.apply_logits(logits_of(probs))

    def to_json(self) -> str:
        return json.dumps(
            {
                "method": self.method,
                "formula": "sigmoid(scale * logit + bias)",
                "scale": [round(float(x), 6) for x in self.scale],
                "bias": [round(float(x), 6) for x in self.bias],
            },
            indent=1,
        )

    @classmethod
    def from_obj(cls, obj: Any, num_labels: int) -> Calibration:
        """From the parsed ``calibration.json``; ValueError when it does not fit the labels."""
        if not isinstance(obj, dict):
            raise ValueError("calibration.json must be an object")
        scale = np.asarray(obj.get("scale"), dtype=np.float64)
        bias = np.asarray(obj.get("bias"), dtype=np.float64)
        if scale.shape != (num_labels,) or bias.shape != (num_labels,):
            raise ValueError(f"calibration.json needs {num_labels} scales and biases")
        if not (np.all(np.isfinite(scale)) and np.all(np.isfinite(bias)) and np.all(scale > 0)):
            raise ValueError("calibration scales must be finite and positive, biases finite")
        return cls(scale, bias, str(obj.get("method", METHOD)))


def _fit_one(
    z: np.ndarray, y: np.ndarray, prior: tuple[float, float], strength: float, iterations: int = 50
) -> tuple[float, float]:
    """Newton's method on the mean log loss of ``sigmoid(a z + b)`` plus
    ``strength * |(a, b) - prior|^2 / len(z)`` (a Gaussian prior around ``prior``)."""
    a, b = prior
    n = max(len(z), 1)
    reg = strength / n
    for _ in range(iterations):
        p = _sigmoid(a * z + b)
        r = p - y
        w = p * (1 - p)
        grad = np.array([np.mean(r * z) + 2 * reg * (a - prior[0]), np.mean(r) + 2 * reg * (b - prior[1])])
        hess = np.array(
            [[np.mean(w * z * z) + 2 * reg, np.mean(w * z)], [np.mean(w * z), np.mean(w) + 2 * reg]]
        )
        hess += np.eye(2) * 1e-9
        step = np.clip(np.linalg.solve(hess, grad), -2.0, 2.0)  # damped: no overshoot
        # Bounded: increasing (calibration never reverses a ranking), and finite on
        # separable data (a toy validation split), where the unpenalized optimum is infinite.
        a, b = float(np.clip(a - step[0], 1e-3, MAX_SCALE)), float(np.clip(b - step[1], -MAX_BIAS, MAX_BIAS))
        if np.abs(step).max() < 1e-7:
            break
    return float(a), float(b)


def fit_platt(targets: np.ndarray, probs: np.ndarray, strength: float = 20.0) -> Calibration:
    """Per-domain Platt scaling fitted on validation ``targets``/``probs`` ``[n, labels]``.

    ``strength`` is the prior's weight in pseudo-observations: a domain's own fit dominates
    once its validation positives and negatives outnumber it.
    """
    z = logits_of(probs)
    y = targets.astype(np.float64)
    shared = _fit_one(z.ravel(), y.ravel(), (1.0, 0.0), strength=1.0)
    scale = np.empty(y.shape[1])
    bias = np.empty(y.shape[1])
    for j in range(y.shape[1]):
        # A domain with no validation positive stays near the shared fit (the prior); its
        # own negatives can only lower it.
        scale[j], bias[j] = _fit_one(z[:, j], y[:, j], shared, strength)
    return Calibration(scale, bias)


def reliability(targets: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error: ``sum_b |B_b|/N * |mean p - mean y|`` over ``bins``
    equal-width probability bins (the last one closed)."""
    p = probs.ravel().astype(np.float64)
    y = targets.ravel().astype(np.float64)
    if not len(p):
        return 0.0
    which = np.minimum((p * bins).astype(np.int64), bins - 1)
    sum_p = np.bincount(which, weights=p, minlength=bins)
    sum_y = np.bincount(which, weights=y, minlength=bins)
    return float(np.abs(sum_p - sum_y).sum() / len(p))


def calibration_error(
    targets: np.ndarray, probs: np.ndarray, labels: Sequence[str], bins: int = 15
) -> dict[str, Any]:
    """ECE over all (tweet, domain) pairs, the mean of per-domain ECEs over domains present in
    ``targets``, and the ECE of each tweet's top-scored domain (is the shown top bar right?)."""
    present = targets.sum(axis=0) > 0
    per_domain = [reliability(targets[:, j], probs[:, j], bins) for j in np.flatnonzero(present)]
    top = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    rows = np.arange(len(probs))
    return {
        "bins": bins,
        "ece": round(reliability(targets, probs, bins), 5),
        "ece_per_domain_mean": round(float(np.mean(per_domain)) if per_domain else 0.0, 5),
        "ece_top_domain": round(reliability(targets[rows, top], probs[rows, top], bins), 5),
        "domains": int(present.sum()),
        "pairs": int(targets.size),
    }
