"""The classifier's architecture as plain data: :class:`ModelConfig`, saved as ``config.json``.

Torch-free, so the command line can take its defaults and allowed values from here without
loading torch: these defaults are what ``tweetdomains train`` trains when no flag or recipe
says otherwise (``tweetdomains_trainer.options.TrainOptions`` reads them from this class).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

ModelKind = Literal["lstm", "rnn"]
Pooling = Literal["last", "max", "mean_max"]


@dataclass
class ModelConfig:
    """Architecture of a classifier; saved as ``config.json`` beside the weights."""

    kind: ModelKind = "lstm"
    vocab_size: int = 2
    num_labels: int = 1
    embedding_dim: int = 200
    hidden_dim: int = 128
    recurrent_layers: int = 1
    linear_layers: int = 2
    dropout: float = 0.3
    bidirectional: bool = True
    # "last" is the original's final hidden state; "mean_max" pools over every step, which
    # keeps words from the start of long tweets in view.
    pooling: Pooling = "mean_max"
    max_tokens: int = 64

    def __post_init__(self) -> None:
        if self.kind not in get_args(ModelKind):
            raise ValueError(f"model kind must be 'lstm' or 'rnn', not {self.kind!r}")
        if self.pooling not in get_args(Pooling):
            raise ValueError(f"pooling must be last, max or mean_max, not {self.pooling!r}")
        for name in (
            "vocab_size",
            "num_labels",
            "embedding_dim",
            "hidden_dim",
            "recurrent_layers",
            "max_tokens",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.linear_layers < 1:
            raise ValueError("linear_layers must be at least 1 (the output layer)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout must be in [0, 1)")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**obj)
