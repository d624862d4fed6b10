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


# _URL without re.IGNORECASE, which makes every position a case-folding compare: the only
# characters that fold to h, t, p, w are their two cases, and to s also U+017F (long s).
_URL_CASED = re.compile(r"[hHwW](?:(?<=[hH])[tT][tT][pP][sS\u017f]?://|(?<=[wW])[wW][wW]\.)\S+")
# _TOKEN less the alternatives that cannot match a text without "n't" (the "do" of "don't" and
# the clitic both need it), or without any "'" (every contraction needs one).
_WORD = r"[^\W_]+(?:[.-][^\W_]+)*"
_TOKEN_NO_NT = re.compile(rf"[{_EMOJI_RANGES}]|'(?:s|re|ve|ll|d|m)\b|{_WORD}", re.UNICODE)
_TOKEN_NO_QUOTE = re.compile(rf"[{_EMOJI_RANGES}]|{_WORD}", re.UNICODE)
# What splits a text into the pieces that tokenize on their own: every ASCII character but
# letters, digits, "." and "-" (and, in a text with an "'", "'" and "_", which decide where a
# word ends for the contractions' "\\b"); "#" goes, ASCII letters are lower-cased. No such
# character is a word character, an emoji, or part of a token.
_SPLITS = {chr(c): (chr(c).lower() if chr(c).isalnum() or chr(c) in ".-" else " ") for c in range(128)}
_SPLITS_NO_QUOTE = str.maketrans(_SPLITS | {"#": None})
_SPLITS_QUOTE = str.maketrans(_SPLITS | {"#": None, "'": "'", "_": "_"})
# A "." or "-" is in a token only between two word characters (joining them): any other splits.
_LONE_JOINER = re.compile(r"[.-](?:(?<![^\W_][.-])|(?![^\W_]))")


def tokenize_texts(texts: Iterable[str]) -> list[list[str]]:
    """``tokenize(normalize(text))`` of each text, each the cheapest exact way (the shards' hot
    path).

    :func:`normalize`'s steps in its order, less the whitespace folding (no token holds or
    needs whitespace, and ``lower`` treats any whitespace as it treats a space), each skipped
    where it cannot match. A text that is not ASCII goes through the token pattern less the
    alternatives that cannot match in it. In an ASCII one, the characters that only split
    (``_SPLITS``, ``_LONE_JOINER``) become spaces, at C speed, and each piece between spaces
    tokenizes on its own: one without "'" or "_" is one token as it is, the others go through
    the pattern.
    """
    out = []
    for text in texts:
        if "&" in text:
            text = html.unescape(text)
        if "://" in text or "w." in text or "W." in text:  # "www." needs "w." in some case
            text = _URL_CASED.sub(" ", text)
        if "@" in text:
            text = _MENTION.sub(" ", text)
        if not text.isascii():  # the pattern, less what cannot match (translate is slow here)
            text = text.replace("#", "").replace("\u2019", "'").lower()
            pattern = _TOKEN_NO_QUOTE if "'" not in text else _TOKEN if "n't" in text else _TOKEN_NO_NT
            out.append(pattern.findall(text))
            continue
        quote = "'" in text
        text = text.translate(_SPLITS_QUOTE if quote else _SPLITS_NO_QUOTE)
        if "." in text or "-" in text:
            text = _LONE_JOINER.sub(" ", text)
        if not quote:
            out.append(text.split())
            continue
        tokens: list[str] = []
        for piece in text.split():
            if "'" in piece:
                tokens += (_TOKEN if "n't" in piece else _TOKEN_NO_NT).findall(piece)
            elif "_" in piece:
                tokens += _TOKEN_NO_QUOTE.findall(piece)
            else:
                tokens.append(piece)
        out.append(tokens)
    return out


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
