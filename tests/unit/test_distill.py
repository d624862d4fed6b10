"""The distilled student (``train --teacher``) on generated tweets, from a tiny published teacher.

The teacher is the tiny BERT of ``test_teacher`` fine-tuned for a few steps on the same file
and split the student reads, so every part is real: the teacher's store format, its cached
soft labels, the unlabeled tweets' dedup against the labeled data, and the trainer's epochs,
early stopping and refit under :class:`~tweetdomains.model.DistillationLoss`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import write_records
from tests.unit.test_teacher import TINY, tiny_bert
from tweetdomains.dataset import build_dataset
from tweetdomains.model import DistillationLoss, bce_loss
from tweetdomains.simulate import generate
from tweetdomains.store import ObjectStore, open_store
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer.distill import map_labels
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.recipes import RECIPES
from tweetdomains_trainer.teacher import fine_tune
from tweetdomains_trainer.teacher_options import TeacherOptions
from tweetdomains_trainer.train import train

UNSEEN = "zorblaxian"
STUDENT: dict[str, Any] = {**RECIPES["word"], "epochs": 2, "patience": 2, "batch_size": 16, "min_support": 2}
STUDENT.update(progress=False, threads=1, embedding_dim=16, hidden_dim=16, refit=True, ema_decay=0.9)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with teacher ``teacher-d1`` fine-tuned on ``tweets.jsonl`` (train's default split),
    and an unlabeled file: new tweets, two repeats, and copies of validation and test tweets."""
    root = tmp_path_factory.mktemp("distill")
    records = generate(120, seed=5)
    data = write_records(root / "tweets.jsonl", records)
    store = open_store(str(root / "store"))
    model = tiny_bert(root / "tiny-bert")
    options = TeacherOptions(store=store.uri, data=[data], model=str(model), run_id="teacher-d1", **TINY)
    fine_tune(options, store)
    split = build_dataset(records)
    leaked = [r.text for r in split.validation[:3]] + ["RT @someone: " + split.test[0].text]
    # Two tweets with a word no labeled tweet has: the student's vocabulary must count it.
    fresh = [r.text for r in generate(40, seed=99)] + [f"{UNSEEN} wins again {n}" for n in range(2)]
    unlabeled = root / "unlabeled.txt"
    unlabeled.write_text("\n".join([*fresh, fresh[0], fresh[1], *leaked]) + "\n", encoding="utf-8")
    return {
        "root": root,
        "store": store,
        "data": data,
        "records": records,
        "unlabeled": str(unlabeled),
        "fresh": len(set(fresh)),
    }


def _student(setup: dict[str, Any], run_id: str, **extra: Any) -> TrainOptions:
    values = {**STUDENT, "store": setup["store"].uri, "data": [setup["data"]], "run_id": run_id, **extra}
    return TrainOptions(**values)


def test_the_student_distils_labeled_and_unlabeled_tweets_and_a_retrain_reads_the_cache(
    setup: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    store: ObjectStore = setup["store"]
    # teacher-score on the same file beforehand: train then reads the unlabeled tweets' scores.
    score = ["teacher-score", "--store", store.uri, "--data", setup["unlabeled"], "--no-progress"]
    assert cli_main([*score, "--threads", "1"]) == 0
    capfd.readouterr()
    options = _student(setup, "student-1", teacher="latest", unlabeled=[setup["unlabeled"]])
    result = train(options, store)
    assert result.published
    distilled = result.metrics["lineage"]["distillation"]
    assert distilled["teacher"] == "teacher-d1" and distilled["soft_labels_cached"] == [False, True]
    # 4 copies of labeled tweets (3 validation, 1 test retweeted) and 2 repeats dropped.
    assert distilled["unlabeled"] == {
        "read": setup["fresh"] + 6,
        "repeats": 2,
        "labeled": 4,
        "kept": setup["fresh"],
    }
    assert all(
        store.exists(key) and key.startswith("teachers/teacher-d1/") for key in distilled["soft_labels"]
    )
    assert UNSEEN in result.encoded.vocab.tokens
    assert not any(UNSEEN in r.text for r in setup["records"])
    # The retrain must not rescore: with the teacher's weights gone it could not.
    weights = "teachers/teacher-d1/model.safetensors"
    saved = store.get(weights)
    store.delete(weights)
    try:
        again = train(
            _student(setup, "student-2", teacher="teacher-d1", unlabeled=[setup["unlabeled"]]), store
        )
    finally:
        store.put(weights, saved)
    assert again.metrics["lineage"]["distillation"]["soft_labels_cached"] == [True, True]
    assert again.metrics["lineage"]["distillation"]["soft_labels"] == distilled["soft_labels"]


def test_a_teacher_fine_tuned_on_another_split_or_other_data_is_refused(setup: dict[str, Any]) -> None:
    store: ObjectStore = setup["store"]
    # Validation 15% > the teacher's 10%: the teacher trained on some of this run's validation tweets.
    with pytest.raises(ValueError, match=r"validation-percent 10.*fine-tune it with this run's split"):
        train(_student(setup, "student-3", teacher="latest", validation_percent=15), store)
    other = write_records(setup["root"] / "fewer.jsonl", setup["records"][:-10])  # labels still covered
    with pytest.raises(ValueError, match="fine-tuned on other data"):
        train(_student(setup, "student-4", teacher="latest", data=[other]), store)
    with pytest.raises(ValueError, match="--unlabeled needs --teacher"):
        _student(setup, "student-5", unlabeled=[setup["unlabeled"]])
    # The store's path (no --data) distils too.
    assert _student(setup, "student-5", teacher="latest", data=None).teacher == "latest"


def test_the_teachers_labels_are_mapped_to_the_datas_order() -> None:
    probs = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], dtype=np.float32)
    mapped = map_labels(probs, ["c", "a", "b"], ["a", "b"])  # extra teacher label c dropped
    np.testing.assert_array_equal(mapped, probs[:, 1:])
    with pytest.raises(ValueError, match="does not score 1 of the data's labels \\(d\\)"):
        map_labels(probs, ["c", "a", "b"], ["a", "d"])


