"""Text pipeline: normalization as the original project did it, tokenizer, vocabulary."""

from __future__ import annotations

import pytest

from tweetdomains.text import PAD_ID, UNK_ID, Vocabulary, content_hash, content_key, normalize, tokenize


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


def test_vocabulary_min_count_order_and_json_roundtrip() -> None:
    vocab = Vocabulary.build([["a", "b", "b"], ["b", "c", "a"], ["d"]], min_count=2)
    assert vocab.tokens == ("<PAD>", "<UNK>", "b", "a")
    assert vocab.encode(["a", "zzz", "b"]) == [3, UNK_ID, 2]
    again = Vocabulary.from_json(vocab.to_json())
    assert again == vocab and again.fingerprint() == vocab.fingerprint()
    assert vocab.encode_text("") == [UNK_ID]
    assert vocab.encode_text("a b a b a", max_tokens=2) == [3, 2]
    assert PAD_ID == 0


def test_vocabulary_rejects_bad_json() -> None:
    with pytest.raises(ValueError):
        Vocabulary.from_json('["a"]')
    with pytest.raises(ValueError):
        Vocabulary.from_json('{"tokens": ["a", "b"]}')
