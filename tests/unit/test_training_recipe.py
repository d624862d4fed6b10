"""The quality recipe's parts: ranking loss, weight averaging, pre-trained encoder, unfreezing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.unit.test_training import TINY as TRAINING_TINY
from tweetdomains.model import bce_loss, build_model
from tweetdomains.records import Record
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer import phase as phase_module
from tweetdomains_trainer.averaging import WeightAverage
from tweetdomains_trainer.checkpoint import load_checkpoint
from tweetdomains_trainer.encoder import load_pretrained
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.pretrain import pretrain
from tweetdomains_trainer.pretrain_options import PretrainOptions
from tweetdomains_trainer.recipes import DEFAULT_RECIPE, ORIGINAL, QUALITY, RECIPES
from tweetdomains_trainer.steps import make_optimizer, set_encoder_trainable
from tweetdomains_trainer.train import train

TINY: dict[str, Any] = {**TRAINING_TINY, "vocab": "word", "min_count": 1}


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return generate(400, seed=5)


@pytest.fixture
def data_file(tmp_path: Path, records: list[Record]) -> str:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    return str(path)


def initial_weights(monkeypatch: pytest.MonkeyPatch) -> dict[str, torch.Tensor]:
    """Filled with the model's weights as training starts (when its optimizer is made)."""
    seen: dict[str, torch.Tensor] = {}
    real = phase_module.make_optimizer

    def spy(model: torch.nn.Module, *args: Any) -> torch.optim.Optimizer:
        seen.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *args)

    monkeypatch.setattr(phase_module, "make_optimizer", spy)
    return seen


# ----------------------------------------------------------------------------- loss


def test_ranking_term_rewards_the_true_label_on_top_and_ignores_a_common_shift() -> None:
    targets = torch.tensor([[1.0, 0.0, 0.0]])
    right = torch.tensor([[2.0, 0.0, 0.0]])
    wrong = torch.tensor([[0.0, 2.0, 0.0]])
    ranked = bce_loss(rank_weight=1.0)
    plain = bce_loss()
    assert ranked(right, targets) < ranked(wrong, targets)
    # Only the ranking part is added: its value is the softmax cross-entropy towards label 0.
    expected = -torch.log_softmax(right, dim=1)[0, 0]
    assert torch.isclose(ranked(right, targets) - plain(right, targets), expected)
    # A row without a true label adds nothing to the ranking part.
    empty = torch.zeros(1, 3)
    assert torch.isclose(ranked(right, empty), plain(right, empty))


def test_ranking_term_shares_a_multi_label_target_evenly() -> None:
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    logits = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    extra = bce_loss(rank_weight=2.0)(logits, targets) - bce_loss()(logits, targets)
    log_probs = torch.log_softmax(logits, dim=1)[0]
    assert torch.isclose(extra, -2.0 * (0.5 * log_probs[0] + 0.5 * log_probs[1]))


# ----------------------------------------------------------------------------- weight averaging


def test_weight_average_follows_the_weights_at_its_decay() -> None:
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.75)
    with torch.no_grad():
        model.weight.fill_(4.0)
    average.update(model)
    assert torch.allclose(average.state["weight"], torch.full((1, 2), 1.0))  # 0.75 * 0 + 0.25 * 4
    with average.swapped_in(model):
        assert torch.allclose(model.weight, torch.full((1, 2), 1.0))
    assert torch.allclose(model.weight, torch.full((1, 2), 4.0))  # its own weights come back


def test_an_averaged_run_publishes_the_averaged_weights_and_resumes_them(
    tmp_path: Path, data_file: str
) -> None:
    options = TrainOptions(store=str(tmp_path / "store"), data=[data_file], ema_decay=0.9, **TINY)
    result = train(options)
    assert result.published and result.metrics["epochs_run"] == 2
    # The checkpoint of a stopped averaged run carries the average, so resume continues it.
    stopped = TrainOptions(
        store=str(tmp_path / "store2"),
        data=[data_file],
        ema_decay=0.9,
        run_id="averaged",
        stop_after_epochs=1,
        **TINY,
    )
    assert not train(stopped).completed
    state = load_checkpoint(LocalStore(tmp_path / "store2"), "averaged")
    assert state.average and state.epoch == 1


# ----------------------------------------------------------------------------- pre-trained encoder


def _pretrained(tmp_path: Path, data_file: str) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    pretrain(
        PretrainOptions(
            store=str(store.root),
            data=[data_file],
            init_embeddings="none",
            embedding_dim=12,
            hidden_dim=12,
            min_count=1,
            batch_size=32,
            progress=False,
            run_id="lm-test",
        ),
        store,
    )
    return store


