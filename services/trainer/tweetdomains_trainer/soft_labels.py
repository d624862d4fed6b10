"""Soft labels: a published teacher's probabilities for tweets, scored once and cached in the store.

The cache entry is ``teachers/<run-id>/scores/<digest>.safetensors``: one float32 ``probs``
array ``[texts, labels]`` in the teacher's label order (the labels, the teacher and the count
in its metadata), where the digest is of the texts in order. Same teacher, same texts: the
second call reads the array back and never loads the teacher. Safetensors, so no pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays
from torch import nn

from tweetdomains.store import ObjectNotFound, ObjectStore
from tweetdomains_trainer.data import eval_batches
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.steps import eval_step, resolve_device
from tweetdomains_trainer.teacher_model import (
    TEACHERS_PREFIX,
    Teacher,
    encode_texts,
    load_teacher,
    resolve_teacher,
)

log = logging.getLogger(__name__)


@dataclass
class SoftLabels:
    """Probabilities ``[len(texts), len(labels)]`` of one teacher for texts in the given order."""

    teacher: str
    labels: list[str]
    probs: np.ndarray
    key: str
    cached: bool
    seconds: float

    def summary(self) -> dict[str, object]:
        return {
            "teacher": self.teacher,
            "texts": int(self.probs.shape[0]),
            "labels": len(self.labels),
            "key": self.key,
            "cached": self.cached,
            "seconds": round(self.seconds, 2),
        }


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 of the texts in order (each length-prefixed, so no two lists collide by joining)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()[:24]


def scores_key(run_id: str, digest: str) -> str:
    return f"{TEACHERS_PREFIX}/{run_id}/scores/{digest}.safetensors"


def soft_labels(
    store: ObjectStore,
    teacher: str,
    texts: Sequence[str],
    device: str = "auto",
    batch_size: int = 128,
    precision: str = "auto",
    progress: Progress | None = None,
    cache: bool = True,
) -> SoftLabels:
    """The teacher's probabilities for ``texts``: from the cache when this teacher scored these
    texts before, else scored now and cached (unless ``cache`` is False: a dry run writes
    nothing). ``teacher`` is a run id or ``latest``.

    ValueError for an unknown teacher or no texts.
    """
    started = time.perf_counter()
    progress = progress or Progress(False)
    if not texts:
        raise ValueError("no texts to score")
    run_id = resolve_teacher(store, teacher)
    key = scores_key(run_id, texts_digest(texts))
    cached = _read_cache(store, key, len(texts))
    if cached is not None:
        labels, probs = cached
        progress.say(f"soft labels of {len(texts):,} texts read from {key}")
        return SoftLabels(run_id, labels, probs, key, True, time.perf_counter() - started)

    resolved = resolve_device(device)
    model = load_teacher(store, run_id, resolved)
    progress.say(f"scoring {len(texts):,} texts with teacher {run_id} on {resolved}")
    probs = teacher_probs(model, texts, resolved, batch_size, precision, progress)
    if cache:
        metadata = {"teacher": run_id, "labels": json.dumps(model.labels), "texts": str(len(texts))}
        store.put(key, save_arrays({"probs": probs.astype(np.float32)}, metadata=metadata))
    seconds = time.perf_counter() - started
    progress.say(
        f"scored {len(texts):,} texts in {seconds:.1f} s ({len(texts) / seconds:,.1f} tweets/s)"
        + (f"; cached at {key}" if cache else "")
    )
    return SoftLabels(run_id, list(model.labels), probs, key, False, seconds)


def teacher_probs(
    teacher: Teacher,
    texts: Sequence[str],
    device: torch.device,
    batch_size: int = 128,
    precision: str = "auto",
    progress: Progress | None = None,
) -> np.ndarray:
    """A loaded teacher's probabilities ``[texts, teacher labels]`` (no cache), in text order."""
    split = encode_texts(teacher.tokenizer, texts, teacher.max_length, labels=teacher.labels)
    probs = np.zeros(split.labels.shape, dtype=np.float32)
    loss_fn = nn.BCEWithLogitsLoss()  # eval_step reports a loss; against all-zero targets, unread
    batches = list(eval_batches(split.lengths, batch_size))
    for rows in progress.track(batches, "scoring") if progress is not None else batches:
        _, probs[rows] = eval_step(teacher.model, split.batch(rows), loss_fn, device, precision)
    return probs


def _read_cache(store: ObjectStore, key: str, count: int) -> tuple[list[str], np.ndarray] | None:
    """The cached labels and probabilities, or None when absent or unusable (then rescored)."""
    try:
        data = store.get(key)
    except ObjectNotFound:
        return None
    try:
        probs = load_arrays(data)["probs"]
        labels = json.loads(_metadata(data)["labels"])
        if probs.shape != (count, len(labels)):
            raise ValueError(f"shape {probs.shape}, expected ({count}, {len(labels)})")
    except (KeyError, ValueError, SafetensorError) as exc:
        log.warning("ignoring unreadable soft-label cache %s: %s", key, exc)
        return None
    return [str(x) for x in labels], probs


def _metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (its JSON header)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return dict(header.get("__metadata__", {}))
