"""Scenario 7: the training job killed mid-epoch and resumed, and a data file with corrupt lines.

Both run ``python -m tweetdomains train`` as real processes on a local store, with a tiny
model on synthetic records so the suite stays in its time budget.
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from reliability.harness import Proc, Row, child_env, kill_tree, wait_until
from tweetdomains.codecs import ParseStats, iter_records
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore

EPOCHS = 4
RECIPE = [
    "--recipe",
    "word",
    "--model",
    "lstm",
    "--embedding-dim",
    "16",
    "--hidden-dim",
    "16",
    "--recurrent-layers",
    "1",
]
RECIPE += ["--linear-layers", "1", "--dropout", "0.2", "--batch-size", "16", "--epochs", str(EPOCHS)]
RECIPE += ["--patience", "10", "--seed", "7", "--threads", "1", "--no-progress"]
METRICS = ("micro_f1", "macro_f1", "p_at_1", "n")


def _data(tmp_path: Path, n: int, name: str = "records.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(r.to_json() + "\n" for r in generate(n, seed=71)), encoding="utf-8")
    return path


def _train(args: list[str], tmp_path: Path, name: str, log_level: str = "WARNING") -> Proc:
    return Proc.tweetdomains(
        ["train", *args], child_env({"TWEETDOMAINS_LOG_LEVEL": log_level}), tmp_path, name
    )


@pytest.mark.scenario("7a trainer SIGKILL mid-epoch, --resume")
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_metrics(row: Row, tmp_path: Path) -> None:
    data = _data(tmp_path, 2400)
    store_uri = str(tmp_path / "store")
    store = LocalStore(store_uri)
    row.load = f"2,400 records, LSTM, {EPOCHS} epochs, CPU"
    row.faults = "SIGKILL mid-epoch 2, then --resume"

    whole = _train(
        ["--store", store_uri, "--data", str(data), "--run-id", "whole", *RECIPE], tmp_path, "whole"
    )
    try:
        assert whole.wait(120) == 0, whole.stderr()
    finally:
        kill_tree(whole)
    reference = whole.last_json()
    history = Registry(store).json_artifact("whole", "metrics.json")
    epoch_seconds = float(history.get("train_seconds", 4.0)) / EPOCHS

    argv = ["--store", store_uri, "--data", str(data), "--run-id", "killed", *RECIPE]
    killed = _train(argv, tmp_path, "killed")
    try:
        state_key = "checkpoints/killed/state.json"
        wait_until(lambda: store.exists(state_key) or not killed.alive(), 120, "the first checkpoint")
        assert killed.alive(), "the job ended before it could be killed"
        time.sleep(epoch_seconds / 2)  # half-way through the next epoch
        killed.signal(signal.SIGKILL)
        assert killed.wait(30) == -signal.SIGKILL
    finally:
        kill_tree(killed)
    state = json.loads(store.get(state_key))
    assert 1 <= state["epoch"] < EPOCHS, f"killed after epoch {state['epoch']}"
    assert "killed" not in Registry(store).runs()

    resumed = _train(
        ["--store", store_uri, "--resume", "--run-id", "killed", "--no-progress"], tmp_path, "resume"
    )
    try:
        assert resumed.wait(120) == 0, resumed.stderr()
    finally:
        kill_tree(resumed)
    final = resumed.last_json()
    row.figures = {
        "killed_after_epoch": state["epoch"],
        "micro_f1": final.get("micro_f1"),
        "reference_micro_f1": reference.get("micro_f1"),
    }
    assert final["published"]
    for key in METRICS:
        assert final[key] == pytest.approx(reference[key], abs=1e-6), key


@pytest.mark.scenario("7b training data with corrupt lines")
def test_corrupt_lines_are_counted_and_training_proceeds(row: Row, tmp_path: Path) -> None:
    path = _data(tmp_path, 900, "corrupt.jsonl")
    good = path.read_bytes().splitlines(keepends=True)
    corrupt = [
        b'{"id": "1", "text": "cut short\n',
        b"not json at all\n",
        b'{"id": 2, "text": 17, "domains": "Person"}\n',
        b"\xff\xfe\x00 binary \x00 garbage\n",
        b'{"text": "nested", "domains": [[["deep"]]]}\n',
        b"[1, 2, 3]\n",
        b'{"id": "3", "text": "ok", "domains": ["Person"]\n',
        b"\x00\x00\x00\n",
    ] * 4
    lines = list(good)
    for index, bad in enumerate(corrupt):
        lines.insert((index * 97) % len(lines), bad)
    path.write_bytes(b"".join(lines))
    row.load = f"{len(good)} good records + {len(corrupt)} corrupt lines, 1 epoch"
    row.faults = "broken JSON, wrong types, binary, NUL bytes"
    store_uri = str(tmp_path / "store")
    argv = ["--store", store_uri, "--data", str(path), *RECIPE, "--epochs", "1"]
    job = _train(argv, tmp_path, "train", log_level="INFO")
    try:
        assert job.wait(120) == 0, job.stderr()
    finally:
        kill_tree(job)
    summary = job.last_json()
    log_text = job.stderr(tail=200_000)
    match = re.search(r"bad lines (\d+)", log_text)
    assert match, "the job does not report bad lines: " + log_text[-2000:]
    bad_lines = int(match.group(1))
    row.figures = {"bad_lines_counted": bad_lines, "micro_f1": summary.get("micro_f1")}
    assert summary["published"]
    assert "Traceback" not in log_text
    expected = ParseStats()
    assert sum(1 for _ in iter_records(path, expected)) >= len(good)
    assert bad_lines == expected.bad_lines >= 5 * 4, "every undecodable line is counted"
