"""What operators rely on: graceful shutdown, the metrics, OpenAPI, partly cached batches."""

from __future__ import annotations

import concurrent.futures
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api_helpers import ApiProcess, publish_model


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiProcess]:
    store = str(tmp_path / "store")
    publish_model(store, seed=1)
    process = ApiProcess(store).start(tmp_path)
    yield process
    process.stop()


def in_flight(api: ApiProcess) -> int:
    """Requests that reached the batcher: the cache counts each one's miss on the way there."""
    metrics = httpx.get(api.base + "/metrics", timeout=10).text
    misses = [m for m in metrics.splitlines() if m.startswith('tweetdomains_cache_total{result="miss"}')]
    return int(float(misses[0].split()[-1])) if misses else 0


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    publish_model(store, seed=1)
    # Each batch waits up to 1 s to fill: requests are surely in flight when SIGTERM comes.
    api = ApiProcess(store, env={"TWEETDOMAINS_MAX_WAIT_MS": "1000"}).start(tmp_path)
    assert api.process is not None
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        texts = [f"goal number {i}" for i in range(8)]
        futures = [
            pool.submit(httpx.post, api.base + "/classify", json={"text": t}, timeout=30) for t in texts
        ]
        # SIGTERM once all 8 are in flight (past the cache, waiting for their batch), however
        # slowly a busy machine got them there: a fixed sleep sent it before some had arrived.
        deadline = time.monotonic() + 60
        while in_flight(api) < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        api.process.terminate()
        responses = [f.result() for f in futures]
        code = api.process.wait(timeout=30)
    assert [r.status_code for r in responses] == [200] * 8, api.logs()
    # uvicorn re-raises the signal once it has drained, so the status says "ended by SIGTERM".
    assert code in (0, -signal.SIGTERM), api.logs()
    assert "Application shutdown complete" in api.logs()
    with pytest.raises(httpx.ConnectError):  # and it no longer accepts new ones
        httpx.get(api.base + "/healthz", timeout=2)
    api.process = None


def test_metrics_cover_requests_batches_cache_and_model(api: ApiProcess) -> None:
    httpx.post(api.base + "/classify", json={"text": "nike shoes"})
    time.sleep(0.1)  # the cache is written after the answer
    httpx.post(api.base + "/classify", json={"text": "nike shoes"})
    httpx.post(api.base + "/classify", json={"text": ""})
    run_id = httpx.get(api.base + "/model").json()["run_id"]
    text = httpx.get(api.base + "/metrics").text
    for needle in (
        'tweetdomains_http_requests_total{method="POST",route="/classify",status="200"} 2.0',
        'tweetdomains_http_requests_total{method="POST",route="/classify",status="422"} 1.0',
        'tweetdomains_http_request_seconds_bucket{le="0.1",route="/classify"}',
        "tweetdomains_batch_size_count 1.0",
        "tweetdomains_queue_wait_seconds_count 1.0",
        "tweetdomains_inference_seconds_count 1.0",
        'tweetdomains_cache_total{result="hit"} 1.0',
        'tweetdomains_cache_total{result="miss"} 1.0',
        f'tweetdomains_model_info{{run_id="{run_id}"}} 1.0',
        'tweetdomains_model_reloads_total{result="loaded"} 1.0',
        "tweetdomains_model_load_seconds ",
    ):
        assert needle in text, needle
    assert text.count("tweetdomains_model_info{") == 1


def test_unknown_paths_share_one_metrics_label(api: ApiProcess) -> None:
    for i in range(5):
        assert httpx.get(f"{api.base}/nothing-{i}").status_code == 404
    text = httpx.get(api.base + "/metrics").text
    assert "nothing-" not in text, "label values stay bounded"
    assert 'route="other",status="404"} 5.0' in text


def test_openapi_documents_routes_with_examples(api: ApiProcess) -> None:
    spec = httpx.get(api.base + "/openapi.json").json()
    for path in ("/classify", "/classify/batch", "/healthz", "/readyz", "/metrics", "/labels", "/model"):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert schemas["ClassifyRequest"]["examples"][0]["text"]
    assert schemas["BatchRequest"]["examples"][0]["texts"]
    assert {"401", "413", "422", "503"} <= set(spec["paths"]["/classify"]["post"]["responses"])
    assert httpx.get(api.base + "/docs").status_code == 200


def test_batch_mixes_cached_and_fresh_texts_in_input_order(api: ApiProcess) -> None:
    httpx.post(api.base + "/classify", json={"text": "Arsenal match"})
    time.sleep(0.1)
    body = httpx.post(
        api.base + "/classify/batch", json={"texts": ["brand new", "ARSENAL   match", "brand new two"]}
    ).json()
    assert [r["cached"] for r in body["results"]] == [False, True, False]
    single = httpx.post(api.base + "/classify", json={"text": "brand new two"}).json()
    assert single["cached"] is True and single["domains"] == body["results"][2]["domains"]


def test_long_texts_are_truncated_up_to_the_hard_cap(api: ApiProcess) -> None:
    window = httpx.post(api.base + "/classify", json={"text": "goal " * 1999})  # 9,995 characters
    assert window.status_code == 200
    over = httpx.post(api.base + "/classify/batch", json={"texts": ["ok", "x" * 10_001]})
    assert over.status_code == 422 and "texts[1]" in over.json()["detail"]
