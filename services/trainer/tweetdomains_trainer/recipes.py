"""Named training recipes: presets of :class:`~tweetdomains_trainer.options.TrainOptions` values.

Standard library only, so ``tweetdomains train --help`` can list them without loading torch.
A preset fills the options first; flags given on the command line still override it.
``tweetdomains train`` without ``--recipe`` trains :data:`DEFAULT_RECIPE`; the options
dataclass's own defaults are the ``word`` recipe (what a sweep's grid starts from).
"""

from __future__ import annotations

from typing import Any

# The recipe that wins the quality benchmark (benchmarks/quality.py): MiniLM's wordpieces with
# their input embeddings as the starting table, one bidirectional LSTM layer, AdamW without
# weight decay on the embeddings. Three parts measured on the benchmark's validation-carved
# split (seed 0, test micro / macro / P@1): square-root positive weights for rare domains
# (0.596/0.276/0.720 -> 0.609/0.346/0.722), a softmax ranking term for the top label and a
# per-step weight average (-> 0.605/0.319/0.736), then a refit on train + validation for the
# chosen epoch count (-> 0.611/0.354/0.739); 16 epochs, as the best epoch reached 12. Tried
# and left out: distillation from MiniLM + LR on 20k unlabeled tweets (P@1 0.701) and starting
# from a `tweetdomains pretrain` encoder after one LM epoch (0.585/0.286/0.715).
# Speed (issue #16, profiled with torch.profiler on the benchmark train split): the LSTM's own
# forward and backward are two thirds of a step, AdamW, clipping and the EMA over the 384-wide
# table a sixth; a larger batch does not raise tweets/s, bf16 autocast on this CPU is 5x slower.
# Smaller and faster variants lost validation F1 (15% validation carve-out, seed 0, at 0.5;
# this recipe 0.633/0.367 micro/macro, best epoch 15): 128-wide PCA embeddings and hidden 96
# (3x the tweets per CPU second) 0.611/0.303, hidden 64 (2x) 0.591/0.296, 128/64 at batch 128
# (9x) 0.581/0.289, frozen embeddings with hidden 64 0.569/0.267. On a busy 2-core host, torch's
# two threads collapse (70-870 tweets/s in one run); --threads 1 held 600-650 tweets/s.
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
    "epochs": 16,
    "patience": 3,
    "clip_norm": 1.0,
    "schedule": "none",
    "pos_weight": "sqrt",
    "head_bias": "prior",
    "rank_loss_weight": 0.5,
    "ema_decay": 0.99,
    "refit": True,
    "max_tokens": 64,
}

# The original project's way (its README and notebook): a word vocabulary, a unidirectional
# 2-layer LSTM read from its last hidden state, Adam at 0.01 for a fixed 15 epochs. Kept to
# measure against, not to use.
ORIGINAL: dict[str, Any] = {
    "model": "lstm",
    "vocab": "word",
    "init_embeddings": "none",
    "min_count": 2,
    "embedding_dim": 200,
    "hidden_dim": 100,
    "recurrent_layers": 2,
    "linear_layers": 2,
    "dropout": 0.3,
    "bidirectional": False,
    "pooling": "last",
    "lr": 0.01,
    "weight_decay": 0.0,
    "batch_size": 64,
    "epochs": 15,
    "patience": 15,
    "clip_norm": 0.0,
    "schedule": "none",
    "max_tokens": 64,
}

# The options dataclass's own defaults, by name: a word vocabulary built from train (no MiniLM
# files needed), a BiLSTM with mean+max pooling, Adam 3e-3 halved on a validation plateau.
# Fast on tiny data; what a sweep's grid rows start from.
WORD: dict[str, Any] = {}

RECIPES: dict[str, dict[str, Any]] = {"quality": QUALITY, "word": WORD, "original": ORIGINAL}
# What ``tweetdomains train`` trains when no --recipe is given (the demo, compose and k8s too).
DEFAULT_RECIPE = "quality"


def describe(name: str) -> str:
    """``key=value`` pairs of a recipe, for ``--help`` (``word``: "the defaults of the flags")."""
    values = RECIPES[name]
    if not values:
        return "the defaults of the flags"
    return " ".join(f"{k.replace('_', '-')}={v}" for k, v in values.items())
