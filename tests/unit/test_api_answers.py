"""Answers rendered from quantized probabilities: the bytes parse to the documented shape, with
the values, order and predicted domains the decision rule gives."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_registry import publish_tiny
from tweetdomains.metrics import decide
from tweetdomains.registry import Registry
from tweetdomains.store import LocalStore
from tweetdomains_api import answers
from tweetdomains_api.answers import DECIMALS, Renderer, quantize, to_cache_value
from tweetdomains_api.metrics import ApiMetrics
from tweetdomains_api.model_holder import ModelHolder

LABELS = ['Say "hi"', "Musique é", "Person", "Sport", "Sports Team", "TV Shows"]


def test_rendered_bytes_match_the_decision_rule_on_the_quantized_values() -> None:
    rng = np.random.default_rng(0)
    thresholds = np.array([0.5, 0.2, 0.35, 0.5, 0.1, 0.45], dtype=np.float32)
    renderer = Renderer(LABELS, thresholds)
    probs = rng.uniform(0, 1, (40, len(LABELS))) ** 3
    probs[0] = 0.0  # nothing over a threshold: the top one (first of the ties) is predicted
    probs[1, :3] = 0.7  # ties keep label order
    quantized = quantize(probs)
    cached = [bool(i % 2) for i in range(len(probs))]
    values = np.round(quantized / 65535.0, DECIMALS)
    chosen = decide(quantized / 65535.0, thresholds).astype(bool)
    for i, answer in enumerate(renderer.render(quantized, cached)):
        body = json.loads(answer.json)
        order = np.argsort(-values[i], kind="stable")
        assert [d["name"] for d in body["domains"]] == [LABELS[j] for j in order]
        assert [d["probability"] for d in body["domains"]] == [float(values[i, j]) for j in order]
        assert body["predicted"] == answer.predicted == [LABELS[j] for j in order if chosen[i, j]]
        assert body["cached"] is cached[i]
    assert renderer.render(quantized[:1], [False])[0].predicted == [LABELS[0]]


def test_thresholds_near_a_quantized_level_decide_as_the_probabilities_do() -> None:
    for level in (1, 13107, 32767, 32768):  # 13107 / 65535 is 0.2 exactly
        for threshold in (level / 65535.0, np.nextafter(level / 65535.0, 1.0)):
            thresholds = np.array([threshold, 0.5], dtype=np.float32)
            renderer = Renderer(["A", "B"], thresholds)
            rows = np.array([[level - 1, 0], [level, 0], [level + 1, 0]], dtype="<u2")
            expected = decide(rows / 65535.0, thresholds)
            for row, answer in zip(expected, renderer.render(rows, [False] * 3), strict=True):
                assert answer.predicted == [name for name, on in zip("AB", row, strict=True) if on]


def test_cached_answers_render_as_render_does_and_are_remembered_within_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(answers, "REMEMBERED_ANSWERS", 3)
    renderer = Renderer(LABELS, np.full(len(LABELS), 0.3, dtype=np.float32))
    quantized = quantize(np.random.default_rng(1).uniform(0, 1, (5, len(LABELS))))
    values = [to_cache_value(row) for row in quantized]
    expected = [answer.json for answer in renderer.render(quantized, [True] * 5)]
    first = renderer.render_cached(values[:2] + values[:1], quantized[[0, 1, 0]])
    assert [answer.json for answer in first] == [expected[0], expected[1], expected[0]]
    again = renderer.render_cached(values[:1], quantized[:1])
    assert again[0] is first[0], "a value rendered lately is not rendered again"
    renderer.render_cached(values[2:], quantized[2:])
    assert len(renderer._remembered) == 3 and values[0] not in renderer._remembered
    assert [a.json for a in renderer.render_cached(values, quantized)] == expected


def test_a_model_is_ready_to_render_before_it_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder builds the renderer while it loads, off the event loop: the first answer does
    not build it (it cost the first request about 0.2 s on this 2-core host)."""
    store = LocalStore(tmp_path)
    registry = Registry(store)
    run_id = publish_tiny(registry)
    registry.promote(run_id, "val_micro_f1", 0.1, force=True)
    holder = ModelHolder(str(tmp_path), "best", 60.0, ApiMetrics())
    assert asyncio.run(holder.refresh())
    built: list[Renderer] = []
    original = Renderer.__init__

    def counting(self: Renderer, labels: list[str], thresholds: np.ndarray) -> None:
        built.append(self)
        original(self, labels, thresholds)

    monkeypatch.setattr(Renderer, "__init__", counting)
    assert holder.current is not None and holder.current.run_id == run_id
    renderer = answers.renderer_for(holder.current)
    assert built == [] and renderer.labels == holder.current.labels
