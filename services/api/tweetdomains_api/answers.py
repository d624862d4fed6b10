"""One classification answer: probabilities quantized for the cache, rendered per request.

A cached answer is the probabilities as unsigned 16-bit integers (``round(p * 65535)``) in
the model's label order, behind a one-byte format tag: 2 bytes a label (about 60 bytes for
30 labels, against 3.7 KB of rendered JSON before). Fresh answers are quantized the same way
before they are rendered, so a hit and a miss of one text answer exactly alike.

Rendering works on the quantized integers directly (:class:`Renderer`): each of the 65,536
values has its JSON text computed once, each label its ``{"name": ...`` prefix and its
threshold as an integer, so an answer is an argsort and a byte join, with no float or dict
built per label. The bytes are what ``orjson`` would give for the old dicts, byte for byte.
A cached answer is rendered once while it stays among the latest ``REMEMBERED_ANSWERS``
(:meth:`Renderer.render_cached`): a popular text's hits skip rendering, the most of their cost.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache

import numpy as np
import orjson

from tweetdomains.predict import Classifier

FORMAT_TAG = b"\x01"
_SCALE = 65535.0
DECIMALS = 5  # what a 16-bit quantization resolves (1 / 65535 = 1.5e-5)
REMEMBERED_ANSWERS = 1024  # rendered cache hits kept per model (about 3 MB at 80 labels)


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


def _levels() -> np.ndarray:
    """The probability each quantized value stands for (float64, before rounding)."""
    return np.arange(65536, dtype=np.float64) / _SCALE


@cache
def value_json() -> tuple[bytes, ...]:
    """The JSON of each quantized value's probability, rounded to ``DECIMALS``."""
    return tuple(orjson.dumps(v) for v in np.round(_levels(), DECIMALS).tolist())


@dataclass(frozen=True)
class Rendered:
    """One text's answer: its JSON object and its predicted domains (for drift)."""

    json: bytes
    predicted: list[str]


class Renderer:
    """A model's labels and thresholds, prepared for rendering quantized rows."""

    def __init__(self, labels: list[str], thresholds: np.ndarray) -> None:
        self.labels = labels
        names = [orjson.dumps(name) for name in labels]
        self._prefix = [b'{"name":' + name + b',"probability":' for name in names]
        self._name = names
        # A probability reaches its threshold exactly when its quantized value reaches the
        # first level at or over it (the levels rise with the value).
        levels = _levels()
        limits = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(labels),))
        self._min_level = np.searchsorted(levels, limits, side="left").astype(np.int32)
        self._values = value_json()
        self._remembered: OrderedDict[bytes, Rendered] = OrderedDict()  # by cache value

    def render(self, quantized: np.ndarray, cached: list[bool]) -> list[Rendered]:
        """``{"domains", "predicted", "cached"}`` per row of ``quantized`` ``[n, labels]``.

        Domains are sorted highest first (ties in label order); ``predicted`` are those at or
        over their threshold, or the top one when none is (:func:`tweetdomains.metrics.decide`).
        """
        q = quantized.astype(np.int32)
        order = np.argsort(-q, axis=1, kind="stable").tolist()
        chosen = (q >= self._min_level).tolist()
        rows = q.tolist()
        prefix, name, values, labels = self._prefix, self._name, self._values, self.labels
        out = []
        for i, row_order in enumerate(order):
            row, row_chosen = rows[i], chosen[i]
            picked = [j for j in row_order if row_chosen[j]] or row_order[:1]
            domains = b"},".join([prefix[j] + values[row[j]] for j in row_order])
            body = (
                b'{"domains":['
                + domains
                + b'}],"predicted":['
                + b",".join([name[j] for j in picked])
                + (b'],"cached":true}' if cached[i] else b'],"cached":false}')
            )
            out.append(Rendered(body, [labels[j] for j in picked]))
        return out

    def render_cached(self, values: list[bytes], quantized: np.ndarray) -> list[Rendered]:
        """:meth:`render` of cache hits (``cached`` true): ``values`` are their cache values,
        ``quantized`` their rows. An answer rendered lately is reused: the same value renders
        to the same bytes."""
        remembered = self._remembered
        new = [i for i, value in enumerate(values) if value not in remembered]
        if new:
            for i, answer in zip(new, self.render(quantized[new], [True] * len(new)), strict=True):
                remembered[values[i]] = answer
        for value in values:
            remembered.move_to_end(value)
        out = [remembered[value] for value in values]
        while len(remembered) > REMEMBERED_ANSWERS:
            remembered.popitem(last=False)
        return out


_renderers: dict[int, tuple[weakref.ref[Classifier], Renderer]] = {}


def renderer_for(classifier: Classifier) -> Renderer:
    """The classifier's renderer, built on its first answer (kept while the classifier lives)."""
    entry = _renderers.get(id(classifier))
    if entry is not None and entry[0]() is classifier:
        return entry[1]
    for key in [key for key, (ref, _) in _renderers.items() if ref() is None]:
        del _renderers[key]
    renderer = Renderer(classifier.labels, classifier.thresholds)
    _renderers[id(classifier)] = (weakref.ref(classifier), renderer)
    return renderer
