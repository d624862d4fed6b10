"""Drift: the predicted domains of recent traffic beside the served run's training labels.

The API keeps the predicted domains of the last ``window`` classified texts (cached or not);
``/metrics`` exposes each domain's share of them next to its share of the training labels
(from the run's ``metrics.json`` ``lineage.label_counts``, when the run records it).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any


def training_shares(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Each domain's share of the training texts (``label_counts / records``; a text may count
    for several domains) from a run's metrics; empty for runs without lineage."""
    lineage = metrics.get("lineage")
    counts = lineage.get("label_counts") if isinstance(lineage, Mapping) else None
    if not isinstance(counts, Mapping):
        return {}
    clean = {str(k): float(v) for k, v in counts.items() if isinstance(v, int | float) and v >= 0}
    records = lineage.get("records") if isinstance(lineage, Mapping) else None
    total = float(records) if isinstance(records, int) and records > 0 else sum(clean.values())
    return {k: v / total for k, v in clean.items()} if total > 0 else {}


def shares(counts: Mapping[str, int], texts: int) -> dict[str, float]:
    """Each domain's share of ``texts`` texts (a text may count for several domains)."""
    return {k: v / texts for k, v in counts.items()} if texts else {}


class DriftTracker:
    """Rolling counts of predicted domains over the last ``window`` texts."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._recent: deque[tuple[str, ...]] = deque()
        self.counts: Counter[str] = Counter()

    def add(self, predicted: Iterable[Iterable[str]]) -> None:
        for domains in predicted:
            entry = tuple(domains)
            self._recent.append(entry)
            self.counts.update(entry)
            if len(self._recent) > self.window:
                self.counts.subtract(self._recent.popleft())

    @property
    def texts(self) -> int:
        return len(self._recent)

    def live_shares(self) -> dict[str, float]:
        return shares({k: v for k, v in self.counts.items() if v > 0}, self.texts)
