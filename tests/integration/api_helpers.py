"""Test helpers for the API: publish small models into a store, run the app on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

from tests.conftest import free_port
from tweetdomains.model import ModelConfig, build_model
from tweetdomains.predict import run_artifacts
from tweetdomains.registry import Registry, new_run_id
from tweetdomains.store import open_store
from tweetdomains.vocab import Vocabulary

LABELS = ["Brand", "Musician", "Person", "Sport", "Sports Team"]
WORDS = [
    "taylor",
    "swift",
    "album",
    "song",
    "goal",
    "match",
    "team",
    "arsenal",
    "nike",
    "shoes",
    "brand",
    "music",
]


def publish_model(
    store_uri: str,
    seed: int = 0,
    labels: list[str] | None = None,
    promote: bool = True,
    layers: int = 2,
    hidden: int = 16,
    lineage: dict[str, Any] | None = None,
) -> str:
    """A small random-weight LSTM published (and promoted) as a real run; ``hidden`` 512 makes
    a pass slow enough to queue requests behind it; ``lineage`` goes into metrics.json."""
    labels = labels or LABELS
    torch.manual_seed(seed)
    vocab = Vocabulary.build([WORDS, WORDS], min_count=1)
    config = ModelConfig(
        vocab_size=len(vocab),
        num_labels=len(labels),
        embedding_dim=16,
        hidden_dim=hidden,
        recurrent_layers=layers,
        bidirectional=layers == 1,
    )
    model = build_model(config)
    registry = Registry(open_store(store_uri))
    run_id = new_run_id(f"test{seed}")
    metrics: dict[str, Any] = {"val_micro_f1": 0.1 * seed}
    if lineage is not None:
        metrics["lineage"] = lineage
    registry.publish(run_id, run_artifacts(model, vocab, labels, np.full(len(labels), 0.5), metrics))
    if promote:
        registry.promote(run_id, "val_micro_f1", float(seed), force=True)
    return run_id


class ApiProcess:
    """`python -m tweetdomains serve` as a child process, the way operators run it."""

    def __init__(
        self, store_uri: str, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.store_uri = store_uri
        self.env = {**os.environ, "TWEETDOMAINS_RELOAD_INTERVAL_S": "0.3", **(env or {})}
        self.args = args or []
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def start(self, log_dir: Path, wait_ready: bool = True) -> ApiProcess:
        self.log_path = log_dir / f"api-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "tweetdomains",
            "serve",
            "--store",
            self.store_uri,
            "--port",
            str(self.port),
        ]
        self.process = subprocess.Popen(
            [*command, *self.args], env=self.env, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT
        )
        self.wait(ready=wait_ready)
        return self

    def wait(self, ready: bool = True, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        path = "/readyz" if ready else "/healthz"
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.logs()
            try:
                if httpx.get(self.base + path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"API not {'ready' if ready else 'up'} after {timeout}s\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def stop(self) -> int:
        if self.process is None:
            return 0
        self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process = None


def metric_value(text: str, name: str) -> float:
    """The value of one sample (``name`` with its labels, as /metrics writes it); 0 if absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_for(check: Any, timeout: float = 60, what: str = "condition") -> None:
    """Poll ``check()`` until true; generous timeouts, no timing asserts."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
