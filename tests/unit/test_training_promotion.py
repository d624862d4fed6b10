"""Champion/challenger: a new run is compared with the served best on the new run's validation
split (the champion re-scored there), and `tweetdomains promote RUN` promotes on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_records
from tweetdomains.records import Record
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_cli.main import main as cli_main
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.train import train

# Small enough for a busy CPU, big enough to learn the toy stream (val micro-F1 ~0.95 in 8 epochs).
TINY = {
    "embedding_dim": 32,
    "hidden_dim": 32,
    "recurrent_layers": 1,
    "linear_layers": 1,
    "batch_size": 16,
    "min_count": 1,
    "patience": 20,
    "progress": False,
    "lr": 0.02,
}


def _renamed(records: list[Record], keep: int) -> list[Record]:
    """Other data: the same kind of tweets, but only ``keep`` of the toy domains keep their
    names (the rest are labels the champion never saw)."""
    names = sorted({d for r in records for d in r.domains})
    kept = set(names[:keep])
    return [
        Record(text=r.text, domains=tuple(sorted(d if d in kept else f"Other {d}" for d in r.domains)))
        for r in records
    ]


def _options(store: Path, data: str, **kw: Any) -> TrainOptions:
    return TrainOptions(store=str(store), data=[data], **{**TINY, **kw})


def test_a_challenger_on_new_data_beats_a_toy_champion_perfect_on_its_own(tmp_path: Path) -> None:
    store = tmp_path / "store"
    toy = write_records(tmp_path / "toy.jsonl", generate(600, seed=3))
    champion = train(_options(store, toy, epochs=10))
    assert champion.promoted
    assert champion.metrics["val_micro_f1"] >= 0.9  # the toy scores (nearly) perfectly on its own data

    real = write_records(tmp_path / "other.jsonl", _renamed(generate(600, seed=8), keep=3))
    challenger = train(_options(store, real, epochs=5, seed=4))
    # Its own validation figure is below the champion's 1.0, yet it wins on the same tweets.
    assert challenger.metrics["val_micro_f1"] < champion.metrics["val_micro_f1"]
    assert challenger.promoted
    registry = Registry(LocalStore(store))
    assert registry.best()["run_id"] == challenger.run_id

    promotion = registry.json_artifact(challenger.run_id, "metrics.json")["promotion"]
    assert promotion["promoted"] is True
    assert promotion["champion"]["run_id"] == champion.run_id
    assert promotion["champion"]["n"] == promotion["challenger"]["n"] == len(challenger.encoded.validation)
    assert promotion["champion"]["micro_f1"] < promotion["challenger"]["micro_f1"]
    assert promotion["changes"]["data_changed"] is True
    assert promotion["changes"]["labels_new"]  # the renamed domains
    assert "label set changed" in promotion["reason"] and "data_sha256" in promotion["reason"]
    assert champion.run_id in promotion["reason"]
    report = registry.artifact(challenger.run_id, "report.md").decode()
    assert "label set changed" in report
    assert json.loads(challenger.summary_line())["promotion"] == promotion["reason"]


def test_a_challenger_that_loses_on_its_own_split_is_kept_out_with_the_reason(tmp_path: Path) -> None:
    store = tmp_path / "store"
    data = write_records(tmp_path / "toy.jsonl", generate(500, seed=11))
    good = train(_options(store, data, epochs=5))
    worse = train(_options(store, data, epochs=1, lr=1e-5, seed=5))
    assert worse.published and not worse.promoted
    promotion = worse.metrics["promotion"]
    assert promotion["promoted"] is False and "does not beat" in promotion["reason"]
    assert promotion["changes"]["data_changed"] is False and not promotion["changes"]["labels_new"]
    assert Registry(LocalStore(store)).best()["run_id"] == good.run_id


def test_promote_command_makes_a_run_the_best_on_purpose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    data = write_records(tmp_path / "toy.jsonl", generate(400, seed=12))
    first = train(_options(store, data, epochs=3))
    second = train(_options(store, data, epochs=1, lr=1e-5, seed=6))
    assert not second.promoted
    assert cli_main(["promote", "--store", str(store), second.run_id]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out == {
        "run_id": second.run_id,
        "promoted": True,
        "previous_best": first.run_id,
        "reason": "promoted by hand (tweetdomains promote)",
    }
    assert Registry(LocalStore(store)).best()["run_id"] == second.run_id
    assert cli_main(["promote", "--store", str(store), "run-nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run-nope" in err[0] and "Traceback" not in err[0]
