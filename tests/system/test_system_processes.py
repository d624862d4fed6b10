"""The deployment as processes: what compose runs in containers, started here side by side.

A real Redis and an S3 server on loopback; the collector replaying real X API payloads into
S3; the trainer (short config) publishing a model; the API serving it with the Redis cache.
Then the trainer publishes a better run and the API switches to it under load without one
failed request. Commands and variables are the ones docker-compose.yml gives the containers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import RedisServer, S3Server, require_data
from tests.integration.api_helpers import ApiProcess
from tweetdomains.registry import Registry
from tweetdomains.store import open_store

REPLAY = [
    "QUT-Digital-Observatory__tweetexploR/auspol.jsonl",
    "DocNow__twarc-csv/test-data/kpop.jsonl",
    "cjbarrie__academictwitteR/tests/testthat/api.twitter.com/2/tweets/search/*.jsonl",
]


def _tweetdomains(args: list[str], env: dict[str, str], log: Path, timeout: float = 600) -> str:
    with log.open("wb") as out:
        result = subprocess.run(
            [sys.executable, "-m", "tweetdomains", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    text = log.read_text(errors="replace")
    assert result.returncode == 0, text[-3000:]
    return text


@pytest.mark.slow
def test_collect_train_serve_and_switch_to_a_better_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = require_data("raw")
    s3 = S3Server()
    s3.start()
    redis = RedisServer(tmp_path)
    api: ApiProcess | None = None
    try:
        redis.start()
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        bucket = s3.create_bucket("tweetdomains")
        store = f"s3://{bucket}/store"
        env = {
            **os.environ,
            **s3.env(),
            "TWEETDOMAINS_STORE": store,
            "TWEETDOMAINS_REDIS_URL": redis.url,
            "TWEETDOMAINS_SPOOL_DIR": str(tmp_path / "spool"),
            "TWEETDOMAINS_LOG_FORMAT": "json",
        }
        sources = ",".join(str(raw / pattern) for pattern in REPLAY)
        collected = _tweetdomains(
            ["collect", "--source", f"replay:{sources}", "--batch-records", "500"],
            env,
            tmp_path / "collect.log",
        )
        counts = json.loads(collected.strip().splitlines()[-1])
        s3_store = open_store(store)
        batches = list(s3_store.list("raw/"))
        assert len(batches) >= 2 and counts["kept"] > 1000, counts

        small = [
            "train",
            "--recipe",
            "word",
            "--epochs",
            "1",
            "--embedding-dim",
            "16",
            "--hidden-dim",
            "16",
            "--no-progress",
        ]
        _tweetdomains([*small, "--seed", "1"], env, tmp_path / "train1.log")
        registry = Registry(s3_store)
        first = registry.resolve("best")

        api = ApiProcess(store, env={**env, "TWEETDOMAINS_RELOAD_INTERVAL_S": "0.5"}).start(tmp_path)
        answer = httpx.post(
            api.base + "/classify", json={"text": "Voting in the federal election today #auspol"}
        )
        assert answer.status_code == 200 and answer.json()["model_version"] == first
        assert httpx.get(api.base + "/readyz").json()["cache"] == {"backend": "redis", "status": "ok"}

        failures: list[str] = []
        versions: set[str] = set()

        async def load(stop: asyncio.Event) -> None:
            async with httpx.AsyncClient(base_url=api.base, timeout=10) as http:
                i = 0
                while not stop.is_set():
                    i += 1
                    r = await http.post(
                        "/classify", json={"text": f"the prime minister spoke about {i % 50}"}
                    )
                    if r.status_code != 200:
                        failures.append(f"{r.status_code}: {r.text[:100]}")
                    else:
                        versions.add(r.json()["model_version"])
                    await asyncio.sleep(0.02)  # steady traffic that leaves the trainer CPU to work

        async def retrain_under_load() -> str:
            stop = asyncio.Event()
            clients = [asyncio.create_task(load(stop)) for _ in range(8)]
            better = [
                *small[:1],
                "--epochs",
                "6",
                "--embedding-dim",
                "48",
                "--hidden-dim",
                "48",
                "--no-progress",
            ]
            await asyncio.to_thread(_tweetdomains, better, env, tmp_path / "train2.log")
            second = await asyncio.to_thread(registry.resolve, "best")
            deadline = time.monotonic() + 30
            while second not in versions and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*clients)
            return second

        second = asyncio.run(retrain_under_load())
        assert second != first, "the longer run beat the one-epoch run on validation"
        assert failures == []
        assert versions == {first, second}
        assert httpx.get(api.base + "/model").json()["run_id"] == second
    finally:
        if api is not None:
            api.stop()
        redis.stop()
        s3.stop()
