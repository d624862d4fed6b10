"""A loaded, ready-to-use model: text in, one probability per label out.

The trainer saves runs with :func:`run_artifacts`; ``evaluate`` and the API load them with
:meth:`Classifier.load`. Weights are safetensors: loading never unpickles code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tweetdomains.calibration import Calibration
from tweetdomains.model import (
    ModelConfig,
    Precision,
    RecurrentClassifier,
    model_from_bytes,
    model_to_bytes,
    pad_batch,
)
from tweetdomains.registry import WEIGHTS, Registry, RegistryError
from tweetdomains.vocab import UNK_ID, Vocabulary

CALIBRATION = "calibration.json"
# The highest decision threshold: a domain at 0.5 or more is always predicted.
MAX_THRESHOLD = 0.5


@dataclass
class Classifier:
    """A model with its vocabulary, labels, calibration and tuned decision thresholds.

    Probabilities are calibrated (``calibration.json``; identity for runs without one), and a
    threshold never exceeds 0.5: a domain whose calibrated probability is at least 0.5 is
    always in ``predicted``, so the shown top bar is never left unticked.
    """

    model: RecurrentClassifier
    vocab: Vocabulary
    labels: list[str]
    thresholds: np.ndarray
    run_id: str = "unsaved"
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    # Arithmetic of the served recurrence: "float32" (exact) or "bfloat16" (faster on CPUs
    # with AMX or AVX-512 BF16; probabilities move by about 1e-3).
    precision: Precision = "float32"
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        if len(self.labels) != self.model.config.num_labels:
            raise ValueError(
                f"{len(self.labels)} labels for a model with {self.model.config.num_labels} outputs"
            )
        if self.thresholds.shape != (len(self.labels),):
            raise ValueError("one threshold per label is required")
        self.thresholds = np.minimum(self.thresholds, MAX_THRESHOLD).astype(np.float32)
        if self.calibration is None:
            self.calibration = Calibration.identity(len(self.labels))
        if self.calibration.scale.shape != (len(self.labels),):
            raise ValueError("one calibration scale and bias per label is required")
        self.model.prepare_for_serving(self.precision)

    @property
    def served_precision(self) -> Precision:
        """The arithmetic actually served: ``precision`` where the model runs from its input
        projections (one recurrent layer), float32 otherwise."""
        return self.precision if self.model.projections is not None else "float32"

    @property
    def max_tokens(self) -> int:
        return self.model.config.max_tokens

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, cut to the model's token window."""
        return [self.vocab.encode_text(t, self.max_tokens) for t in texts]

    def encode_tokens(self, tokenized: Sequence[Sequence[str]]) -> list[list[int]]:
        """:meth:`encode` of texts already normalized and tokenized (the API has done both)."""
        return [self.vocab.encode(tokens)[: self.max_tokens] or [UNK_ID] for tokens in tokenized]

    @torch.inference_mode()
    def predict_ids(self, encoded: Sequence[list[int]], batch_size: int = 128) -> np.ndarray:
        """Probabilities ``[n, labels]`` for already-encoded texts, in input order."""
        probs = np.zeros((len(encoded), len(self.labels)), dtype=np.float32)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        groups: list[list[int]]
        if self.model.config.bidirectional and self.model.projections is None:
            # Batches of one exact length: no padding, so a bidirectional model runs the dense
            # recurrent kernel instead of packing (2-5x faster on CPU), and no step is wasted.
            by_length: dict[int, list[int]] = {}
            for i in order:
                by_length.setdefault(max(1, len(encoded[i])), []).append(i)
            groups = list(by_length.values())
        else:
            # A forward-only model, or one with input projections (whose backward direction
            # runs over each tweet reversed in place), is exact on right-padded input, so one
            # pass over the length-sorted batch beats one small pass per distinct length.
            groups = [order]
        for group in groups:
            for start in range(0, len(group), batch_size):
                rows = group[start : start + batch_size]
                ids, lengths = pad_batch([encoded[i] for i in rows])
                logits = self.model(ids, lengths).float().numpy()
                probs[rows] = self.calibrated(logits)
        return probs

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from the model's logits."""
        calibration = self.calibration or Calibration.identity(len(self.labels))
        if calibration.is_identity:
            return torch.sigmoid(torch.from_numpy(logits)).numpy()
        return calibration.apply_logits(logits)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """Probabilities ``[n, labels]`` for raw tweet texts."""
        return self.predict_ids(self.encode(texts), batch_size)

    def predicted(self, probs: np.ndarray) -> list[list[str]]:
        """Label names over their thresholds per row (the top label if none is)."""
        from tweetdomains.metrics import decide

        chosen = decide(probs, self.thresholds)
        return [[self.labels[j] for j in np.flatnonzero(row)] for row in chosen]

    @classmethod
    def load(cls, registry: Registry, run_ref: str = "best", precision: Precision = "float32") -> Classifier:
        """Load a published run by id or ``best``; :class:`RegistryError` if it is unusable."""
        run_id = registry.resolve(run_ref)
        manifest = registry.manifest(run_id)
        try:
            config_obj = registry.json_artifact(run_id, "config.json", manifest)
            config = ModelConfig.from_dict(config_obj["model"])
            vocab = Vocabulary.from_json(registry.artifact(run_id, "vocab.json", manifest))
            labels = [str(x) for x in registry.json_artifact(run_id, "labels.json", manifest)]
            thresholds = np.asarray(
                registry.json_artifact(run_id, "thresholds.json", manifest), dtype=np.float32
            )
            model = model_from_bytes(config, registry.artifact(run_id, WEIGHTS, manifest))
            metrics = registry.json_artifact(run_id, "metrics.json", manifest)
            calibration = None  # runs published before calibration are served uncalibrated
            if CALIBRATION in manifest["files"]:
                calibration = Calibration.from_obj(
                    registry.json_artifact(run_id, CALIBRATION, manifest), len(labels)
                )
        except RegistryError:
            raise
        except Exception as exc:  # any malformed artifact makes the run unusable, never a crash
            raise RegistryError(f"run {run_id!r} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        if config.vocab_size != len(vocab):
            raise RegistryError(
                f"run {run_id!r}: vocabulary has {len(vocab)} tokens, model expects {config.vocab_size}"
            )
        return cls(
            model,
            vocab,
            labels,
            thresholds,
            run_id,
            metrics,
            manifest.get("created_at"),
            precision,
            calibration,
        )


def run_artifacts(
    model: RecurrentClassifier,
    vocab: Vocabulary,
    labels: Sequence[str],
    thresholds: np.ndarray,
    metrics: dict[str, Any],
    training: dict[str, Any] | None = None,
    calibration: Calibration | None = None,
) -> dict[str, bytes]:
    """The files of a run, ready for :meth:`Registry.publish`."""
    from dataclasses import asdict

    config = {"model": asdict(model.config), "training": training or {}}
    files = {
        WEIGHTS: model_to_bytes(model),
        "config.json": json.dumps(config, indent=2, sort_keys=True).encode(),
        "vocab.json": vocab.to_json().encode(),
        "labels.json": json.dumps(list(labels), ensure_ascii=False).encode(),
        "thresholds.json": json.dumps([round(float(t), 4) for t in thresholds]).encode(),
        "metrics.json": json.dumps(metrics, indent=2, ensure_ascii=False).encode(),
    }
    if calibration is not None:
        files[CALIBRATION] = calibration.to_json().encode()
    return files
