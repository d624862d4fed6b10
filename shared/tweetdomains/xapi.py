"""X API v2 tweet objects (and twarc2's flattened tweets) as :class:`Record`: text, retweets, labels."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from tweetdomains import taxonomy
from tweetdomains.parse_stats import ParseStats, clean_text
from tweetdomains.records import Record


def _opt_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _annotations(tweet: Mapping[str, Any]) -> list[Any]:
    value = tweet.get("context_annotations")
    if isinstance(value, str):  # some exports store the list as a JSON string
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


def _labels(annotations: list[Any]) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(sorted unique canonical domain names, their ids, unique entity names in order)."""
    ids_by_name: dict[str, str] = {}
    entities: dict[str, None] = {}
    for item in annotations:
        if not isinstance(item, Mapping):
            continue
        domain = item.get("domain")
        if isinstance(domain, Mapping) and isinstance(domain.get("name"), str) and domain["name"].strip():
            name = taxonomy.canonical_name(domain["name"])
            if name not in ids_by_name:
                ids_by_name[name] = taxonomy.id_for(name) or _opt_str(domain.get("id")) or ""
        entity = item.get("entity")
        if isinstance(entity, Mapping) and isinstance(entity.get("name"), str):
            entities.setdefault(entity["name"], None)
    names = tuple(sorted(ids_by_name))
    return names, tuple(ids_by_name[n] for n in names), tuple(entities)


def _tweet_text(tweet: Mapping[str, Any]) -> str | None:
    note = tweet.get("note_tweet")  # long posts: "text" is cut, the whole text is here
    if isinstance(note, Mapping) and isinstance(note.get("text"), str):
        return str(note["text"])
    text = tweet.get("text")
    if isinstance(text, str):
        return text
    html_text = tweet.get("html")  # an export that renamed "text" and escaped its newlines
    if isinstance(html_text, str):
        return html_text.replace("\\n", "\n")
    return None


def _retweeted(
    tweet: Mapping[str, Any], referenced: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    refs = tweet.get("referenced_tweets")
    if not isinstance(refs, list):
        return None
    for ref in refs:
        if isinstance(ref, Mapping) and ref.get("type") == "retweeted":
            if _tweet_text(ref) is not None:  # twarc's flattened form inlines the tweet
                return ref
            found = referenced.get(str(ref.get("id")))
            if found is not None and _tweet_text(found) is not None:
                return found
    return None


def tweet_to_record(
    tweet: Any,
    referenced: Mapping[str, Mapping[str, Any]] | None = None,
    stats: ParseStats | None = None,
) -> Record | None:
    """One API tweet object (or twarc's flattened tweet) as a Record; None when it has no text.

    A retweet's own text is cut short (``RT @user: ...…``): when the retweeted tweet is in
    ``referenced`` (the payload's ``includes.tweets`` by id) or inlined, its full text is used.
    The retweet keeps its own id, language and annotations, and borrows the original's
    annotations when it has none.
    """
    if not isinstance(tweet, Mapping):
        return None
    text = _tweet_text(tweet)
    if text is None:
        return None
    annotations = _annotations(tweet)
    original = _retweeted(tweet, referenced or {})
    if original is not None:
        text = _tweet_text(original) or text
        if not annotations:
            annotations = _annotations(original)
    domains, domain_ids, entities = _labels(annotations)
    return Record(
        text=clean_text(text, stats),
        domains=domains,
        domain_ids=domain_ids,
        entities=entities,
        id=_opt_str(tweet.get("id")),
        lang=_str_or_none(tweet.get("lang")),
        created_at=_str_or_none(tweet.get("created_at")),
    )


def referenced_map(includes: Any) -> dict[str, Mapping[str, Any]]:
    tweets = includes.get("tweets") if isinstance(includes, Mapping) else None
    if not isinstance(tweets, list):
        return {}
    return {str(t["id"]): t for t in tweets if isinstance(t, Mapping) and "id" in t}


def tweets_to_records(
    tweets: Iterable[Any], referenced: Mapping[str, Mapping[str, Any]], stats: ParseStats
) -> list[Record]:
    records = []
    for tweet in tweets:
        record = tweet_to_record(tweet, referenced, stats)
        if record is None:
            stats.skip("no_text")
        else:
            records.append(record)
    return records
