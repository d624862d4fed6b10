"""Vocabularies: token <-> id tables the models read, and the one loader of ``vocab.json``.

Two kinds, both taking the word tokens of :func:`tweetdomains.text.tokenize`:

- :class:`Vocabulary`, words seen in the training data (``kind: word``);
- :class:`WordpieceVocabulary`, MiniLM's uncased wordpieces (``kind: wordpiece``), split by
  the ``tokenizers`` library (Rust) with the normalizer, pre-tokenizer and WordPiece settings
  of MiniLM's own ``tokenizer.json``. :mod:`tweetdomains.minilm` builds one from the MiniLM
  files; a trained run stores its tokens and those settings in its ``vocab.json``, so serving
  needs neither MiniLM nor its files.

``<PAD>`` is id 0 and ``<UNK>`` id 1 in both. :meth:`Vocabulary.from_json` restores either.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tweetdomains.text import normalize, tokenize

PAD, UNK = "<PAD>", "<UNK>"
PAD_ID, UNK_ID = 0, 1
_WORD_CACHE_LIMIT = 200_000  # distinct words kept split (a few tens of MB at most)

# The tokenizer settings a wordpiece run's vocab.json holds beside its tokens: the fields of a
# `tokenizers` tokenizer.json, the vocabulary left out. These are MiniLM's own (BERT uncased:
# control characters dropped, accents stripped, CJK characters and punctuation apart, greedy
# longest-match pieces, a word of over 100 characters or with an unmatched part is one <UNK>),
# as `minilm.wordpiece_settings` reads them from its tokenizer.json. A vocab.json written
# before the settings were stored gets these: the hand-written tokenizer those runs trained
# with gives the same ids on every benchmark tweet (tests/unit/test_vocab.py); it differed
# only on tokens `text.tokenize` never yields (upper case, control characters, "fire🔥").
WORDPIECE_SETTINGS: dict[str, Any] = {
    "normalizer": {
        "type": "BertNormalizer",
        "clean_text": True,
        "handle_chinese_chars": True,
        "strip_accents": None,
        "lowercase": True,
    },
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "model": {"type": "WordPiece", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100},
}


@dataclass(frozen=True)
class Vocabulary:
    """Token <-> id table; ``<PAD>`` is 0 and ``<UNK>`` is 1."""

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.tokens[:2] != (PAD, UNK):
            raise ValueError("a vocabulary starts with <PAD>, <UNK>")
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, texts: Iterable[Sequence[str]], min_count: int = 2, max_size: int = 50_000) -> Vocabulary:
        """Keep tokens seen at least ``min_count`` times, most frequent first (ties by token)."""
        counts: Counter[str] = Counter()
        for tokens in texts:
            counts.update(tokens)
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls((PAD, UNK, *kept[: max_size - 2]))

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of the tokens, ``<UNK>`` for unknown ones."""
        index: dict[str, int] = self._index  # type: ignore[attr-defined]
        return [index.get(t, UNK_ID) for t in tokens]

    def encode_text(self, text: str, max_tokens: int | None = None) -> list[int]:
        """Normalize, tokenize and encode a raw tweet; at least one id (``<UNK>`` for empty text)."""
        ids = self.encode(tokenize(normalize(text)))
        if max_tokens is not None:
            ids = ids[:max_tokens]
        return ids or [UNK_ID]

    def to_json(self) -> str:
        """``vocab.json``: ``{"kind": "word", "tokens": [...]}``."""
        return json.dumps({"kind": "word", "tokens": list(self.tokens)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> Vocabulary:
        """Either kind from its ``vocab.json``; :class:`ValueError` if the file is malformed."""
        obj = json.loads(data)
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise ValueError("vocab.json must be an object with a 'tokens' list")
        tokens = tuple(str(t) for t in obj["tokens"])
        kind = obj.get("kind", "word")
        if kind == "word":
            return Vocabulary(tokens)
        if kind == "wordpiece":
            settings = obj.get("tokenizer", WORDPIECE_SETTINGS)
            if not isinstance(settings, dict):
                raise ValueError("vocab.json: 'tokenizer' must be an object")
            return WordpieceVocabulary.create(tokens, settings)
        raise ValueError(f"vocab.json: unknown kind {kind!r} (word or wordpiece)")

    def fingerprint(self) -> str:
        """A short hash that changes whenever the table changes (dataset cache keys use it)."""
        return hashlib.sha1("\n".join(self.tokens).encode("utf-8")).hexdigest()[:16]


def _canonical(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class WordpieceVocabulary(Vocabulary):
    """A wordpiece table (``<PAD>`` 0, ``<UNK>`` 1, then pieces; ``##`` marks a continuation).

    ``settings`` are the tokenizer's settings as JSON (:data:`WORDPIECE_SETTINGS` unless a run
    stored others); a word with a part no piece matches is one ``<UNK>``, as in BERT.
    """

    settings: str = field(default=_canonical(WORDPIECE_SETTINGS))

    def __post_init__(self) -> None:
        super().__post_init__()
        from tokenizers import Tokenizer

        settings = json.loads(self.settings)
        model = {**settings.get("model", {}), "type": "WordPiece", "unk_token": UNK}
        model["vocab"] = self._index  # type: ignore[attr-defined]
        spec = {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [],
            "normalizer": settings.get("normalizer"),
            "pre_tokenizer": settings.get("pre_tokenizer"),
            "post_processor": None,
            "decoder": None,
            "model": model,
        }
        try:
            tokenizer = Tokenizer.from_str(json.dumps(spec))
        except Exception as exc:  # the Rust side raises plain Exceptions for bad settings
            raise ValueError(f"wordpiece tokenizer settings are not usable: {exc}") from None
        object.__setattr__(self, "_tokenizer", tokenizer)
        object.__setattr__(self, "_word_cache", {})

    @classmethod
    def create(cls, tokens: Sequence[str], settings: Mapping[str, Any] | None = None) -> WordpieceVocabulary:
        """A table of ``tokens`` split with ``settings`` (:data:`WORDPIECE_SETTINGS` by default)."""
        return cls(tuple(tokens), _canonical(dict(settings or WORDPIECE_SETTINGS)))

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Wordpiece ids of word tokens (from :func:`tweetdomains.text.tokenize`), concatenated."""
        ids: list[int] = []
        for token in tokens:
            ids.extend(self._word_ids(token))
        return ids

    def _word_ids(self, word: str) -> list[int]:
        # Words are split one by one (pre-tokenized input never crosses a word), and they repeat:
        # a tweet is some 20 words, and building one `tokenizers` Encoding costs more than
        # splitting its words, so each distinct word goes to the tokenizer once.
        cache: dict[str, list[int]] = self._word_cache  # type: ignore[attr-defined]
        ids = cache.get(word)
        if ids is None:
            tokenizer = self._tokenizer  # type: ignore[attr-defined]
            ids = tokenizer.encode([word], is_pretokenized=True, add_special_tokens=False).ids
            if len(cache) >= _WORD_CACHE_LIMIT:
                cache.clear()
            cache[word] = ids
        return ids

    def pieces(self, text: str) -> list[str]:
        """The wordpieces of a raw tweet, for inspection."""
        return [self.tokens[i] for i in self.encode_text(text)]

    def to_json(self) -> str:
        """``vocab.json``: ``{"kind": "wordpiece", "tokens": [...], "tokenizer": {...}}``."""
        obj = {"kind": "wordpiece", "tokens": list(self.tokens), "tokenizer": json.loads(self.settings)}
        return json.dumps(obj, ensure_ascii=False)

    def fingerprint(self) -> str:
        """Changes with the table, and with the tokenizer settings where they are not the default."""
        if self.settings == _canonical(WORDPIECE_SETTINGS):
            return "wp" + super().fingerprint()[:14]
        digest = hashlib.sha1(("\n".join(self.tokens) + "\n" + self.settings).encode("utf-8"))
        return "wp" + digest.hexdigest()[:14]
