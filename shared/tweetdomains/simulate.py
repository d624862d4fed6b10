"""A deterministic synthetic tweet stream, for demos, tests and load tests.

Each tweet comes from one of a score of themes (a musician, a politician, a sports team, a
brand, a TV show, a video game ...) or, now and then, two themes at once. A theme carries the
labels the X API gives such a tweet: a musician's tweet is also ``Person`` and
``Music Genre``, a brand's ``Brand``, ``Brand Category`` and ``Brand Vertical``. Its words
are drawn from the theme, so a small model learns the labels in a minute. About one tweet in
nine has no annotations and one in twelve is not in English, so the collector's filters get
exercised. Entity names are invented.

``SyntheticTweets(seed).records()`` yields :class:`Record` objects; ``stream_messages(seed)``
yields the same tweets as X API v2 sampled-stream messages (with retweets whose full text is
only in ``includes``), so ``codecs.parse_payload`` turns message *i* back into record *i*.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tweetdomains import taxonomy
from tweetdomains.records import Record
from tweetdomains.simulate_themes import CHATTER, FOREIGN, MIXES, THEMES, Theme
from tweetdomains.simulate_voice import EXTRA_EMOJI, HANDLES, voice

_EPOCH = datetime(2022, 6, 1, tzinfo=UTC)
_ID_BASE = 1_530_000_000_000_000_000


@dataclass(frozen=True)
class _Tweet:
    record: Record
    annotations: tuple[tuple[str, str], ...]  # (canonical domain, entity name), in order
    author: str


def _theme_map() -> dict[str, Theme]:
    return {theme.name: theme for theme in THEMES}


class SyntheticTweets:
    """A deterministic, endless synthetic tweet stream: the same seed, the same tweets."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._themes = _theme_map()

    def records(self) -> Iterator[Record]:
        """Endless :class:`Record` objects with unique ids."""
        for tweet in self._tweets():
            yield tweet.record

    def _tweets(self) -> Iterator[_Tweet]:
        rng = random.Random(self.seed)
        id_base = _ID_BASE + (self.seed % 1_000_000) * 1_000_000_000
        when = _EPOCH
        weights = [theme.weight for theme in THEMES]
        index = 0
        while True:
            index += 1
            when += timedelta(milliseconds=rng.randint(200, 4000))
            roll = rng.random()
            annotations: list[tuple[str, str]] = []
            lang: str | None = "en"
            if roll < 0.11:
                text = voice(rng.choice(CHATTER), rng)
            elif roll < 0.12:
                text, lang = rng.choice(("🔥🔥🔥", "😂😂", "👀", "❤️❤️❤️")), "und"
            elif roll < 0.20:
                theme = rng.choices(THEMES, weights)[0]
                values = self._fill(theme, rng)
                lang, template = rng.choice(FOREIGN)
                text = voice(
                    template.format(entity=values[theme.annotations[0][1]]), rng, theme.hashtags, values
                )
                annotations = [(domain, values[slot]) for domain, slot in theme.annotations]
            elif roll < 0.30:
                first, second, template = rng.choice(MIXES)
                values = {}
                for name in (first, second):
                    theme = self._themes[name]
                    # a slot both themes name (e.g. "brand") keeps the first theme's value
                    filled = {k: values.get(k, v) for k, v in self._fill(theme, rng).items()}
                    values.update(filled)
                    annotations += [(domain, filled[slot]) for domain, slot in theme.annotations]
                text = voice(template.format(**values), rng, (), values)
            else:
                theme = rng.choices(THEMES, weights)[0]
                values = self._fill(theme, rng)
                text = rng.choice(theme.templates).format(**values)
                annotations = [(domain, values[slot]) for domain, slot in theme.annotations]
                for domain, slot, probability, marker in theme.optional:
                    if rng.random() < probability:
                        text += f" ({marker}: {values[slot]})"
                        annotations.append((domain, values[slot]))
                text = voice(self._decorate(text, theme, rng), rng, theme.hashtags, values)
            yield self._make(str(id_base + index), text, lang, when, annotations, rng)

    @staticmethod
    def _fill(theme: Theme, rng: random.Random) -> dict[str, str]:
        return {slot: rng.choice(choices) for slot, choices in theme.slots.items()}

    @staticmethod
    def _decorate(text: str, theme: Theme, rng: random.Random) -> str:
        if rng.random() < 0.06:
            text += " " + rng.choice(theme.emoji + EXTRA_EMOJI)
        return text

    @staticmethod
    def _make(
        tweet_id: str,
        text: str,
        lang: str | None,
        when: datetime,
        annotations: list[tuple[str, str]],
        rng: random.Random,
    ) -> _Tweet:
        unique = tuple(dict.fromkeys(annotations))
        domains = tuple(sorted({domain for domain, _ in unique}))
        record = Record(
            text=text,
            domains=domains,
            domain_ids=tuple(taxonomy.id_for(d) or "" for d in domains),
            entities=tuple(dict.fromkeys(entity for _, entity in unique)),
            id=tweet_id,
            lang=lang,
            created_at=when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        )
        return _Tweet(record, unique, rng.choice(HANDLES))


