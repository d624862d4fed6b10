"""The API over HTTP, as `tweetdomains serve` child processes, with a real Redis."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RedisServer
from tests.integration.api_helpers import LABELS, ApiProcess, publish_model
from tweetdomains.registry import Registry
from tweetdomains.store import open_store


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def api(store_uri: str, tmp_path: Path) -> Iterator[ApiProcess]:
    publish_model(store_uri, seed=1)
    process = ApiProcess(store_uri).start(tmp_path)
    yield process
    process.stop()


def test_classify_answers_per_interface(api: ApiProcess) -> None:
    response = httpx.post(api.base + "/classify", json={"text": "Taylor Swift new album"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"model_version", "domains", "predicted", "cached"}
    assert [d["name"] for d in body["domains"]] != [] and {d["name"] for d in body["domains"]} == set(LABELS)
    probs = [d["probability"] for d in body["domains"]]
    assert probs == sorted(probs, reverse=True)
    assert body["predicted"] and body["cached"] is False
    assert response.headers["x-model-version"] == body["model_version"]
    assert httpx.get(api.base + "/labels").json() == LABELS
    assert httpx.get(api.base + "/model").json()["run_id"] == body["model_version"]


def test_batch_keeps_input_order_and_matches_single(api: ApiProcess) -> None:
    texts = ["goal for arsenal", "nike shoes", "taylor swift song"]
    batch = httpx.post(api.base + "/classify/batch", json={"texts": texts}).json()
    assert len(batch["results"]) == 3
    for text, result in zip(texts, batch["results"], strict=True):
        single = httpx.post(api.base + "/classify", json={"text": text}).json()
        assert single["domains"] == result["domains"]


def test_in_process_cache_hits_on_normalized_alike_text(api: ApiProcess) -> None:
    first = httpx.post(api.base + "/classify", json={"text": "Goal for #Arsenal https://t.co/x"}).json()
    again = httpx.post(api.base + "/classify", json={"text": "goal for arsenal"}).json()
    assert first["cached"] is False and again["cached"] is True
    assert again["domains"] == first["domains"]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b'{"text": ""}', 422, "text"),
        (b'{"text": "   \\n "}', 422, "text"),
        (b'{"text": 5}', 422, "text"),
        (b"{}", 422, "text"),
        (b'{"text": "a", "extra": 1}', 422, "extra"),
        (b"not json", 422, "JSON"),
        (b"\xff\xfe\xfa", 422, "parsing"),
        (b"[" * 50_000, 422, "JSON"),
    ],
)
def test_malformed_bodies_get_clear_4xx(api: ApiProcess, body: bytes, status: int, needle: str) -> None:
    response = httpx.post(api.base + "/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert needle in response.text


def test_batch_limits(api: ApiProcess) -> None:
    empty = httpx.post(api.base + "/classify/batch", json={"texts": []})
    assert empty.status_code == 422 and "texts" in empty.text
    too_many = httpx.post(api.base + "/classify/batch", json={"texts": ["a"] * 257})
    assert too_many.status_code == 422 and "limit is 256" in too_many.text
    blank = httpx.post(api.base + "/classify/batch", json={"texts": ["ok", " "]})
    assert blank.status_code == 422 and "texts[1]" in blank.text


def test_size_limits(api: ApiProcess) -> None:
    big = httpx.post(api.base + "/classify", content=b'{"text": "' + b"a" * 1_100_000 + b'"}')
    assert big.status_code == 413

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(12):
            yield b"a" * 100_000

    chunked = httpx.post(
        api.base + "/classify", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert (
        httpx.post(api.base + "/classify", json={"text": "a " * 12_501}).status_code == 422
    )  # over 25,000 chars
    window = httpx.post(api.base + "/classify", json={"text": "goal " * 1500})  # truncated to the window
    assert window.status_code == 200


def test_not_ready_without_model_then_ready_after_promotion(store_uri: str, tmp_path: Path) -> None:
    Path(store_uri).mkdir()  # an empty store: serve waits there (one that does not exist is refused)
    api = ApiProcess(store_uri).start(tmp_path, wait_ready=False)
    try:
        assert httpx.get(api.base + "/readyz").status_code == 503
        response = httpx.post(api.base + "/classify", json={"text": "hello"})
        assert response.status_code == 503 and "no model" in response.json()["detail"]
        assert httpx.get(api.base + "/healthz").status_code == 200
        run = publish_model(store_uri, seed=2)
        api.wait(ready=True, timeout=20)
        assert httpx.post(api.base + "/classify", json={"text": "hello"}).json()["model_version"] == run
    finally:
        api.stop()


def test_api_key(store_uri: str, tmp_path: Path) -> None:
    publish_model(store_uri, seed=1)
    api = ApiProcess(store_uri, env={"TWEETDOMAINS_API_KEY": "s3cret-key"}).start(tmp_path)
    try:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(api.base + path).status_code == 200
        for method, path in [
            ("POST", "/classify"),
            ("POST", "/classify/batch"),
            ("GET", "/labels"),
            ("GET", "/model"),
        ]:
            assert httpx.request(method, api.base + path, json={"text": "x"}).status_code == 401
            wrong = httpx.request(
                method, api.base + path, json={"text": "x"}, headers={"Authorization": "Bearer no"}
            )
            assert wrong.status_code == 401 and "wrong API key" in wrong.text
        for path in ("/", "/docs", "/openapi.json"):
            assert httpx.get(api.base + path).status_code == 401
        good = {"Authorization": "Bearer s3cret-key"}
        assert httpx.post(api.base + "/classify", json={"text": "x"}, headers=good).status_code == 200
        assert httpx.get(api.base + "/", auth=("anyone", "s3cret-key")).status_code == 200  # browsers: Basic
    finally:
        api.stop()


def test_redis_cache_shared_and_invalidated_by_a_new_model(
    store_uri: str, tmp_path: Path, redis_url: str
) -> None:
    publish_model(store_uri, seed=1)
    env = {"TWEETDOMAINS_REDIS_URL": redis_url}
    a = ApiProcess(store_uri, env=env).start(tmp_path)
    b = ApiProcess(store_uri, env=env).start(tmp_path)
    text = f"nike shoes brand {time.time_ns()}"  # unique: no answer from an earlier run
    try:
        assert httpx.post(a.base + "/classify", json={"text": text}).json()["cached"] is False
        time.sleep(0.2)  # the cache write happens after the answer
        assert httpx.post(b.base + "/classify", json={"text": text}).json()["cached"] is True, (
            "shared by replicas"
        )
        assert 'cache":{"backend":"redis"' in httpx.get(a.base + "/readyz").text.replace(" ", "")
        new_run = publish_model(store_uri, seed=3)
        deadline = time.monotonic() + 20
        while httpx.get(a.base + "/model").json()["run_id"] != new_run:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        after = httpx.post(a.base + "/classify", json={"text": text}).json()
        assert after["model_version"] == new_run and after["cached"] is False, (
            "a new model never serves old answers"
        )
    finally:
        a.stop()
        b.stop()


def test_bfloat16_replica_answers_close_to_float32_and_keeps_its_own_cache(
    store_uri: str, tmp_path: Path, redis_url: str
) -> None:
    publish_model(store_uri, seed=4, layers=1)  # one layer: served from input projections
    env = {"TWEETDOMAINS_REDIS_URL": redis_url}
    exact = ApiProcess(store_uri, env=env).start(tmp_path)
    fast = ApiProcess(store_uri, env=env, args=["--precision", "bfloat16"]).start(tmp_path)
    text = f"taylor swift album song {time.time_ns()}"
    try:
        assert httpx.get(exact.base + "/model").json()["precision"] == "float32"
        assert httpx.get(fast.base + "/model").json()["precision"] == "bfloat16"
        first = httpx.post(exact.base + "/classify", json={"text": text}).json()
        time.sleep(0.2)  # the cache write happens after the answer
        second = httpx.post(fast.base + "/classify", json={"text": text}).json()
        assert second["cached"] is False, "a bfloat16 replica never serves float32 answers"
        probs = {d["name"]: d["probability"] for d in first["domains"]}
        assert all(abs(d["probability"] - probs[d["name"]]) < 5e-3 for d in second["domains"])
        time.sleep(0.2)
        assert httpx.post(fast.base + "/classify", json={"text": text}).json()["cached"] is True
    finally:
        exact.stop()
        fast.stop()


def test_an_unknown_precision_is_a_usage_error(store_uri: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tweetdomains", "serve", "--store", store_uri, "--precision", "float16"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "invalid choice: 'float16'" in result.stderr


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_readyz_sees_an_unreachable_redis_before_any_request_and_its_return_without_one(
    store_uri: str, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)  # not started yet: nothing listens on its port
    publish_model(store_uri, seed=1)
    api = ApiProcess(store_uri, env={"TWEETDOMAINS_REDIS_URL": redis.url}).start(tmp_path)
    try:
        ready = httpx.get(api.base + "/readyz")
        assert ready.status_code == 200, "a missing cache is no reason to take the replica out"
        assert ready.json()["cache"] == {"backend": "redis", "status": "degraded"}
        redis.start()
        deadline = time.monotonic() + 30
        while httpx.get(api.base + "/readyz").json()["cache"]["status"] != "ok":
            assert time.monotonic() < deadline, "readyz never saw redis come up"
            time.sleep(0.2)
        text = "taylor swift announced a new album"
        assert httpx.post(api.base + "/classify", json={"text": text}).status_code == 200
    finally:
        api.stop()
        redis.stop()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_a_repeated_text_is_answered_from_process_memory_even_while_redis_is_down(
    store_uri: str, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    publish_model(store_uri, seed=1)
    api = ApiProcess(store_uri, env={"TWEETDOMAINS_REDIS_URL": redis.url}).start(tmp_path)
    try:
        text = "arsenal won the match with a late goal"
        first = httpx.post(api.base + "/classify", json={"text": text}).json()
        assert first["cached"] is False
        redis.kill()
        again = httpx.post(api.base + "/classify", json={"text": text}).json()
        assert again["cached"] is True and again["domains"] == first["domains"]
        other = httpx.post(api.base + "/classify", json={"text": "a text never seen before"})
        assert other.status_code == 200 and other.json()["cached"] is False
    finally:
        api.stop()
        redis.stop()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_redis_down_serves_uncached_then_recovers(store_uri: str, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    publish_model(store_uri, seed=1)
    api = ApiProcess(
        store_uri, env={"TWEETDOMAINS_REDIS_URL": redis.url, "TWEETDOMAINS_REDIS_RETRY_S": "0.5"}
    ).start(tmp_path)
    try:
        httpx.post(api.base + "/classify", json={"text": "warm up"})
        time.sleep(0.2)
        assert httpx.post(api.base + "/classify", json={"text": "warm up"}).json()["cached"] is True
        redis.kill()
        for i in range(20):
            response = httpx.post(api.base + "/classify", json={"text": f"while redis is down {i}"})
            assert response.status_code == 200 and response.json()["cached"] is False
        ready = httpx.get(api.base + "/readyz")
        assert ready.status_code == 200 and ready.json()["cache"]["status"] == "degraded"
        assert 'tweetdomains_cache_total{result="error"}' in httpx.get(api.base + "/metrics").text
        redis.start()
        time.sleep(0.6)  # past the circuit breaker's retry delay
        httpx.post(api.base + "/classify", json={"text": "after recovery"})
        time.sleep(0.2)
        assert httpx.post(api.base + "/classify", json={"text": "after recovery"}).json()["cached"] is True
        assert httpx.get(api.base + "/readyz").json()["cache"]["status"] == "ok"
    finally:
        api.stop()
        redis.stop()


def test_hot_swap_under_load_with_zero_failures_and_a_corrupt_model_refused(
    store_uri: str, tmp_path: Path
) -> None:
    first = publish_model(store_uri, seed=1)
    api = ApiProcess(store_uri).start(tmp_path)
    registry = Registry(open_store(store_uri))
    seen: dict[str, int] = {}
    failures: list[str] = []

    async def client(worker: int, stop_at: float) -> None:
        async with httpx.AsyncClient(base_url=api.base, timeout=10) as http:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                response = await http.post("/classify", json={"text": f"goal {worker} {i}"})
                if response.status_code != 200:
                    failures.append(f"{response.status_code} {response.text[:100]}")
                    continue
                version = response.json()["model_version"]
                seen[version] = seen.get(version, 0) + 1

    async def load_and_swap() -> tuple[str, str]:
        stop_at = time.monotonic() + 6
        clients = [asyncio.create_task(client(w, stop_at)) for w in range(16)]
        await asyncio.sleep(1.5)
        second = await asyncio.to_thread(publish_model, store_uri, 2, ["A", "B", "C"])
        await asyncio.sleep(1.5)
        corrupt = await asyncio.to_thread(publish_model, store_uri, 3, None, False)
        registry.store.put(f"models/{corrupt}/model.safetensors", b"\x80\x04 not safetensors")
        registry.promote(corrupt, "val_micro_f1", 99.0, force=True)
        await asyncio.gather(*clients)
        return second, corrupt

    try:
        second, corrupt = asyncio.run(load_and_swap())
        assert failures == []
        assert set(seen) == {first, second}, seen
        assert httpx.get(api.base + "/model").json()["run_id"] == second
        ready = httpx.get(api.base + "/readyz").json()
        assert corrupt in (ready["last_reload_error"] or "")
        metrics = httpx.get(api.base + "/metrics").text
        assert 'tweetdomains_model_reloads_total{result="refused"} 1.0' in metrics
        assert "tweetdomains_batch_size_bucket" in metrics
    finally:
        api.stop()
