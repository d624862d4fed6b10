"""Scenarios 2, 3 and 4: the API process under sustained load, with Redis killed and restarted,
and with five model promotions (one corrupt) while 64 clients keep asking.

The load comes from ``reliability.load`` in its own process; the API is ``python -m
tweetdomains serve`` with its own ``redis-server``; models are tiny random-weight runs
published and promoted through the registry, as the trainer does.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from reliability.harness import (
    ROOT,
    ApiServer,
    Proc,
    RedisServer,
    Row,
    child_env,
    http_json,
    kill_tree,
    prom_sum,
    wait_until,
)
from reliability.load import texts
from reliability.models import METRIC, publish_tiny, tiny_artifacts
from tweetdomains.registry import WEIGHTS, Registry
from tweetdomains.store import LocalStore

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tweetdomains_api.cli") is None, reason="the API service is not there yet"
)

CLIENTS = 64
RSS_GROWTH_BOUND_MB = 64.0  # between the first and the last 10 s of the 60 s run
RELOAD_SECONDS = "0.5"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _api(tmp_path: Path, redis: RedisServer, first_run: str = "run-0") -> tuple[str, ApiServer]:
    store_uri = str(tmp_path / "store")
    publish_tiny(LocalStore(store_uri), first_run, seed=0, value=0.5)
    api = ApiServer(
        store_uri,
        tmp_path,
        redis_url=redis.url,
        env={"TWEETDOMAINS_RELOAD_INTERVAL_S": RELOAD_SECONDS, "TWEETDOMAINS_LOG_LEVEL": "WARNING"},
    )
    api.wait_ready(90)
    return store_uri, api


def _load(base: str, seconds: float, tmp_path: Path, name: str = "load") -> tuple[Proc, Path]:
    out = tmp_path / f"{name}.json"
    argv = [
        sys.executable,
        "-m",
        "reliability.load",
        "--base",
        base,
        "--clients",
        str(CLIENTS),
        "--seconds",
        str(seconds),
        "--out",
        str(out),
    ]
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return Proc(argv, env, tmp_path, name), out


def _finish(load: Proc, out: Path, seconds: float) -> dict[str, Any]:
    try:
        code = load.wait(seconds + 60)
    finally:
        kill_tree(load)
    assert code == 0, load.stderr()
    return dict(json.loads(out.read_text()))


class RssSampler:
    """The API process's resident memory (with any children), every half second."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                rss = self.process.memory_info().rss
                rss += sum(c.memory_info().rss for c in self.process.children(recursive=True))
            except psutil.Error:
                continue
            self.samples.append((time.monotonic(), rss / 2**20))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, start: float, end: float) -> float:
        values = [mb for t, mb in self.samples if start <= t <= end]
        return statistics.fmean(values) if values else 0.0


