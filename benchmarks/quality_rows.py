"""The quality benchmark's rows: splits of labeled tweets, one row of figures per model, the
side-by-side speed trial, and the Markdown table and plot they are reported in."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from peers import MiniLMPeer, Peer

from tweetdomains.dataset import split_of
from tweetdomains.metrics import binarize, score, tune_thresholds
from tweetdomains.text import content_hash

VALIDATION_PERCENT = 15


@dataclass
class Split:
    texts: list[str]
    label_sets: list[list[str]]


@dataclass
class Row:
    """One model's figures on the test split (lists: one entry per seed)."""

    name: str
    micro: list[float]
    macro: list[float]
    p1: list[float]
    micro_tuned: list[float]
    macro_tuned: list[float]
    p1_tuned: list[float]
    train_seconds: list[float]
    tweets_per_second: list[float]
    size_bytes: int

    def mean(self, field: str) -> float:
        return float(statistics.fmean(getattr(self, field)))

    def spread(self, field: str) -> float:
        values = getattr(self, field)
        return float(statistics.pstdev(values)) if len(values) > 1 else 0.0


def read_split(path: Path, label_field: str = "domains") -> Split:
    """The labeled tweets of a JSONL file (labels in ``label_field``; unlabeled lines skipped)."""
    texts, label_sets = [], []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            if obj.get(label_field):
                texts.append(obj["text"])
                label_sets.append(list(obj[label_field]))
    return Split(texts, label_sets)


def carve_validation(train: Split, percent: int = VALIDATION_PERCENT) -> tuple[Split, Split]:
    """Train part and validation part, by content hash (stable, retweets stay together)."""
    fit, val = Split([], []), Split([], [])
    for text, names in zip(train.texts, train.label_sets, strict=True):
        side = val if split_of(content_hash(text), 0, percent) == "validation" else fit
        side.texts.append(text)
        side.label_sets.append(names)
    return fit, val


