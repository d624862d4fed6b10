"""A killed training job, resumed from its last checkpoint, ends with the uninterrupted run's weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors

from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_trainer.checkpoint import load_checkpoint
from tweetdomains_trainer.options import TrainOptions
from tweetdomains_trainer.train import train

RECIPE = {
    "embedding_dim": 12,
    "hidden_dim": 12,
    "recurrent_layers": 2,
    "linear_layers": 2,
    "dropout": 0.3,  # dropout draws from the RNG every step: resume must restore it exactly
    "batch_size": 16,
    "epochs": 4,
    "patience": 10,
    "progress": False,
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in generate(500, seed=21)), encoding="utf-8")
    return str(path)


def _weights(store: LocalStore, run_id: str) -> dict[str, torch.Tensor]:
    return load_safetensors(Registry(store).artifact(run_id, "model.safetensors"))


def test_stopped_then_resumed_equals_uninterrupted_bitwise(tmp_path: Path, data_file: str) -> None:
    store_uri = str(tmp_path / "store")
    whole = train(TrainOptions(store=store_uri, data=[data_file], **RECIPE))

    stopped = train(
        TrainOptions(store=store_uri, data=[data_file], run_id="resumed", stop_after_epochs=1, **RECIPE)
    )
    assert not stopped.completed and not stopped.published
    state = load_checkpoint(LocalStore(store_uri), "resumed")
    assert state.epoch == 1 and len(state.history) == 1

    resumed = train(TrainOptions(store=store_uri, run_id="resumed", resume=True, progress=False))
    assert resumed.published and len(resumed.history) == len(whole.history)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in whole.history]
    assert (resumed.thresholds == whole.thresholds).all()


def test_sigkilled_job_resumes_to_the_same_weights(tmp_path: Path, data_file: str) -> None:
    store_uri = str(tmp_path / "store")
    store = LocalStore(store_uri)
    whole = train(TrainOptions(store=store_uri, data=[data_file], **{**RECIPE, "epochs": 6}))

    argv = [sys.executable, "-m", "tweetdomains", "train", "--store", store_uri, "--data", data_file]
    argv += ["--recipe", "word", "--run-id", "killed", "--no-progress", "--epochs", "6", "--patience", "10"]
    argv += ["--embedding-dim", "12", "--hidden-dim", "12", "--recurrent-layers", "2", "--linear-layers", "2"]
    argv += ["--dropout", "0.3", "--batch-size", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not store.exists("checkpoints/killed/last.safetensors"):
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    state = load_checkpoint(store, "killed")  # state.json may not be written yet: read the atomic one
    if state.epoch >= 6:
        pytest.skip("the job finished its last epoch before it could be killed")
    assert "killed" not in Registry(store).runs()

    resume = [sys.executable, "-m", "tweetdomains", "train", "--store", store_uri, "--resume"]
    resume += ["--run-id", "killed", "--no-progress"]
    done = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["run_id"] == "killed" and summary["published"]
    resumed = _weights(store, "killed")
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=1e-6)
