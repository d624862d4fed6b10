"""The new user's path: `tweetdomains demo` collects, trains and serves; then classify over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_ready
from tweetdomains.simulate import generate

DEMO = [sys.executable, "-m", "tweetdomains", "demo"]


@pytest.mark.slow
def test_demo_collects_trains_and_serves(tmp_path: Path) -> None:
    port = free_port()
    store = tmp_path / "store"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWEETDOMAINS_", "AWS_"))}
    log = (tmp_path / "demo.log").open("wb")
    process = subprocess.Popen(
        [*DEMO, "--store", str(store), "--port", str(port), "--limit", "3000", "--epochs", "3"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, timeout=600)
        batches = list(store.glob("raw/*/*/*/*/*.jsonl.gz"))
        assert len(batches) >= 2, "the collector wrote several batches"
        best = (store / "models" / "best.json").read_text()
        assert '"run_id"' in best

        response = httpx.post(
            f"{base}/classify", json={"text": "New album from my favourite singer out now 🎵"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= {"model_version", "domains", "predicted", "cached"}
        probabilities = [d["probability"] for d in body["domains"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert all(0.0 <= p <= 1.0 for p in probabilities)
        assert body["predicted"] and set(body["predicted"]) <= {d["name"] for d in body["domains"]}
        assert response.headers["X-Model-Version"] == body["model_version"]
        # The model learned the synthetic stream: on unseen tweets of it (another seed), the
        # top-ranked domain is mostly one of the true ones.
        unseen = [r for r in generate(200, seed=424242) if r.domains and r.lang == "en"][:100]
        batch = httpx.post(f"{base}/classify/batch", json={"texts": [r.text for r in unseen]}).json()
        hits = sum(
            res["domains"][0]["name"] in r.domains for r, res in zip(unseen, batch["results"], strict=True)
        )
        assert hits / len(unseen) > 0.6, f"P@1 {hits / len(unseen):.2f} on unseen synthetic tweets"

        again = httpx.post(f"{base}/classify", json={"text": "new album from my favourite singer out now 🎵"})
        assert again.json()["cached"] is True, "same text after normalization is served from the cache"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if process.returncode not in (0, -signal.SIGINT, 130):
            print((tmp_path / "demo.log").read_text(errors="replace")[-5000:])