@pytest.mark.scenario("2 sustained load")
def test_sustained_load_has_no_errors_and_flat_memory(row: Row, tmp_path: Path, redis: RedisServer) -> None:
    seconds = 60.0
    _, api = _api(tmp_path, redis)
    row.load = f"{CLIENTS} clients x {seconds:.0f} s, 50% repeated texts, 10% batches of 8"
    row.faults = "none"
    try:
        with RssSampler(api.proc.pid) as rss:
            started = time.monotonic()
            load, out = _load(api.base, seconds, tmp_path)
            result = _finish(load, out, seconds)
            ended = time.monotonic()
        assert api.proc.alive(), api.proc.stderr()
    finally:
        api.stop()
    first = rss.window(started, started + 10)
    last = rss.window(ended - 10, ended)
    peak = max(mb for _, mb in rss.samples)
    row.requests, row.failed = result["sent"], result["failed"]
    row.figures = {
        "req_per_s": result["throughput"],
        "p50_ms": result["latency_ms"]["p50"],
        "p99_ms": result["latency_ms"]["p99"],
        "rss_first10s_mb": round(first, 1),
        "rss_last10s_mb": round(last, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_bound_mb": f"+{RSS_GROWTH_BOUND_MB:.0f}",
    }
    assert result["failed"] == 0, result["errors"]
    assert result["sent"] > CLIENTS * 10
    assert last - first < RSS_GROWTH_BOUND_MB, f"RSS grew {last - first:.1f} MiB"


def _hit_ratio(timeline: list[list[int]], start: float, end: float) -> float:
    hits = sum(h for t, _s, _f, h, _n in timeline if start <= t < end)
    singles = sum(n for t, _s, _f, _h, n in timeline if start <= t < end)
    return hits / singles if singles else 0.0


@pytest.mark.scenario("3 Redis killed and restarted under load")
def test_redis_killed_and_restarted_under_load(row: Row, tmp_path: Path, redis: RedisServer) -> None:
    seconds = 36.0
    _, api = _api(tmp_path, redis)
    row.load = f"{CLIENTS} clients x {seconds:.0f} s, 50% repeated texts"
    row.faults = "redis-server SIGKILLed at 10 s, restarted empty at 18 s"
    try:
        # The repeated pool is sent once first, so the cache holds it before the clock starts:
        # on a busy host the first 10 s alone cannot cover a 200-text pool.
        for text in texts()[0]:
            status, body = http_json(api.base + "/classify", {"text": text})
            assert status == 200, body
        load, out = _load(api.base, seconds, tmp_path)
        time.sleep(10)
        killed_at = time.time()
        redis.kill()
        time.sleep(4)
        readyz = http_json(api.base + "/readyz")[1]
        readyz_cache = readyz.get("cache", {}).get("status", "?") if isinstance(readyz, dict) else "?"
        time.sleep(4)
        restarted_at = time.time()
        redis.start()
        result = _finish(load, out, seconds)
        cache_errors = prom_sum(api.base, "tweetdomains_cache_total", result="error")
    finally:
        api.stop()
    timeline = result["timeline"]
    begin = timeline[0][0]
    end = timeline[-1][0]
    before = _hit_ratio(timeline, begin + 4, killed_at)
    during = _hit_ratio(timeline, killed_at + 1, restarted_at)
    after = _hit_ratio(timeline, end - 6, end)
    row.requests, row.failed = result["sent"], result["failed"]
    row.figures = {
        "hit_ratio_before": round(before, 2),
        "during_outage": round(during, 2),
        "last_6s": round(after, 2),
        "cache_errors_counted": int(cache_errors),
        "readyz_cache_while_down": readyz_cache,
        "p99_ms": result["latency_ms"]["p99"],
    }
    assert result["failed"] == 0, result["errors"]
    assert cache_errors > 0, "the API did not count the Redis outage"
    assert before > 0.2, "the cache never hit before the fault"
    assert after >= 0.8 * before, "the hit ratio did not recover after Redis came back"


def _corrupt_artifacts(seed: int) -> dict[str, bytes]:
    """A run whose manifest is complete and right, but whose weights are not safetensors."""
    artifacts = tiny_artifacts(seed)
    artifacts[WEIGHTS] = b"\x00corrupt weights\x00" * 64
    return artifacts


@pytest.mark.scenario("4 five promotions under load, one corrupt")
def test_hot_swaps_under_load_lose_no_request_and_refuse_the_corrupt_model(
    row: Row, tmp_path: Path, redis: RedisServer
) -> None:
    seconds = 40.0
    store_uri, api = _api(tmp_path, redis)
    registry = Registry(LocalStore(store_uri))
    plan = ["run-1", "run-2", "corrupt-3", "run-4", "run-5"]
    row.load = f"{CLIENTS} clients x {seconds:.0f} s"
    row.faults = "5 promotions 6 s apart; the 3rd has corrupt weights"
    served_after: dict[str, str] = {}
    try:
        load, out = _load(api.base, seconds, tmp_path)
        time.sleep(5)
        for index, run in enumerate(plan, start=1):
            if run.startswith("corrupt"):
                registry.publish(run, _corrupt_artifacts(index))
            else:
                publish_tiny(registry.store, run, seed=index)
            registry.promote(run, METRIC, 0.5 + index / 100, force=True)
            time.sleep(6)
            served_after[run] = http_json(api.base + "/model")[1].get("run_id", "?")
        result = _finish(load, out, seconds)
        reloads = {
            outcome: int(prom_sum(api.base, "tweetdomains_model_reloads_total", result=outcome))
            for outcome in ("loaded", "refused")
        }
        assert api.proc.alive(), api.proc.stderr()
    finally:
        api.stop()
    published = {"run-0", *[r for r in plan if not r.startswith("corrupt")]}
    seen = set(result["versions"])
    row.requests, row.failed = result["sent"], result["failed"]
    row.figures = {
        "versions_served": len(seen),
        "served_while_corrupt_was_best": served_after["corrupt-3"],
        "reloads": " ".join(f"{k}:{v}" for k, v in reloads.items() if v),
        "p99_ms": result["latency_ms"]["p99"],
    }
    assert result["failed"] == 0, result["errors"]
    assert seen <= published, f"answers from unpublished versions: {seen - published}"
    assert "corrupt-3" not in seen and served_after["corrupt-3"] == "run-2"
    assert reloads["refused"] >= 1 and reloads["loaded"] >= 5
    assert served_after["run-5"] == "run-5"
    assert {"run-1", "run-2", "run-4", "run-5"} <= seen | {served_after[r] for r in plan}


def _wide_api(tmp_path: Path, env: dict[str, str]) -> ApiServer:
    """The API on a 512-wide model: passes slow enough for requests to queue behind them."""
    from tests.integration.api_helpers import publish_model

    store_uri = str(tmp_path / "store")
    publish_model(store_uri, seed=1, hidden=512)
    api = ApiServer(store_uri, tmp_path, env={"TWEETDOMAINS_LOG_LEVEL": "WARNING", **env})
    api.wait_ready(180)
    return api


@pytest.mark.scenario("2b overload: queue bound sheds")
def test_overload_sheds_with_503_and_retry_after_and_nothing_else_fails(row: Row, tmp_path: Path) -> None:
    import asyncio
    from collections import Counter

    import httpx

    api = _wide_api(tmp_path, {"TWEETDOMAINS_MAX_QUEUED_TEXTS": "64", "TWEETDOMAINS_MAX_BATCH_SIZE": "16"})
    statuses: Counter[str] = Counter()
    text = " ".join(["taylor swift album goal match team arsenal nike"] * 8)

    async def client(worker: int, stop_at: float, http: httpx.AsyncClient) -> None:
        i = 0
        while time.monotonic() < stop_at:
            i += 1
            try:
                response = await http.post("/classify", json={"text": f"{text} {worker} {i}"})
            except httpx.HTTPError as exc:
                statuses[type(exc).__name__] += 1
                continue
            if response.status_code == 503 and response.headers.get("retry-after", "").isdigit():
                statuses["503+Retry-After"] += 1
                await asyncio.sleep(0.05)
            else:
                statuses[str(response.status_code)] += 1

    async def offer() -> None:
        # Idle connections expire before the server's 5 s keep-alive timeout closes them.
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=2)
        async with httpx.AsyncClient(base_url=api.base, timeout=60, limits=limits) as http:
            stop_at = time.monotonic() + 15
            await asyncio.gather(*(client(w, stop_at, http) for w in range(128)))

    try:
        asyncio.run(offer())
        computed = prom_sum(api.base, "tweetdomains_computed_texts_total")
        shed = prom_sum(api.base, "tweetdomains_shed_total", reason="overload")
        ready = http_json(api.base + "/readyz")[0]
    finally:
        api.stop()
    offered = sum(statuses.values())
    row.load = "128 clients for 15 s against a queue bound of 64 texts (512-wide model)"
    row.faults = "offered load past capacity"
    row.requests = offered
    row.failed = sum(n for s, n in statuses.items() if s not in ("200", "503+Retry-After"))
    row.figures = {
        "offered": offered,
        "admitted": statuses["200"],
        "shed": statuses["503+Retry-After"],
        "computed_texts": int(computed),
    }
    assert row.failed == 0, statuses
    assert statuses["503+Retry-After"] > 0 and statuses["200"] > 0, statuses
    assert shed == statuses["503+Retry-After"]
    assert ready == 200, "shedding is not unhealthiness"


