"""Text pipeline: normalization as the original project did it, word tokens, content keys
(the vocabularies are tested in test_vocab.py)."""

from __future__ import annotations

from tweetdomains.text import content_hash, content_key, normalize, tokenize


def test_normalize_matches_the_original_rules() -> None:
    text = "RT @nasa: Launch &amp; landing!! #Artemis https://t.co/abc www.x.com  NOW"
    assert normalize(text) == "rt : launch & landing!! artemis now"


def test_tokenizer_keeps_emoji_hashtag_words_and_splits_contractions() -> None:
    assert tokenize(normalize("I don't ❤️ #MondayMotivation 😂😂 it's covid-19 in the U.S.")) == [
        "i", "do", "n't", "❤", "mondaymotivation", "😂", "😂", "it", "'s", "covid-19", "in", "the", "u.s",
    ]  # fmt: skip


def test_non_latin_words_are_tokens() -> None:
    assert tokenize(normalize("東京 オリンピック Ελλάδα")) == ["東京", "オリンピック", "ελλάδα"]


def test_content_key_ignores_retweet_prefix_urls_mentions_and_punctuation() -> None:
    a = "RT @someone: Big game tonight!!! https://t.co/x"
    b = "big GAME tonight @friend"
    assert content_key(a) == content_key(b) == "big game tonight"
    assert content_hash(a) == content_hash(b)
    assert content_hash("big game today") != content_hash(a)