def test_init_from_a_pretrained_encoder_uses_its_vocabulary_and_weights(
    tmp_path: Path, data_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _pretrained(tmp_path, data_file)
    encoder = load_pretrained(store, "latest")
    seen = initial_weights(monkeypatch)
    options = TrainOptions(store=str(store.root), data=[data_file], init_from="latest", **TINY)
    result = train(options)
    assert result.encoded.vocab == encoder.vocab
    for name, tensor in encoder.state.items():  # the model started from the encoder's tensors
        assert torch.equal(seen[name], tensor)
    assert result.published


def test_init_from_refuses_an_encoder_of_another_shape(tmp_path: Path, data_file: str) -> None:
    store = _pretrained(tmp_path, data_file)
    options = TrainOptions(
        store=str(store.root), data=[data_file], init_from="lm-test", **{**TINY, "hidden_dim": 20}
    )
    with pytest.raises(ValueError, match="hidden_dim 12"):
        train(options)
    with pytest.raises(ValueError, match="--init-embeddings"):
        TrainOptions(init_from="latest", init_embeddings="minilm")
    with pytest.raises(ValueError, match="not found"):
        train(TrainOptions(store=str(tmp_path / "empty"), data=[data_file], init_from="nope", **TINY))


def test_encoder_learning_rate_scale_and_frozen_epochs(
    tmp_path: Path, data_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build_model(TrainOptions(**TINY).model_config(50, 3))
    optimizer = make_optimizer(model, 0.01, 0.01, encoder_lr_scale=0.25)
    rates = sorted(group["lr"] for group in optimizer.param_groups)
    assert rates == [0.0025, 0.0025, 0.01]
    set_encoder_trainable(model, False)
    assert not any(p.requires_grad for p in model.recurrent.parameters())
    assert all(p.requires_grad for p in model.head.parameters())

    initial = initial_weights(monkeypatch)
    # Frozen for every epoch: the encoder ends as it started, the head does not.
    options = TrainOptions(
        store=str(tmp_path / "store"), data=[data_file], freeze_epochs=2, publish=False, **TINY
    )
    trained = train(options).model.state_dict()
    assert torch.equal(trained["embedding.weight"], initial["embedding.weight"])
    assert torch.equal(trained["recurrent.weight_hh_l0"], initial["recurrent.weight_hh_l0"])
    assert not torch.equal(trained["head.1.weight"], initial["head.1.weight"])


def test_recipes_are_valid_options() -> None:
    for name, values in RECIPES.items():
        TrainOptions(**values, recipe=name)
    assert QUALITY["pos_weight"] == "sqrt" and ORIGINAL["pooling"] == "last"


# ----------------------------------------------------------------------------- refit


def test_refit_publishes_a_model_trained_on_train_and_validation(tmp_path: Path, data_file: str) -> None:
    held_out = train(TrainOptions(store=str(tmp_path / "a"), data=[data_file], publish=False, **TINY))
    refit = train(
        TrainOptions(store=str(tmp_path / "b"), data=[data_file], publish=False, refit=True, **TINY)
    )
    # Same seed and data: the validation figures and thresholds are the held-out model's ...
    assert refit.metrics["validation"] == held_out.metrics["validation"]
    assert (refit.thresholds == held_out.thresholds).all()
    # ... while the model itself was trained again on more rows, so its weights differ.
    assert not torch.equal(refit.model.head[1].weight, held_out.model.head[1].weight)
    assert refit.metrics["train_seconds"] > 0


# ----------------------------------------------------------------------------- the default


def test_train_without_a_recipe_trains_the_quality_recipe(
    tmp_path: Path, data_file: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    # A small subset and a narrow recurrent layer keep it quick; every other value is the recipe's.
    argv = ["train", "--store", store, "--data", data_file, "--epochs", "1", "--hidden-dim", "16"]
    assert cli_main([*argv, "--no-progress", "--run-id", "plain"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["run_id"] == "plain"
    registry = Registry(LocalStore(store))
    metrics = json.loads(registry.artifact("plain", "metrics.json"))
    trained = json.loads(registry.artifact("plain", "config.json"))["training"]
    assert metrics["lineage"]["recipe"] == DEFAULT_RECIPE == "quality"
    for name, value in QUALITY.items():
        if name not in ("epochs", "hidden_dim"):
            assert trained[name] == value, name
    assert trained["vocab"] == "wordpiece" and trained["init_embeddings"] == "minilm" and trained["refit"]
