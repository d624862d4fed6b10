"""Language-model pre-training on tiny synthetic corpora: publish, perplexity, load, apply, refuse, CLI."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors

from tweetdomains import codecs
from tweetdomains.model import ModelConfig, build_model
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains.vocab import WordpieceVocabulary
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer.encoder import ENCODER, apply_pretrained, encoder_registry, load_pretrained
from tweetdomains_trainer.language_model import LanguageModel
from tweetdomains_trainer.pretrain import PretrainResult, pretrain
from tweetdomains_trainer.pretrain_options import PretrainOptions

TINY: dict[str, Any] = {
    "init_embeddings": "none",
    "embedding_dim": 16,
    "hidden_dim": 16,
    "batch_size": 32,
    "lr": 0.01,
    "progress": False,
    "threads": 1,
}
SUBJECTS = ["the team", "my cat", "our mayor", "the band", "a chef", "the coach", "my sister", "the pilot"]
VERBS = ["loves", "watched", "cooked", "painted", "visited", "praised", "missed", "found"]
OBJECTS = ["the game", "a new song", "the big city", "a red car", "the old bridge", "a hot pizza"]
PLACES = ["at home", "in london", "on sunday", "after lunch", "before the match", "last night"]


def repetitive_lines(n: int, seed: int = 0) -> list[str]:
    """Distinct tweets from a few templates: easy to model, so perplexity must fall."""
    rng = random.Random(seed)
    lines: set[str] = set()
    while len(lines) < n:
        parts = (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(PLACES))
        lines.add(" ".join(parts) + rng.choice(["", " today", " again", " lol"]))
    return sorted(lines)


def write_lines(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[LocalStore, PretrainResult]:
    root = tmp_path_factory.mktemp("pretrain")
    data = write_lines(root / "tweets.txt", repetitive_lines(500))
    store = LocalStore(root / "store")
    options = PretrainOptions(store=str(store.root), data=[data], epochs=2, validation_percent=10, **TINY)
    return store, pretrain(options, store)


# ----------------------------------------------------------------------------- publish


def test_publishes_encoder_files_then_manifest_and_latest(
    published: tuple[LocalStore, PretrainResult],
) -> None:
    store, result = published
    assert result.published and result.run_id.startswith("lm-")
    folder = f"pretrained/{result.run_id}/"
    names = {k[len(folder) :] for k in store.list(folder)}
    assert names == {ENCODER, "vocab.json", "config.json", "metrics.json", "manifest.json"}
    manifest = json.loads(store.get(folder + "manifest.json"))
    for name, digest in manifest["files"].items():
        assert hashlib.sha256(store.get(folder + name)).hexdigest() == digest
    assert json.loads(store.get("pretrained/latest.json")) == {"run_id": result.run_id}
    assert encoder_registry(store).latest() == result.run_id

    config = json.loads(store.get(folder + "config.json"))
    assert config == {
        "kind": "lstm",
        "embedding_dim": 16,
        "hidden_dim": 16,
        "recurrent_layers": 1,
        "bidirectional": True,
        "max_tokens": 64,
        "vocab_size": len(result.vocab),
    }
    # Only encoder tensors, named exactly as in a classifier's state dict.
    tensors = load_safetensors(store.get(folder + ENCODER))
    classifier = build_model(
        ModelConfig(
            vocab_size=len(result.vocab),
            embedding_dim=16,
            hidden_dim=16,
            recurrent_layers=1,
            bidirectional=True,
        )
    )
    expected = {k for k in classifier.state_dict() if k.startswith(("embedding.", "recurrent."))}
    assert set(tensors) == expected and "recurrent.weight_ih_l0_reverse" in tensors

    metrics = json.loads(store.get(folder + "metrics.json"))
    assert metrics["texts"] == 500 and metrics["tokens"] > 500 * 5
    assert metrics["validation"]["texts"] > 0 and metrics["data"][0].endswith("tweets.txt")
    assert len(metrics["history"]) == 2 and metrics["history"][0]["tokens_per_second"] > 0


def test_validation_perplexity_falls_on_a_repetitive_corpus(
    published: tuple[LocalStore, PretrainResult],
) -> None:
    _, result = published
    first, second = (h["val_perplexity"] for h in result.history)
    assert second < first
    assert result.metrics["val_perplexity"] == min(first, second)


def test_bidirectional_objective_never_sees_the_token_it_predicts(tmp_path: Path) -> None:
    # Uniform random words: no model can beat a perplexity of len(WORDS) honestly. A direction
    # that read its own target would copy it and drive the perplexity towards 1.
    words = ["cat", "dog", "red", "blue", "tree", "car", "sun", "rain"]
    rng = random.Random(5)
    data = write_lines(tmp_path / "random.txt", [" ".join(rng.choices(words, k=12)) for _ in range(400)])
    options = PretrainOptions(
        store=str(tmp_path / "store"), data=[data], epochs=3, validation_percent=20, **{**TINY, "lr": 0.03}
    )
    result = pretrain(options)
    assert result.history[-1]["val_perplexity"] > 0.8 * len(words)


def test_forward_only_rnn_language_model_trains(tmp_path: Path) -> None:
    data = write_lines(tmp_path / "tweets.txt", repetitive_lines(200, seed=1))
    options = PretrainOptions(
        store=str(tmp_path / "store"), data=[data], model="rnn", bidirectional=False, epochs=2, **TINY
    )
    result = pretrain(options)
    assert result.history[1]["val_perplexity"] < result.history[0]["val_perplexity"]
    assert not any(k.endswith("_reverse") for k in result.state)


def test_language_model_trains_the_classifier_modules_themselves() -> None:
    classifier = build_model(
        ModelConfig(vocab_size=50, embedding_dim=8, hidden_dim=8, bidirectional=True, recurrent_layers=1)
    )
    model = LanguageModel(classifier, [20])
    assert model.embedding is classifier.embedding and model.recurrent is classifier.recurrent
    ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    nll, count = model(ids, torch.tensor([4, 2]), ids)
    assert count == 2 * (3 + 1) and float(nll.detach()) > 0  # both directions, pairs inside each tweet


# ----------------------------------------------------------------------------- load and apply


def test_load_round_trip_gives_identical_tensors(published: tuple[LocalStore, PretrainResult]) -> None:
    store, result = published
    for ref in ("latest", result.run_id):
        encoder = load_pretrained(store, ref)
        assert encoder.run_id == result.run_id
        assert isinstance(encoder.vocab, WordpieceVocabulary) and encoder.vocab == result.vocab
        assert set(encoder.state) == set(result.state)
        assert all(torch.equal(encoder.state[k], result.state[k]) for k in result.state)
    assert load_pretrained(str(store.root)).config["vocab_size"] == len(result.vocab)


def test_apply_copies_into_a_matching_classifier(published: tuple[LocalStore, PretrainResult]) -> None:
    store, _ = published
    encoder = load_pretrained(store, "latest")
    config = ModelConfig(
        kind="lstm",
        vocab_size=len(encoder.vocab),
        num_labels=5,
        embedding_dim=16,
        hidden_dim=16,
        recurrent_layers=1,
        bidirectional=True,
        linear_layers=2,
    )
    classifier = build_model(config)
    head_before = {k: v.clone() for k, v in classifier.state_dict().items() if k.startswith("head.")}
    assert apply_pretrained(classifier, encoder) == len(encoder.state) == 9
    state = classifier.state_dict()
    assert all(torch.equal(state[k], v) for k, v in encoder.state.items())
    assert all(torch.equal(state[k], v) for k, v in head_before.items())  # the head is untouched
    ids = torch.tensor([encoder.vocab.encode_text("the team loves the game")])
    assert classifier(ids, torch.tensor([ids.shape[1]])).shape == (1, 5)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"hidden_dim": 8}, "hidden_dim"),
        ({"embedding_dim": 12}, "embedding_dim"),
        ({"kind": "rnn"}, "kind"),
        ({"bidirectional": False}, "bidirectional"),
        ({"recurrent_layers": 2}, "recurrent_layers"),
        ({"vocab_size": 40}, "vocab_size"),
    ],
)
def test_apply_refuses_a_mismatching_classifier(
    published: tuple[LocalStore, PretrainResult], change: dict[str, Any], field: str
) -> None:
    store, _ = published
    encoder = load_pretrained(store, "latest")
    base = {
        "kind": "lstm",
        "vocab_size": len(encoder.vocab),
        "embedding_dim": 16,
        "hidden_dim": 16,
        "recurrent_layers": 1,
        "bidirectional": True,
    }
    classifier = build_model(ModelConfig(**{**base, **change}))
    with pytest.raises(ValueError, match=field):
        apply_pretrained(classifier, encoder)


def test_tampered_or_incomplete_runs_are_refused(
    published: tuple[LocalStore, PretrainResult], tmp_path: Path
) -> None:
    source, result = published
    shutil.copytree(source.root, tmp_path / "copy")
    store = LocalStore(tmp_path / "copy")
    key = f"pretrained/{result.run_id}/{ENCODER}"
    data = bytearray(store.get(key))
    data[-1] ^= 0x01
    store.put(key, bytes(data))
    with pytest.raises(ValueError, match="does not match its manifest"):
        load_pretrained(store, result.run_id)
    store.delete(f"pretrained/{result.run_id}/manifest.json")
    with pytest.raises(ValueError, match="not found"):
        load_pretrained(store, "latest")
    with pytest.raises(ValueError, match="run `tweetdomains pretrain` first"):
        load_pretrained(LocalStore(tmp_path / "empty"), "latest")


def test_a_published_run_id_is_not_reused(published: tuple[LocalStore, PretrainResult]) -> None:
    store, result = published
    with pytest.raises(ValueError, match="already published"):
        pretrain(
            PretrainOptions(store=str(store.root), data=["unused.txt"], run_id=result.run_id, **TINY), store
        )


# ----------------------------------------------------------------------------- data and CLI


def _cli(tmp_path: Path, *argv: str) -> list[str]:
    return [
        "pretrain",
        "--store",
        str(tmp_path / "store"),
        "--init-embeddings",
        "none",
        "--embedding-dim",
        "8",
        "--hidden-dim",
        "8",
        "--no-progress",
        "--threads",
        "1",
        *argv,
    ]


def test_cli_dry_run_reads_records_caps_texts_and_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = generate(300, seed=2)  # labeled and unlabeled records alike are text to a language model
    (tmp_path / "records.jsonl").write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    argv = _cli(tmp_path, "--data", str(tmp_path / "records.jsonl"), "--max-texts", "120", "--dry-run")
    assert cli_main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["published"] is False and summary["texts"] == 120
    assert set(summary) == {"run_id", "published", "texts", "tokens", "val_perplexity", "seconds"}
    assert list(LocalStore(tmp_path / "store").list("pretrained/")) == []


def test_without_data_reads_the_store_raw_batches(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    store.put("raw/2026/11/29/00/batch.jsonl.gz", codecs.write_jsonl_gz(generate(200, seed=4)))
    result = pretrain(PretrainOptions(store=str(store.root), dry_run=True, **TINY), store)
    assert not result.published and result.metrics["texts"] > 100
    assert result.metrics["data"] == [f"{store.uri}/raw/"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-tokens", "1"], "--max-tokens"),
        (["--recurrent-layers", "2"], "--no-bidirectional"),
        (["--dropout", "1.5"], "--dropout"),
        (["--validation-percent", "0"], "--validation-percent"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    assert cli_main(_cli(tmp_path, "--data", "unused.txt", *flags)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tweetdomains pretrain: error:") and message in err and "\n" not in err


def test_bad_flag_values_are_argparse_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(_cli(tmp_path, "--model", "gru"))
    assert exc.value.code == 2


def test_unusable_data_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words = write_lines(tmp_path / "single.txt", ["hello", "world", "   ", "ok"])
    assert cli_main(_cli(tmp_path, "--data", words)) == 1
    assert "no usable texts" in capsys.readouterr().err
    assert cli_main(_cli(tmp_path, "--data", str(tmp_path / "missing-*.txt"))) == 1
    assert "no files match" in capsys.readouterr().err
