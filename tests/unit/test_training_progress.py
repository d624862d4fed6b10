"""What a job prints: bars on a terminal, one line per epoch and a heartbeat elsewhere; lineage."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from tweetdomains import codecs
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.progress import Progress
from tweetdomains_trainer.train import train

TINY = {
    "embedding_dim": 8,
    "hidden_dim": 8,
    "recurrent_layers": 1,
    "linear_layers": 1,
    "batch_size": 64,
    "epochs": 1,
    "lr": 0.01,
}
LINEAGE_KEYS = {
    "store",
    "raw_batches",
    "raw_first_key",
    "raw_last_key",
    "data_path",
    "records",
    "data_sha256",
    "recipe",
    "git_commit",
    "label_counts",
}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_a_pass_prints_heartbeat_lines_and_no_carriage_returns() -> None:
    stream = io.StringIO()
    progress = Progress(True, stream, heartbeat_seconds=0.0)
    losses: list[float] = []
    for item in progress.track(list(range(5)), "refit epoch 1/2", losses):
        losses.append(float(item))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 and "\r" not in stream.getvalue()
    assert lines[-1].startswith("refit epoch 1/2: batch 5/5, loss 2.0000")


def test_off_a_terminal_a_short_pass_prints_nothing_until_the_heartbeat_is_due() -> None:
    stream = io.StringIO()
    assert list(Progress(True, stream, heartbeat_seconds=3600).track([1, 2, 3], "epoch 1/1")) == [1, 2, 3]
    assert stream.getvalue() == ""


def test_on_a_terminal_a_pass_is_a_live_bar() -> None:
    stream = Terminal()
    assert list(Progress(True, stream).track(list(range(30)), "epoch 1/3", [0.5])) == list(range(30))
    assert "\r" in stream.getvalue() and "epoch 1/3" in stream.getvalue()


def test_progress_off_prints_nothing_and_logs_the_messages(caplog: pytest.LogCaptureFixture) -> None:
    stream = Terminal()
    progress = Progress(False, stream, heartbeat_seconds=0.0)
    with caplog.at_level(logging.INFO, logger="tweetdomains_trainer"):
        progress.say("hello")
        assert list(progress.track([1, 2], "epoch")) == [1, 2]
    assert stream.getvalue() == ""
    assert [r.getMessage() for r in caplog.records] == ["hello"]


def test_a_job_off_a_terminal_prints_one_line_per_epoch_and_refit_epoch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "records.jsonl"
    data.write_text("".join(r.to_json() + "\n" for r in generate(300, seed=3)), encoding="utf-8")
    options = TrainOptions(
        store=str(tmp_path / "store"), data=[str(data)], publish=False, refit=True, **{**TINY, "epochs": 2}
    )
    result = train(options)
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    assert "\r" not in err
    # (a slow machine may add heartbeat lines "epoch 1/2: batch ...": not counted)
    epoch_lines = [line for line in err.splitlines() if re.match(r"epoch \d+/\d+: train loss", line)]
    assert len(epoch_lines) == result.metrics["epochs_run"]
    refit_lines = [line for line in err.splitlines() if re.match(r"refit epoch \d+/\d+: train loss", line)]
    assert len(refit_lines) == result.metrics["best_epoch"] >= 1
    # A --data run's lineage names the file, not raw batches.
    lineage = result.metrics["lineage"]
    assert set(lineage) == LINEAGE_KEYS
    assert lineage["data_path"] == "records.jsonl" and lineage["raw_batches"] is None
    assert lineage["raw_first_key"] is None and lineage["recipe"] == "default"


def test_a_published_run_records_its_lineage(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    batch = generate(400, seed=5)
    keys = ["raw/2026/11/29/01/a.jsonl.gz", "raw/2026/11/29/02/b.jsonl.gz"]
    store.put(keys[0], codecs.write_jsonl_gz(batch[:200]))
    store.put(keys[1], codecs.write_jsonl_gz(batch[200:]))
    result = train(TrainOptions(store=str(store.root), progress=False, **TINY))
    metrics = json.loads(Registry(store).artifact(result.run_id, "metrics.json"))
    lineage = metrics["lineage"]
    assert set(lineage) == LINEAGE_KEYS
    assert lineage["store"] == store.uri and lineage["raw_batches"] == 2
    assert (lineage["raw_first_key"], lineage["raw_last_key"]) == tuple(keys)
    assert lineage["records"] == 400 and lineage["data_path"] is None
    assert len(lineage["data_sha256"]) == 64
    train_counts = dict(zip(result.encoded.labels, result.encoded.train.labels.sum(axis=0), strict=True))
    assert lineage["label_counts"] == {k: int(v) for k, v in train_counts.items()}
    assert lineage["git_commit"] is None or len(lineage["git_commit"]) == 40