@pytest.mark.scenario("2c 200 abandoned requests")
def test_200_abandoned_requests_are_never_computed(row: Row, tmp_path: Path) -> None:
    import socket

    import httpx

    api = _wide_api(
        tmp_path,
        {
            "TWEETDOMAINS_MAX_BATCH_SIZE": "1",
            "TWEETDOMAINS_MAX_QUEUED_TEXTS": "100000",
            "TWEETDOMAINS_REQUEST_DEADLINE_S": "300",
            "TWEETDOMAINS_MAX_IN_FLIGHT": "1000",
            "TWEETDOMAINS_MAX_LOOP_LAG_MS": "60000",  # the passes keep the loop late: admit all
        },
    )
    long = " ".join(["taylor swift album goal match team arsenal nike"] * 10)
    blockers: list[threading.Thread] = []
    blocker_status: list[int] = []

    def blocker(b: int) -> None:
        texts = [f"{long} blocker {b} {i}" for i in range(256)]
        response = httpx.post(api.base + "/classify/batch", json={"texts": texts}, timeout=600)
        blocker_status.append(response.status_code)

    try:
        for b in range(3):
            blockers.append(threading.Thread(target=blocker, args=(b,)))
            blockers[-1].start()
        wait_until(lambda: prom_sum(api.base, "tweetdomains_queue_texts") >= 256, 120, "queued blockers")
        sockets = []
        for i in range(200):
            body = json.dumps({"text": f"abandoned {i}"}).encode()
            sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
            sock.sendall(
                b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + b"Content-Length: %d\r\n\r\n" % len(body)
                + body
            )
            sockets.append(sock)
        wait_until(lambda: prom_sum(api.base, "tweetdomains_queue_texts") % 256 == 200, 120, "200 queued")
        for sock in sockets:
            sock.close()
        wait_until(
            lambda: prom_sum(api.base, "tweetdomains_cancelled_texts_total") == 200, 120, "200 cancelled"
        )
        for thread in blockers:
            thread.join(600)
        computed = prom_sum(api.base, "tweetdomains_computed_texts_total")
    finally:
        api.stop()
    row.load = "3 batches of 256 long texts queued, then 200 requests whose sockets close"
    row.faults = "200 clients hang up while queued"
    row.requests = 200 + len(blockers)
    row.failed = sum(1 for s in blocker_status if s != 200)
    row.figures = {"abandoned_computed": int(computed) - 3 * 256, "cancelled_texts": 200}
    assert blocker_status == [200, 200, 200]
    assert computed == 3 * 256, "none of the 200 abandoned requests reached a forward pass"
