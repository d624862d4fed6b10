"""Two processes under torchrun (gloo on CPU): one run, published once, by rank 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tweetdomains.registry import Registry
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore


@pytest.mark.slow
def test_torchrun_two_cpu_processes_train_and_publish_once(tmp_path: Path) -> None:
    data = tmp_path / "records.jsonl"
    data.write_text("".join(r.to_json() + "\n" for r in generate(400, seed=4)), encoding="utf-8")
    store = tmp_path / "store"
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port"]
    argv += [str(free_port()), "-m", "tweetdomains", "train", "--store", str(store), "--data", str(data)]
    argv += ["--epochs", "2", "--embedding-dim", "8", "--hidden-dim", "8", "--device", "cpu", "--no-progress"]
    argv += ["--recipe", "word", "--run-id", "ddp-run", "--threads", "1"]
    # The quality recipe's training parts: each rank averages, ranks and refits in step.
    argv += ["--pos-weight", "sqrt", "--rank-loss-weight", "0.5", "--ema-decay", "0.9", "--refit"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 2  # both ranks finish and report
    assert all(line["run_id"] == "ddp-run" for line in lines)
    assert sum(line["published"] for line in lines) == 1
    registry = Registry(LocalStore(store))
    assert registry.runs() == ["ddp-run"]
    metrics = registry.json_artifact("ddp-run", "metrics.json")
    assert metrics["world_size"] == 2