def expand(probs: np.ndarray, model_labels: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Probabilities in ``labels`` order; labels the model does not know score 0."""
    column = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(probs), len(labels)), dtype=np.float32)
    for j, name in enumerate(model_labels):
        out[:, column[name]] = probs[:, j]
    return out


Predict = Callable[[list[str]], np.ndarray]


def tweets_per_second(
    predict: Predict, texts: list[str], min_seconds: float = 3.0, max_passes: int = 7
) -> float:
    """Raw tweets in, probabilities out: the median pass over ``texts``.

    Passes are repeated until ``min_seconds`` have gone by (at most ``max_passes``). A fast
    model's single pass lasts under a second, where one scheduler hiccup moves it by a
    quarter; a slow one's single pass already spans the minimum.
    """
    speeds: list[float] = []
    spent = 0.0
    while not speeds or (spent < min_seconds and len(speeds) < max_passes):
        started = time.perf_counter()
        predict(texts)
        seconds = max(time.perf_counter() - started, 1e-9)
        spent += seconds
        speeds.append(len(texts) / seconds)
    return statistics.median(speeds)


class SpeedTrial:
    """Every trained model of a table, timed side by side once all are trained.

    Timing each model just after its training would compare minutes apart on a shared
    machine whose speed drifts by a fifth over a run. Here the models take turns, round
    after round, and each keeps the median of its rounds; one entry per trained model
    (per seed), so a row's speed is the mean over its seeds like its other figures.
    """

    def __init__(self) -> None:
        self.entries: list[tuple[Row, Predict]] = []

    def add(self, row: Row, predict: Predict) -> None:
        self.entries.append((row, predict))

    def run(self, texts: list[str], warmup: list[str], rounds: int = 3) -> None:
        for _, predict in self.entries:
            predict(warmup)  # first-call allocations are not speed
        speeds: list[list[float]] = [[] for _ in self.entries]
        for _ in range(rounds):
            for (_, predict), measured in zip(self.entries, speeds, strict=True):
                measured.append(tweets_per_second(predict, texts))
        for (row, _), measured in zip(self.entries, speeds, strict=True):
            row.tweets_per_second.append(statistics.median(measured))
            print(f"  speed: {row.name}: {row.tweets_per_second[-1]:.0f} tweets/s", flush=True)


def score_pair(
    y_test: np.ndarray, probs: np.ndarray, labels: list[str], thresholds: np.ndarray | float
) -> tuple[dict[str, Any], dict[str, Any]]:
    return score(y_test, probs, labels), score(y_test, probs, labels, thresholds)


def append_scores(row: Row, plain: dict[str, Any], tuned: dict[str, Any], seconds: float) -> None:
    row.micro.append(plain["micro_f1"])
    row.macro.append(plain["macro_f1"])
    row.p1.append(plain["p_at_1"])
    row.micro_tuned.append(tuned["micro_f1"])
    row.macro_tuned.append(tuned["macro_f1"])
    row.p1_tuned.append(tuned["p_at_1"])
    row.train_seconds.append(seconds)


def peer_row(
    peer_factory: Callable[[], Peer],
    train: Split,
    fit: Split,
    val: Split,
    test: Split,
    labels: list[str],
    trial: SpeedTrial,
) -> Row:
    """Rule-0.5 figures from a peer fitted on all of train (the one ``trial`` times); tuned
    ones from one fitted on the train part with thresholds tuned on validation."""
    y_test = binarize(test.label_sets, labels)
    full = peer_factory()
    started = time.perf_counter()
    full.fit(train.texts, train.label_sets, labels)
    seconds = time.perf_counter() - started
    probs = full.predict_proba(test.texts)

    def uncached(texts: list[str]) -> np.ndarray:
        # MiniLM's embedding cache saves encoding a tweet twice while scoring; a timed pass
        # must encode every tweet, as a server would.
        if isinstance(full, MiniLMPeer):
            for text in texts:
                full.cache.pop(text, None)
        return full.predict_proba(texts)

    part = peer_factory()
    if isinstance(full, MiniLMPeer) and isinstance(part, MiniLMPeer):
        part.cache, part._encoder = full.cache, full._encoder  # one encoding per tweet
    part.fit(fit.texts, fit.label_sets, labels)
    thresholds = tune_thresholds(binarize(val.label_sets, labels), part.predict_proba(val.texts))
    plain = score(y_test, probs, labels)
    tuned = score(y_test, part.predict_proba(test.texts), labels, thresholds)
    row = Row(full.name, [], [], [], [], [], [], [], [], full.size_bytes())
    append_scores(row, plain, tuned, seconds)
    trial.add(row, uncached)
    return row


def _cell(row: Row, field: str) -> str:
    if len(getattr(row, field)) > 1:
        return f"{row.mean(field):.3f} ± {row.spread(field):.3f}"
    return f"{row.mean(field):.3f}"


def markdown_table(rows: Sequence[Row]) -> str:
    head = (
        "| model | micro-F1 | macro-F1 | P@1 | micro-F1 (tuned) | macro-F1 (tuned) | P@1 (tuned) "
        "| train s | tweets/s | size MB |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r.name} | {_cell(r, 'micro')} | {_cell(r, 'macro')} | {_cell(r, 'p1')} | "
        f"{_cell(r, 'micro_tuned')} | {_cell(r, 'macro_tuned')} | {_cell(r, 'p1_tuned')} | "
        f"{r.mean('train_seconds'):.0f} | {r.mean('tweets_per_second'):.0f} | {r.size_bytes / 1e6:.1f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [("micro", "micro-F1"), ("macro", "macro-F1"), ("p1", "P@1")]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(rows), 1)
    for i, row in enumerate(rows):
        xs = np.arange(len(metrics)) + i * width
        ax.bar(
            xs,
            [row.mean(m) for m, _ in metrics],
            width,
            yerr=[row.spread(m) for m, _ in metrics],
            label=row.name,
            capsize=2,
        )
    ax.set_xticks(np.arange(len(metrics)) + width * (len(rows) - 1) / 2)
    ax.set_xticklabels([label for _, label in metrics])
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
