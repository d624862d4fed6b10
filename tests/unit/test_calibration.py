"""Calibration: Platt scaling per domain fitted on validation, applied at serve time from plain
JSON; old runs without calibration.json serve uncalibrated; predicted never omits a domain at
0.5 or more."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tweetdomains.calibration import Calibration, calibration_error, fit_platt, reliability
from tweetdomains.model import ModelConfig, build_model
from tweetdomains.predict import CALIBRATION, Classifier, run_artifacts
from tweetdomains.registry import Registry, RegistryError
from tweetdomains.store import LocalStore
from tweetdomains.vocab import Vocabulary

LABELS = ["Sports", "Music", "Politics"]


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose log-odds are 3x and 1.5 higher than the truth's."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.0, 2.0, size=(n, len(LABELS)))
    truth = 1 / (1 + np.exp(-(z / 3 - 0.5)))
    y = (rng.random(truth.shape) < truth).astype(np.float32)
    return y, (1 / (1 + np.exp(-z))).astype(np.float32)


def test_ece_is_the_binned_gap_between_confidence_and_frequency() -> None:
    y = np.array([1, 0, 0, 0], dtype=np.float32)
    p = np.array([0.9, 0.9, 0.1, 0.1], dtype=np.float32)
    # bin of 0.9: mean p 0.9, frequency 0.5 -> gap 0.4 on half; bin of 0.1: gap 0.1 on half
    assert reliability(y, p) == pytest.approx(0.25)
    assert reliability(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0


def test_platt_fitted_on_validation_lowers_the_error_on_fresh_data() -> None:
    y_val, p_val = _overconfident(4000, seed=0)
    y_test, p_test = _overconfident(4000, seed=1)
    calibration = fit_platt(y_val, p_val)
    before = calibration_error(y_test, p_test, LABELS)
    after = calibration_error(y_test, calibration.apply(p_test), LABELS)
    assert after["ece"] < before["ece"] / 2
    assert after["ece"] < 0.03
    assert np.all(calibration.scale > 0)  # monotone: a domain's ranking never changes
    ranked = np.argsort(p_test[:, 0])
    assert np.all(np.diff(calibration.apply(p_test)[ranked, 0]) >= -1e-7)


def test_a_domain_without_validation_positives_gets_the_shared_fit() -> None:
    y, p = _overconfident(2000, seed=2)
    y[:, 2] = 0
    calibration = fit_platt(y, p)
    assert np.isfinite(calibration.scale).all() and np.isfinite(calibration.bias).all()
    assert calibration.apply(p)[:, 2].max() < 0.5


def _publish(tmp_path: Path, thresholds: list[float], calibration: Calibration | None) -> Registry:
    registry = Registry(LocalStore(tmp_path / "store"))
    vocab = Vocabulary.build([["messi", "scores", "twice"]], min_count=1)
    model = build_model(
        ModelConfig(vocab_size=len(vocab), num_labels=len(LABELS), embedding_dim=8, hidden_dim=8)
    )
    artifacts = run_artifacts(model, vocab, LABELS, np.array(thresholds), {}, calibration=calibration)
    registry.publish("run-a", artifacts)
    return registry


def test_calibration_is_plain_json_and_applied_when_serving(tmp_path: Path) -> None:
    calibration = Calibration(np.array([0.5, 1.0, 2.0]), np.array([-1.0, 0.0, 0.5]))
    registry = _publish(tmp_path, [0.5, 0.5, 0.5], calibration)
    obj = json.loads(registry.artifact("run-a", CALIBRATION))
    assert obj["method"] == "platt" and obj["scale"] == [0.5, 1.0, 2.0]
    served = Classifier.load(registry, "run-a")
    probs = served.predict_proba(["messi scores twice"])
    served.calibration = Calibration.identity(len(LABELS))
    raw = served.predict_proba(["messi scores twice"])
    np.testing.assert_allclose(probs, calibration.apply(raw), atol=1e-5)


def test_a_run_without_calibration_serves_its_raw_probabilities(tmp_path: Path) -> None:
    registry = _publish(tmp_path, [0.5, 0.5, 0.5], None)
    assert CALIBRATION not in registry.manifest("run-a")["files"]
    served = Classifier.load(registry, "run-a")
    assert served.calibration is not None and served.calibration.is_identity
    probs = served.predict_proba(["messi scores twice"])
    assert np.all((probs > 0) & (probs < 1))


def test_a_malformed_calibration_makes_the_run_unusable_not_a_crash(tmp_path: Path) -> None:
    registry = _publish(tmp_path, [0.5, 0.5, 0.5], Calibration(np.ones(3), np.zeros(3)))
    store = registry.store
    store.put("models/run-b/calibration.json", b'{"scale": [1, 2], "bias": [0, 0]}')
    files = {n: registry.artifact("run-a", n) for n in registry.manifest("run-a")["files"]}
    files[CALIBRATION] = b'{"scale": [1, 2], "bias": [0, 0]}'
    registry.publish("run-b", files)
    with pytest.raises(RegistryError, match="calibration"):
        Classifier.load(registry, "run-b")


def test_predicted_never_omits_a_domain_at_one_half_or_more(tmp_path: Path) -> None:
    registry = _publish(tmp_path, [0.9, 0.8, 0.3], None)
    served = Classifier.load(registry, "run-a")
    assert served.thresholds.max() <= 0.5
    probs = np.array([[0.72, 0.1, 0.05], [0.55, 0.6, 0.35]], dtype=np.float32)
    assert served.predicted(probs) == [["Sports"], ["Sports", "Music", "Politics"]]