def test_the_distillation_loss_is_the_recipes_on_labeled_rows_plus_softened_bce_on_every_row() -> None:
    torch.manual_seed(0)
    logits, hard = torch.randn(4, 3), (torch.rand(4, 3) > 0.5).float()
    soft, labeled = torch.rand(4, 3), torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    recipe = bce_loss(rank_weight=0.5)
    loss = DistillationLoss(recipe, weight=0.7, temperature=2.0)
    rows = labeled[:, 0] > 0
    teacher = torch.sigmoid(torch.logit(soft) / 2.0)
    # The hard term weighs each labeled row as one row of the batch: 2 of 4 here.
    expected = 0.5 * recipe(logits[rows], hard[rows]) + 0.7 * 4.0 * torch.nn.functional.binary_cross_entropy(
        torch.sigmoid(logits / 2.0), teacher
    )
    torch.testing.assert_close(loss(logits, torch.cat([hard, soft, labeled], dim=1)), expected)
    torch.testing.assert_close(loss(logits, hard), recipe(logits, hard))  # validation: labels only
    everyone = torch.ones_like(labeled)  # all rows labeled: the recipe's loss, unscaled
    no_teacher = DistillationLoss(recipe, weight=0.0)
    all_labeled = torch.cat([hard, soft, everyone], dim=1)
    torch.testing.assert_close(no_teacher(logits, all_labeled), recipe(logits, hard))


def test_train_teacher_dry_run_scores_a_batch_and_writes_nothing(
    setup: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    store: ObjectStore = setup["store"]
    before = set(store.list("teachers/teacher-d1/scores/"))
    argv = ["train", "--store", store.uri, "--data", setup["data"], "--recipe", "word", "--teacher", "latest"]
    argv += ["--unlabeled", setup["unlabeled"], "--dry-run", "--no-progress", "--threads", "1"]
    assert cli_main(argv) == 0
    out, err = capfd.readouterr()
    assert "soft labels: teacher teacher-d1 for" in err and "distillation: 32 labeled" in err
    assert json.loads(out.strip().splitlines()[-1])["published"] is False
    assert set(store.list("teachers/teacher-d1/scores/")) == before  # a dry run caches nothing


def test_train_without_a_recipe_distils_the_published_teacher_and_says_so(
    setup: dict[str, Any], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    store: ObjectStore = setup["store"]
    argv = ["train", "--data", setup["data"], "--dry-run", "--no-progress", "--threads", "1"]
    argv += ["--embedding-dim", "384", "--hidden-dim", "8"]
    assert cli_main([*argv, "--store", store.uri]) == 0
    assert "recipe: quality distilled from teacher teacher-d1" in capfd.readouterr().err
    assert cli_main([*argv, "--store", str(tmp_path / "empty")]) == 0
    assert "recipe: quality (no teacher published under" in capfd.readouterr().err
    assert cli_main([*argv, "--store", store.uri, "--recipe", "quality"]) == 0  # named: no teacher
    err = capfd.readouterr().err
    assert "recipe: quality" not in err and "soft labels" not in err
