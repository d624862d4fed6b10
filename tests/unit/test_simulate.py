"""The synthetic tweet generator: deterministic, realistic label structure, learnable, and
its stream messages read back to the same records."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from tweetdomains import codecs, simulate, taxonomy
from tweetdomains.codecs import ParseStats
from tweetdomains.records import Record

N = 3000


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return simulate.generate(N, seed=11)


def test_deterministic_per_seed() -> None:
    assert simulate.generate(200, seed=3) == simulate.generate(200, seed=3)
    assert simulate.generate(200, seed=3) != simulate.generate(200, seed=4)
    stream = simulate.SyntheticTweets(3).records()
    assert list(itertools.islice(stream, 200)) == simulate.generate(200, seed=3)


def test_ids_are_unique_and_fields_filled(records: list[Record]) -> None:
    assert len({r.id for r in records}) == N
    assert all(r.text.strip() and r.created_at and r.created_at.endswith("Z") for r in records)
    assert [r.created_at for r in records] == sorted(r.created_at for r in records)


def test_labels_are_canonical_taxonomy_names_with_aligned_ids(records: list[Record]) -> None:
    labels = Counter(d for r in records for d in r.domains)
    assert len(labels) >= 25
    for name in labels:
        assert taxonomy.canonical_name(name) == name and taxonomy.is_known(name)
    for r in records:
        assert list(r.domains) == sorted(set(r.domains))
        assert r.domain_ids == tuple(taxonomy.id_for(d) for d in r.domains)
        assert bool(r.entities) == bool(r.domains)


def test_label_structure_is_realistic(records: list[Record]) -> None:
    def implies(label: str, *others: str) -> None:
        having = [r for r in records if label in r.domains]
        assert having, label
        assert all(set(others) <= set(r.domains) for r in having), label

    implies("Musician", "Person", "Music Genre")
    implies("Politician", "Person")
    implies("Sports Team", "Sport")
    implies("Athlete", "Person", "Sport")
    implies("Brand", "Brand Category", "Brand Vertical")
    implies("Actor", "Person")
    implies("Movie", "Movie Genre")
    multi = sum(1 for r in records if len(r.domains) >= 2) / N
    assert multi > 0.5


def test_some_tweets_get_filtered(records: list[Record]) -> None:
    reasons = Counter(codecs.keep_reason(r) for r in records)
    assert 0.05 < reasons["no_annotations"] / N < 0.2
    assert 0.03 < reasons["lang"] / N < 0.15
    assert reasons[None] / N > 0.7
    assert {r.lang for r in records} >= {"en", "es", "fr", "de", "ja", "und"}


def test_texts_carry_twitter_furniture(records: list[Record]) -> None:
    texts = [r.text for r in records]
    assert any("https://t.co/" in t for t in texts)
    assert any(t.startswith("@") for t in texts)
    assert any("#" in t for t in texts)
    assert any(ch in t for t in texts for ch in "🎶⚽🎮")


def test_stream_messages_read_back_to_the_records() -> None:
    messages = list(itertools.islice(simulate.stream_messages(seed=5), 1000))
    stats = ParseStats()
    parsed = [record for message in messages for record in codecs.parse_payload(message, stats)]
    assert parsed == simulate.generate(1000, seed=5)
    assert stats.records == 1000 and stats.bad_lines == 0 and stats.skipped == {}
    retweets = [m for m in messages if "referenced_tweets" in m["data"]]
    assert 0.08 < len(retweets) / 1000 < 0.25
    assert all(m["data"]["text"].startswith("RT @") for m in retweets)
    assert any(m["data"]["text"].endswith("…") for m in retweets)
    assert any(
        "context_annotations" not in m["data"] and m["includes"]["tweets"][0].get("context_annotations")
        for m in retweets
    )
    names = {a["domain"]["name"] for m in messages for a in m["data"].get("context_annotations", [])}
    assert "Business Taxonomy" in names  # an old name the reader must map back
    assert all(codecs.detect_format(m) == "api" for m in messages[:50])


def test_small_model_learns_the_labels(records: list[Record]) -> None:
    sklearn = pytest.importorskip("sklearn")
    del sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer

    labeled = [r for r in records if codecs.keep_reason(r) is None]
    train, test = labeled[:2000], labeled[2000:]
    binarizer = MultiLabelBinarizer().fit([r.domains for r in labeled])
    vectorizer = TfidfVectorizer().fit([r.text for r in train])
    model = OneVsRestClassifier(LogisticRegression(max_iter=300, C=10.0))
    model.fit(vectorizer.transform([r.text for r in train]), binarizer.transform([r.domains for r in train]))
    predicted = model.predict(vectorizer.transform([r.text for r in test]))
    assert f1_score(binarizer.transform([r.domains for r in test]), predicted, average="micro") > 0.9


def test_texts_are_diverse_and_shaped_like_real_tweets() -> None:
    """At 1,000,000 tweets the generator gives over 95% distinct texts (measured once, see the
    README); here a 20,000-tweet sample must be at least 98% distinct, with the real files'
    rates of emoji, hashtags, mentions and links and their length within a margin."""
    import re
    import statistics

    texts = [r.text for r in simulate.generate(20_000, seed=21)]
    n = len(texts)
    assert len(set(texts)) / n >= 0.98
    emoji = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
    assert 0.12 < sum(bool(emoji.search(t)) for t in texts) / n < 0.30  # real files: ~19%
    assert 0.45 < sum("#" in t for t in texts) / n < 0.70  # ~57%
    assert 0.55 < sum(bool(re.search(r"@\w", t)) for t in texts) / n < 0.80  # ~70%
    assert 0.45 < sum("https://t.co/" in t for t in texts) / n < 0.70  # ~60%
    assert 110 < statistics.median(len(t) for t in texts) < 200  # ~160 characters