def generate(n: int, seed: int = 0) -> list[Record]:
    """The first ``n`` records of ``SyntheticTweets(seed)``."""
    stream = SyntheticTweets(seed).records()
    return [next(stream) for _ in range(n)]


def _entity_id(name: str) -> str:
    # A stable id per entity name (not hash(): that changes between processes).
    value = 0
    for byte in name.encode("utf-8"):
        value = (value * 131 + byte) % 10**15
    return str(10**15 + value)


def _api_annotations(pairs: tuple[tuple[str, str], ...], rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for domain, entity in pairs:
        domain_id = taxonomy.id_for(domain) or "0"
        name = domain
        if domain_id == "46" and rng.random() < 0.3:
            name = "Business Taxonomy"  # the API's older name for Brand Category
        out.append(
            {
                "domain": {
                    "id": domain_id,
                    "name": name,
                    "description": taxonomy.description_for(domain_id) or "",
                },
                "entity": {"id": _entity_id(entity), "name": entity},
            }
        )
    return out


def _user(handle: str) -> dict[str, str]:
    return {"id": _entity_id("@" + handle), "name": handle.replace("_", " ").title(), "username": handle}


def stream_messages(seed: int = 0, retweet_rate: float = 0.15) -> Iterator[dict[str, Any]]:
    """Endless X API v2 sampled-stream messages for the tweets of ``SyntheticTweets(seed)``.

    Message *i* carries record *i*: as a plain tweet, or (``retweet_rate`` of them) as a
    retweet whose own text is cut to ``RT @user: ...…`` and whose full text is the referenced
    tweet in ``includes.tweets``. Some retweets carry no annotations of their own, as in the
    real stream, so readers must borrow the original's.
    """
    rng = random.Random(f"stream-{seed}")
    for tweet in SyntheticTweets(seed)._tweets():
        record = tweet.record
        data: dict[str, Any] = {
            "id": record.id,
            "text": record.text,
            "lang": record.lang,
            "created_at": record.created_at,
            "author_id": _user(tweet.author)["id"],
            "edit_history_tweet_ids": [record.id],
        }
        annotations = _api_annotations(tweet.annotations, rng)
        includes: dict[str, Any] = {"users": [_user(tweet.author)]}
        if rng.random() < retweet_rate:
            original_author = rng.choice(HANDLES)
            original_id = str(int(record.id or "0") + 500_000_000)
            original = {
                "id": original_id,
                "text": record.text,
                "lang": record.lang,
                "author_id": _user(original_author)["id"],
                "edit_history_tweet_ids": [original_id],
            }
            if annotations:
                original["context_annotations"] = annotations
            full = f"RT @{original_author}: {record.text}"
            data["text"] = full if len(full) <= 140 else full[:139] + "…"  # as the API cuts retweets
            data["referenced_tweets"] = [{"type": "retweeted", "id": original_id}]
            includes["tweets"] = [original]
            includes["users"].append(_user(original_author))
            if annotations and rng.random() < 0.7:
                data["context_annotations"] = annotations
        elif annotations:
            data["context_annotations"] = annotations
        yield {"data": data, "includes": includes}
