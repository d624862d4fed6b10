"""Named training recipes: presets of :class:`~tweetdomains_trainer.train.TrainOptions` values.

Standard library only, so ``tweetdomains train --help`` can list them without loading torch.
A preset fills the options first; flags given on the command line still override it.
"""

from __future__ import annotations

from typing import Any

# The recipe that won the quality benchmark (benchmarks/quality.py, ``Recipe()``): MiniLM's
# wordpieces with their input embeddings as the starting table, one bidirectional LSTM
# layer, AdamW without weight decay on the embeddings, the best validation epoch kept.
QUALITY: dict[str, Any] = {
    "model": "lstm",
    "vocab": "wordpiece",
    "init_embeddings": "minilm",
    "min_count": 1,
    "embedding_dim": 384,
    "hidden_dim": 192,
    "recurrent_layers": 1,
    "linear_layers": 1,
    "dropout": 0.3,
    "bidirectional": True,
    "pooling": "mean_max",
    "lr": 2e-3,
    "weight_decay": 0.01,
    "batch_size": 32,
    "epochs": 12,
    "patience": 3,
    "clip_norm": 1.0,
    "schedule": "none",
    "max_tokens": 64,
}

RECIPES: dict[str, dict[str, Any]] = {"quality": QUALITY}


def describe(name: str) -> str:
    """``key=value`` pairs of a recipe, for ``--help``."""
    return " ".join(f"{k.replace('_', '-')}={v}" for k, v in RECIPES[name].items())
