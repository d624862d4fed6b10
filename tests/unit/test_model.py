"""The recurrent classifiers: shapes, packing, every knob, and the safetensors round trip."""

from __future__ import annotations

import pytest
import torch

from tweetdomains.model import (
    InputProjections,
    LSTMClassifier,
    ModelConfig,
    RNNClassifier,
    bce_loss,
    build_model,
    model_from_bytes,
    model_to_bytes,
    pad_batch,
    reversed_positions,
)


def _config(**kw: object) -> ModelConfig:
    base: dict[str, object] = {
        "vocab_size": 50,
        "num_labels": 7,
        "embedding_dim": 8,
        "hidden_dim": 6,
        "recurrent_layers": 2,
        "linear_layers": 2,
        "dropout": 0.0,
    }
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
@pytest.mark.parametrize("pooling", ["last", "max", "mean_max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_one_logit_per_label_for_every_shape(kind: str, pooling: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = build_model(_config(kind=kind, pooling=pooling, bidirectional=bidirectional)).eval()
    assert isinstance(model, LSTMClassifier if kind == "lstm" else RNNClassifier)
    ids, lengths = pad_batch([[2, 3, 4], [5], [6, 7, 8, 9, 10]])
    assert model(ids, lengths).shape == (3, 7)


@pytest.mark.parametrize("pooling", ["last", "max", "mean_max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_never_changes_a_tweets_logits(pooling: str, bidirectional: bool) -> None:
    """Packed sequences: a tweet scores the same alone or beside a longer one."""
    torch.manual_seed(1)
    model = build_model(_config(pooling=pooling, bidirectional=bidirectional)).eval()
    alone_ids, alone_len = pad_batch([[4, 5, 6]])
    mixed_ids, mixed_len = pad_batch([[4, 5, 6], [7, 8, 9, 10, 11, 12, 13]])
    with torch.no_grad():
        alone = model(alone_ids, alone_len)
        mixed = model(mixed_ids, mixed_len)
    torch.testing.assert_close(alone[0], mixed[0])


def test_linear_layers_and_recurrent_layers_are_what_the_config_says() -> None:
    model = build_model(_config(kind="lstm", recurrent_layers=3, linear_layers=3))
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    assert model.recurrent.num_layers == 3


def test_weights_round_trip_through_safetensors_bytes() -> None:
    torch.manual_seed(2)
    model = build_model(_config()).eval()
    clone = model_from_bytes(model.config, model_to_bytes(model))
    ids, lengths = pad_batch([[2, 3], [4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids, lengths), clone(ids, lengths))


def test_weights_for_another_shape_are_refused() -> None:
    data = model_to_bytes(build_model(_config(hidden_dim=6)))
    with pytest.raises(RuntimeError):
        model_from_bytes(_config(hidden_dim=9), data)


@pytest.mark.parametrize(
    "bad",
    [{"kind": "gru"}, {"pooling": "attention"}, {"dropout": 1.0}, {"linear_layers": 0}, {"hidden_dim": 0}],
)
def test_bad_configs_are_rejected_with_a_reason(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _config(**bad)


def test_config_json_round_trip_and_unknown_fields() -> None:
    import json

    config = _config(bidirectional=True)
    assert ModelConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="unknown"):
        ModelConfig.from_dict({**json.loads(config.to_json()), "ninp": 3})


def test_pos_weight_makes_missed_positives_cost_more() -> None:
    logits = torch.tensor([[-2.0, -2.0]])
    target = torch.tensor([[1.0, 1.0]])
    plain = bce_loss()(logits, target)
    weighted = bce_loss(torch.tensor([4.0, 4.0]))(logits, target)
    assert weighted > plain * 3


def test_empty_tweet_gets_one_unknown_step() -> None:
    ids, lengths = pad_batch([[], [3, 4]])
    assert lengths.tolist() == [1, 2]
    assert ids[0, 0] == 1


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_bidirectional_outputs_equal_a_packed_batch(kind: str, layers: int) -> None:
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    config = ModelConfig(
        kind=kind,  # type: ignore[arg-type]
        vocab_size=30,
        num_labels=3,
        embedding_dim=8,
        hidden_dim=6,
        recurrent_layers=layers,
        bidirectional=True,
    )
    model = build_model(config).eval()
    lengths = torch.tensor([5, 2, 7, 1])
    ids = torch.zeros(4, 7, dtype=torch.long)
    for row, length in enumerate(lengths.tolist()):
        ids[row, :length] = torch.randint(2, 30, (length,))
    embedded = model.embedding(ids)
    packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
    reference, _ = pad_packed_sequence(model.recurrent(packed)[0], batch_first=True, total_length=7)
    ours = model.recurrent_outputs(embedded, lengths)
    # Our backward half is in its reading order: put it back in token order to compare.
    back = reversed_positions(lengths, 7)[:, :, None].expand(-1, -1, 6)
    ours = torch.cat([ours[..., :6], ours[..., 6:].gather(1, back)], dim=2)
    valid = (torch.arange(7)[None, :] < lengths[:, None]).unsqueeze(-1)
    assert torch.allclose(ours * valid, reference * valid, atol=1e-6)
    # Without padding, the library's own kernel runs; its halves come back the same way.
    full = model.recurrent_outputs(embedded, torch.full((4,), 7))
    assert torch.allclose(full[..., 6:], model.recurrent(embedded)[0][..., 6:].flip(1), atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "max", "mean_max"])
def test_serving_projections_give_the_models_own_logits(kind: str, bidirectional: bool, pooling: str) -> None:
    torch.manual_seed(1)
    config = ModelConfig(
        kind=kind,  # type: ignore[arg-type]
        vocab_size=40,
        num_labels=4,
        embedding_dim=10,
        hidden_dim=7,
        recurrent_layers=1,
        bidirectional=bidirectional,
        pooling=pooling,  # type: ignore[arg-type]
    )
    model = build_model(config).eval()
    ids, lengths = pad_batch([[5, 9, 3], [7], [2, 8, 11, 30, 4, 6], []])
    with torch.no_grad():
        plain = model(ids, lengths)
        assert model.prepare_for_serving()
        fast = model(ids, lengths)
    assert torch.allclose(fast, plain, atol=1e-6)


def test_serving_projections_take_the_batch_longest_first() -> None:
    model = build_model(ModelConfig(vocab_size=40, num_labels=3, hidden_dim=5, recurrent_layers=1)).eval()
    assert model.prepare_for_serving() and model.projections is not None
    ids, lengths = pad_batch([[5, 9], [7, 8, 11, 30]])
    with pytest.raises(ValueError, match="longest first"):
        model.projections.pooled(ids, lengths, "mean_max")
    # The model itself sorts the batch, and answers in the caller's order.
    with torch.no_grad():
        both = model(ids, lengths)
        assert torch.allclose(both[0], model(*pad_batch([[5, 9]]))[0], atol=1e-6)
        assert torch.allclose(both[1], model(*pad_batch([[7, 8, 11, 30]]))[0], atol=1e-6)


def test_training_mode_never_reads_the_serving_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    model = build_model(
        ModelConfig(vocab_size=40, num_labels=2, embedding_dim=8, hidden_dim=4, recurrent_layers=1)
    )
    assert model.prepare_for_serving() and model.projections is not None

    def stale(*_: object) -> torch.Tensor:
        raise AssertionError("tables read in training mode")

    monkeypatch.setattr(model.projections, "pooled", stale)
    ids, lengths = pad_batch([[5, 9, 3], [7]])
    model.train()
    assert model(ids, lengths).shape == (2, 2)  # the weights being trained, not the tables
    model.eval()
    with pytest.raises(AssertionError, match="tables read"):
        model(ids, lengths)


def test_serving_projections_stay_off_where_they_do_not_fit() -> None:
    stacked = build_model(
        ModelConfig(vocab_size=40, num_labels=2, embedding_dim=8, hidden_dim=4, recurrent_layers=2)
    )
    assert not stacked.prepare_for_serving() and stacked.projections is None
    huge = ModelConfig(
        vocab_size=2_000_000, num_labels=2, hidden_dim=64, recurrent_layers=1, bidirectional=True
    )
    assert not InputProjections.fits(huge)


def test_bfloat16_serving_stays_close_and_independent_of_the_batch() -> None:
    torch.manual_seed(2)
    config = ModelConfig(
        vocab_size=60, num_labels=5, embedding_dim=16, hidden_dim=32, recurrent_layers=1, bidirectional=True
    )
    model = build_model(config).eval()
    rows = [[5, 9, 3], [7], [2, 8, 11, 30, 4, 6, 44, 51], [12, 13]]
    ids, lengths = pad_batch(rows)
    with torch.no_grad():
        exact = torch.sigmoid(model(ids, lengths))
        assert model.prepare_for_serving("bfloat16")
        served = torch.sigmoid(model(ids, lengths))
        alone = [torch.sigmoid(model(*pad_batch([row]))) for row in rows]
    assert torch.allclose(served, exact, atol=5e-3) and not torch.equal(served, exact)
    # Each tweet's answer is the same whatever else shares its batch.
    assert torch.allclose(torch.cat(alone), served, atol=1e-6)


def test_an_unknown_serving_precision_is_refused() -> None:
    for layers in (1, 2):  # with serving tables or without
        model = build_model(_config(recurrent_layers=layers))
        with pytest.raises(ValueError, match="float32, bfloat16"):
            model.prepare_for_serving("float16")  # type: ignore[arg-type]


def test_the_config_defaults_are_what_train_builds_without_flags() -> None:
    """One source of defaults: the trainer's options take their architecture from the config."""
    from tweetdomains_trainer.options import TrainOptions

    built = TrainOptions().model_config(vocab_size=2, num_labels=1)
    assert built == ModelConfig()
    assert (built.hidden_dim, built.recurrent_layers, built.bidirectional) == (128, 1, True)
