"""Text pipeline shared by the trainer and the API: normalization, word tokens, content keys.

Normalization is what the original project did (HTML entities unescaped, URLs and @mentions
removed, ``#`` stripped, lower-cased) plus whitespace folding. The API's cache key uses the
same function, so two spellings that normalize alike share one cache entry. The vocabularies
that turn tokens into ids are in :mod:`tweetdomains.vocab`.
"""

from __future__ import annotations

import hashlib
import html
import re

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
