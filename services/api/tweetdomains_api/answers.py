"""One classification answer: probabilities quantized for the cache, rendered per request.

A cached answer is the probabilities as unsigned 16-bit integers (``round(p * 65535)``) in
the model's label order, behind a one-byte format tag: 2 bytes a label (about 60 bytes for
30 labels, against 3.7 KB of rendered JSON before). Fresh answers are quantized the same way
before they are rendered, so a hit and a miss of one text answer exactly alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tweetdomains.metrics import decide
from tweetdomains.predict import Classifier

FORMAT_TAG = b"\x01"
_SCALE = 65535.0
DECIMALS = 5  # what a 16-bit quantization resolves (1 / 65535 = 1.5e-5)


def quantize(probs: np.ndarray) -> np.ndarray:
    """``[n, labels]`` probabilities as uint16 (rows stay in label order)."""
    return np.rint(np.clip(probs, 0.0, 1.0) * _SCALE).astype("<u2")


def to_cache_value(row: np.ndarray) -> bytes:
    """One quantized row as the bytes the cache keeps."""
    return FORMAT_TAG + row.astype("<u2", copy=False).tobytes()


def from_cache_value(value: bytes | None, labels: int) -> np.ndarray | None:
    """The quantized row of a cache value; ``None`` for a value of another format or model."""
    if value is None or len(value) != 1 + 2 * labels or value[:1] != FORMAT_TAG:
        return None
    return np.frombuffer(value, dtype="<u2", offset=1)


def render(classifier: Classifier, quantized: np.ndarray, cached: list[bool]) -> list[dict[str, Any]]:
    """``{"domains", "predicted", "cached"}`` per row of ``quantized`` ``[n, labels]``.

    Domains are sorted highest first; ``predicted`` are those at or over their threshold, or
    the top one when none is (:func:`tweetdomains.metrics.decide`).
    """
    probs = quantized.astype(np.float64) / _SCALE
    order = np.argsort(-probs, axis=1, kind="stable")
    chosen = decide(probs, classifier.thresholds).astype(bool)
    values = np.round(probs, DECIMALS).tolist()
    labels = classifier.labels
    out = []
    for i, row_order in enumerate(order.tolist()):
        row_values, row_chosen = values[i], chosen[i]
        out.append(
            {
                "domains": [{"name": labels[j], "probability": row_values[j]} for j in row_order],
                "predicted": [labels[j] for j in row_order if row_chosen[j]],
                "cached": cached[i],
            }
        )
    return out
