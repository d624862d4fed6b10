"""A new user's first hour: the synthetic demo, then the real-tweets demo in the same clone.

Each demo source gets its own store (``var/demo/<source>/store``), so the second demo serves the
model it trained on its replayed tweets, not the synthetic one left by the first. Tiny runs
(a few hundred tweets, one epoch): this checks what is served, not how well.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port, wait_ready, write_records
from tweetdomains.simulate import generate

DEMO = [sys.executable, "-m", "tweetdomains", "demo", "--limit", "300", "--epochs", "1"]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TWEETDOMAINS_", "AWS_"))}


def _serve_demo(clone: Path, args: list[str], log: Path) -> dict[str, Any]:
    """Run the demo until it serves; its ``/labels`` and ``/model``; then Ctrl-C."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*DEMO, "--port", str(port), *args], cwd=clone, env=_environment(), stdout=out, stderr=out
        )
        try:
            wait_ready(base, process, 300, log)
            return {"labels": httpx.get(f"{base}/labels").json(), "model": httpx.get(f"{base}/model").json()}
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _labels(answer: dict[str, Any]) -> list[str]:
    return list(answer["labels"])


@pytest.mark.slow
def test_the_replay_demo_after_the_synthetic_one_serves_its_own_model(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    # Real-looking tweets whose labels no synthetic tweet has: what is served shows its source.
    replayed = [
        replace(r, domains=tuple(f"Replayed {d}" for d in r.domains), domain_ids=())
        for r in generate(400, seed=11)
        if r.domains
    ]
    replay_file = write_records(tmp_path / "replay.jsonl", replayed)

    synthetic = _serve_demo(clone, [], tmp_path / "synthetic.log")
    real = _serve_demo(clone, ["--source", f"replay:{replay_file}"], tmp_path / "replay.log")

    assert _labels(synthetic) and not any(label.startswith("Replayed ") for label in _labels(synthetic))
    assert _labels(real) and all(label.startswith("Replayed ") for label in _labels(real))
    assert real["model"]["run_id"] != synthetic["model"]["run_id"]
    stores = sorted(p.name for p in (clone / "var" / "demo").iterdir())
    assert len(stores) == 2 and "simulate-7" in stores, stores
