"""Text pipeline shared by the trainer and the API: normalization, tokenizer, vocabulary.

Normalization is what the original project did (HTML entities unescaped, URLs and @mentions
removed, ``#`` stripped, lower-cased) plus whitespace folding. The API's cache key uses the
same function, so two spellings that normalize alike share one cache entry.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PAD, UNK = "<PAD>", "<UNK>"
PAD_ID, UNK_ID = 0, 1

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
_RETWEET_PREFIX = re.compile(r"^rt\s+@\w+:?\s*", re.IGNORECASE)
_SPACE = re.compile(r"\s+")

# Emoji and pictographs are tokens of their own: they carry topic (⚽, 🎮, 🎵).
_EMOJI_RANGES = "\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff"
_TOKEN = re.compile(
    rf"[{_EMOJI_RANGES}]"  # one emoji
    r"|(?:[^\W_]+)(?=n't\b)"  # "do" of "don't"
    r"|n't\b"  # the clitic
    r"|'(?:s|re|ve|ll|d|m)\b"  # 's 're 've 'll 'd 'm
    r"|[^\W_]+(?:[.-][^\W_]+)*",  # words, numbers, u.s, covid-19
    re.UNICODE,
)


def normalize(text: str) -> str:
    """Unescape HTML entities, drop URLs and @mentions, strip ``#``, lower-case, fold spaces."""
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = text.replace("#", "").replace("’", "'")
    return _SPACE.sub(" ", text).strip().lower()


def tokenize(normalized_text: str) -> list[str]:
    """Split normalized text into word, contraction and emoji tokens."""
    return _TOKEN.findall(normalized_text)


def content_key(text: str) -> str:
    """The identity of a tweet's content: retweet prefix, URLs, mentions and punctuation removed.

    Retweets of one text share a key, so dedup and the train/test split treat them as one.
    """
    text = _RETWEET_PREFIX.sub("", html.unescape(text))
    return " ".join(t for t in tokenize(normalize(text)) if not t.startswith("'") and t != "n't")


def content_hash(text: str) -> str:
    """SHA-1 hex digest of :func:`content_key`."""
    return hashlib.sha1(content_key(text).encode("utf-8")).hexdigest()


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
        return json.dumps({"kind": "word", "tokens": list(self.tokens)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str | bytes) -> Vocabulary:
        obj = json.loads(data)
        if not isinstance(obj, dict) or not isinstance(obj.get("tokens"), list):
            raise ValueError("vocab.json must be an object with a 'tokens' list")
        if obj.get("kind", "word") == "wordpiece":
            from tweetdomains.pretrained import WordpieceVocabulary

            return WordpieceVocabulary(tuple(str(t) for t in obj["tokens"]))
        return cls(tuple(str(t) for t in obj["tokens"]))

    def fingerprint(self) -> str:
        """A short hash that changes whenever the table changes (dataset cache keys use it)."""
        return hashlib.sha1("\n".join(self.tokens).encode("utf-8")).hexdigest()[:16]
