"""Real tweets: TweetTopicXL's own labels train unchanged; evaluate scores a published run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_data
from tweetdomains.registry import Registry
from tweetdomains.store import LocalStore
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer.evaluate import evaluate
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.train import train

TOPIC_XL = "raw/anon7331__tweet_topicXL/data/en"


def test_tweettopicxl_topics_train_unchanged_and_evaluate(tmp_path: Path) -> None:
    folder = require_data(TOPIC_XL)
    train_files = [str(folder / "en_train.jsonl"), str(folder / "en_validation.jsonl")]
    options = TrainOptions(
        store=str(tmp_path / "store"),
        data=train_files,
        embedding_dim=16,
        hidden_dim=16,
        epochs=3,
        batch_size=16,
        min_count=1,
        progress=False,
    )
    result = train(options)
    assert result.published
    labels = json.loads(Registry(LocalStore(tmp_path / "store")).artifact(result.run_id, "labels.json"))
    assert "Film, TV & Video" in labels and "Sports" in labels and len(labels) <= 19

    report = evaluate(str(tmp_path / "store"), "best", [str(folder / "en_test.jsonl")])
    assert report["n"] == 800 and report["run_id"] == result.run_id
    assert 0.0 <= report["micro_f1"] <= 1.0 and 0.0 <= report["p_at_1"] <= 1.0
    assert set(report["per_label"]) == set(labels)
    assert LocalStore(tmp_path / "store").exists(report["report"])


def test_evaluate_command_prints_the_interface_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = require_data(TOPIC_XL)
    store = str(tmp_path / "store")
    argv = ["train", "--store", store, "--data", str(folder / "en_train.jsonl"), "--epochs", "1"]
    argv += ["--recipe", "word", "--embedding-dim", "8", "--hidden-dim", "8", "--no-progress"]
    assert cli_main(argv) == 0
    run_id = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"]
    argv = ["evaluate", "--store", store, "--run", run_id, "--data", str(folder / "en_validation.jsonl")]
    assert cli_main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"micro_f1", "macro_f1", "p_at_1", "n", "per_label"} <= set(out)
    assert out["n"] == 20
