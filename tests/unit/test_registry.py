"""Model registry: publish, promote only when better, load by id or best, refuse tampered runs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from tweetdomains.model import ModelConfig, build_model
from tweetdomains.predict import Classifier, run_artifacts
from tweetdomains.registry import Registry, RegistryError, new_run_id
from tweetdomains.store import LocalStore
from tweetdomains.vocab import Vocabulary

LABELS = ["Musician", "Person", "Sport"]


def publish_tiny(registry: Registry, seed: int = 0, labels: list[str] | None = None) -> str:
    labels = labels or LABELS
    vocab = Vocabulary.build([["taylor", "swift", "goal"]] * 2, min_count=1)
    import torch

    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=len(vocab), num_labels=len(labels), embedding_dim=8, hidden_dim=8)
    model = build_model(config)
    run_id = new_run_id("test")
    registry.publish(
        run_id, run_artifacts(model, vocab, labels, np.full(len(labels), 0.5), {"val_micro_f1": 0.1})
    )
    return run_id


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(LocalStore(tmp_path))


def test_first_run_is_promoted_then_only_better_ones(registry: Registry) -> None:
    a, b, c = (publish_tiny(registry, s) for s in range(3))
    assert registry.best() is None
    assert registry.promote(a, "val_micro_f1", 0.50)
    assert not registry.promote(b, "val_micro_f1", 0.40), "a worse run never replaces the best"
    assert not registry.promote(b, "val_micro_f1", 0.50), "a tie keeps the incumbent"
    assert registry.resolve("best") == a
    assert registry.promote(c, "val_micro_f1", 0.60)
    best = registry.best()
    assert best is not None and best["run_id"] == c and best["value"] == 0.60


def test_other_metric_needs_force(registry: Registry) -> None:
    a, b = publish_tiny(registry, 0), publish_tiny(registry, 1)
    registry.promote(a, "val_micro_f1", 0.5)
    assert not registry.promote(b, "val_loss", 9.0)
    assert registry.promote(b, "val_loss", 9.0, force=True)
    assert registry.resolve("best") == b


def test_load_by_id_and_best(registry: Registry) -> None:
    a, b = publish_tiny(registry, 0), publish_tiny(registry, 1)
    registry.promote(a, "val_micro_f1", 0.5)
    assert Classifier.load(registry, "best").run_id == a
    clf = Classifier.load(registry, b)
    assert clf.run_id == b and clf.labels == LABELS
    probs = clf.predict_proba(["taylor swift", "", "goal goal goal"])
    assert probs.shape == (3, 3) and np.all((probs >= 0) & (probs <= 1))
    assert registry.runs() == sorted([a, b])


def test_incomplete_run_is_invisible(registry: Registry) -> None:
    registry.store.put("models/half/config.json", b"{}")
    assert "half" not in registry.runs()
    with pytest.raises(RegistryError, match="not found"):
        Classifier.load(registry, "half")
    with pytest.raises(RegistryError):
        registry.promote("half", "val_micro_f1", 1.0)


def test_tampered_artifact_is_refused(registry: Registry) -> None:
    run = publish_tiny(registry)
    registry.store.put(f"models/{run}/labels.json", json.dumps(["X", "Y", "Z"]).encode())
    with pytest.raises(RegistryError, match="does not match"):
        Classifier.load(registry, run)


class _Boom:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path("/tmp/pwned-by-pickle").touch, ())


def test_pickled_weights_are_refused_without_running_them(registry: Registry, tmp_path: Path) -> None:
    """A run whose weights file is a pickle (with a payload) is refused; the payload never runs."""
    marker = Path("/tmp/pwned-by-pickle")
    marker.unlink(missing_ok=True)
    run = publish_tiny(registry)
    manifest = registry.manifest(run)
    artifacts = {name: registry.artifact(run, name, manifest) for name in manifest["files"]}
    artifacts["model.safetensors"] = pickle.dumps({"weights": _Boom()})
    evil = "evil-run"
    registry.publish(evil, artifacts)  # a manifest that matches: only the format protects us
    with pytest.raises(RegistryError, match="cannot be loaded"):
        Classifier.load(registry, evil)
    assert not marker.exists()


def test_malformed_best_json_is_a_clear_error(registry: Registry) -> None:
    registry.store.put("models/best.json", b"not json")
    with pytest.raises(RegistryError, match="malformed"):
        registry.best()


@pytest.mark.parametrize("bad", ["", "a/b", "..", "best.json", "latest.json"])
def test_invalid_run_ids(registry: Registry, bad: str) -> None:
    with pytest.raises(RegistryError):
        registry.publish(bad, {"x": b""})


def test_the_latest_pointer_names_a_published_run_only(registry: Registry) -> None:
    assert registry.latest() is None
    with pytest.raises(RegistryError, match="not found"):
        registry.set_latest("never-published")
    run = publish_tiny(registry)
    assert registry.is_published(run) and not registry.is_published("never-published")
    registry.set_latest(run)
    assert registry.latest() == run
    assert json.loads(registry.store.get(f"{registry.prefix}/latest.json")) == {"run_id": run}
    registry.store.put(f"{registry.prefix}/latest.json", b"[1]")
    with pytest.raises(RegistryError, match="malformed"):
        registry.latest()
