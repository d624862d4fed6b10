"""Models the scenarios publish: tiny random-weight runs (real artifacts, published and promoted
through the registry like the trainer's), and hostile ones: pickles that would run code."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tweetdomains.model import ModelConfig, build_model
from tweetdomains.predict import run_artifacts
from tweetdomains.registry import WEIGHTS, Registry
from tweetdomains.simulate import generate
from tweetdomains.store import ObjectStore
from tweetdomains.text import normalize, tokenize
from tweetdomains.vocab import Vocabulary

LABELS = ["Brand", "Musician", "Person", "Sport", "Sports Team", "TV Shows", "Video Game"]
METRIC = "val_micro_f1"


def tiny_artifacts(seed: int, labels: list[str] | None = None) -> dict[str, bytes]:
    """The files of a run with random weights (LSTM, 16 dims): loads and predicts like a real one."""
    labels = labels or LABELS
    torch.manual_seed(seed)
    texts = [r.text for r in generate(400, seed=seed)]
    vocab = Vocabulary.build((tokenize(normalize(t)) for t in texts), min_count=1)
    config = ModelConfig(
        kind="lstm",
        vocab_size=len(vocab),
        num_labels=len(labels),
        embedding_dim=16,
        hidden_dim=16,
        recurrent_layers=1,
        linear_layers=1,
        dropout=0.0,
    )
    model = build_model(config)
    metrics = {METRIC: 0.5, "micro_f1": 0.5, "macro_f1": 0.5, "p_at_1": 0.5, "n": 0}
    return run_artifacts(model, vocab, labels, np.full(len(labels), 0.5, dtype=np.float32), metrics)


def publish_tiny(store: ObjectStore, run_id: str, seed: int, value: float | None = None) -> str:
    """Publish a tiny run; with ``value``, promote it to best (forced) with that metric value."""
    registry = Registry(store)
    registry.publish(run_id, tiny_artifacts(seed))
    if value is not None:
        registry.promote(run_id, METRIC, value, force=True)
    return run_id


class CodeOnLoad:
    """Unpickling this writes ``marker``: what a pickled "model" can do to whoever loads it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({self.marker!r}, 'w').write('code ran')",))


def pickle_payloads(marker: Path) -> dict[str, bytes]:
    """Two pickled "models" that run code when loaded: ``torch.save`` (zip) and plain pickle."""
    buffer = io.BytesIO()
    torch.save({"state_dict": CodeOnLoad(marker)}, buffer)
    return {"torch_save": buffer.getvalue(), "pickle": pickle.dumps(CodeOnLoad(marker), protocol=4)}


def plant_pickled_runs(store: ObjectStore, marker: Path, seed: int = 99) -> list[str]:
    """Publish (complete manifests, right hashes) runs whose weights are pickles, as an attacker
    with write access to the store would. Returns their run ids."""
    registry = Registry(store)
    payloads = pickle_payloads(marker)
    good = tiny_artifacts(seed)
    runs = []
    # 1. The weights file itself is a torch.save pickle.
    registry.publish("pickled-weights", {**good, WEIGHTS: payloads["torch_save"]})
    runs.append("pickled-weights")
    # 2. No safetensors at all: a pickled model under the name the original project used.
    without = {k: v for k, v in good.items() if k != WEIGHTS}
    registry.publish("pickled-model-pt", {**without, "model.pt": payloads["torch_save"]})
    runs.append("pickled-model-pt")
    # 3. Plain pickle bytes as the weights.
    registry.publish("pickled-plain", {**good, WEIGHTS: payloads["pickle"]})
    runs.append("pickled-plain")
    return runs
