"""The project's hand-written WordPiece tokenizer as it was before it used ``tokenizers``.

Kept only as the oracle of ``test_vocab.py``: the ``tokenizers`` pipeline must give every
benchmark tweet the ids this gave, so runs trained before the switch serve unchanged. Not
used by any code outside the tests.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

UNK_ID = 1
_MAX_WORD_CHARS = 100


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


def greedy_wordpiece(word: str, index: dict[str, int]) -> list[int]:
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


class ReferenceWordpiece:
    """The old ``WordpieceVocabulary.encode`` over ``table``: wordpiece ids of word tokens."""

    def __init__(self, table: Sequence[str]) -> None:
        self._index = {t: i for i, t in enumerate(table)}
        self._words: dict[str, list[int]] = {}  # the old per-word cache: a pure function of the word

    def encode(self, tokens: Sequence[str]) -> list[int]:
        ids: list[int] = []
        for token in tokens:
            word = self._words.get(token)
            if word is None:
                word = [i for piece in basic_split(token) for i in greedy_wordpiece(piece, self._index)]
                self._words[token] = word
            ids.extend(word)
        return ids
