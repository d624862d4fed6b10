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
from collections.abc import Iterable

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


def normalize_many(texts: Iterable[str]) -> list[str]:
    """:func:`normalize` of each text, in about half its time (the shards' hot path).

    The same steps, skipping a regex where it cannot match: URLs need ``://`` or ``www.``
    (no other character case-folds to ``w``), mentions an ``@``; ``str.split`` folds the same
    whitespace ``\\s`` matches, and drops it at both ends as ``strip`` does.
    """
    out = []
    for text in texts:
        text = html.unescape(text)
        if "://" in text or "www." in text.lower():
            text = _URL.sub(" ", text)
        if "@" in text:
            text = _MENTION.sub(" ", text)
        text = text.replace("#", "").replace("’", "'")
        out.append(" ".join(text.split()).lower())
    return out


def tokenize(normalized_text: str) -> list[str]:
    """Split normalized text into word, contraction and emoji tokens."""
    return _TOKEN.findall(normalized_text)


def content_key(text: str) -> str:
    """The identity of a tweet's content: retweet prefix, URLs, mentions and punctuation removed.

    Retweets of one text share a key, so dedup and the train/test split treat them as one.
    """
    text = _RETWEET_PREFIX.sub("", html.unescape(text))
    return " ".join(t for t in tokenize(normalize(text)) if not t.startswith("'") and t != "n't")


# Between texts in :func:`tokenize_many`'s answer: matched by no token (not a word character,
# not an emoji), and no normalized text holds it unless its tweet did.
TEXT_END = "\x00"
_TOKEN_OR_END = re.compile(f"{TEXT_END}|{_TOKEN.pattern}", re.UNICODE)


def tokenize_many(normalized_texts: list[str]) -> list[str] | None:
    """Every text's :func:`tokenize` tokens in one list, each text's followed by ``TEXT_END``,
    from one regex pass; None when a text itself holds ``TEXT_END`` (tokenize those one by one).

    No token pattern reaches across ``TEXT_END`` (``\\b`` before it is a boundary, as at the
    end of a string), so the tokens are the texts' own.
    """
    joined = TEXT_END.join(normalized_texts) + TEXT_END
    if joined.count(TEXT_END) != len(normalized_texts):
        return None
    return _TOKEN_OR_END.findall(joined)


def content_key_many(texts: Iterable[str]) -> list[str]:
    """:func:`content_key` of each text, with :func:`normalize_many`."""
    keys = []
    for text in normalize_many(_RETWEET_PREFIX.sub("", html.unescape(t)) for t in texts):
        keys.append(" ".join(t for t in _TOKEN.findall(text) if not t.startswith("'") and t != "n't"))
    return keys


def retweet_prefix_end(text: str) -> int:
    """Where the ``RT @name:`` prefix :func:`content_key` drops ends in ``text`` (HTML already
    unescaped); 0 when it has none."""
    match = _RETWEET_PREFIX.match(text)
    return match.end() if match else 0


def content_hash(text: str) -> str:
    """SHA-1 hex digest of :func:`content_key`."""
    return hashlib.sha1(content_key(text).encode("utf-8")).hexdigest()
