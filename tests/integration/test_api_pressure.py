"""The API under pressure, over HTTP: admission control (503 + Retry-After), deadlines,
cancellation of abandoned requests before the forward pass, and zero-wait lone requests.

Passes are made slow (a 512-wide LSTM, one request per pass, 256 long texts a blocker) so that
requests surely queue behind them; the tests wait on /metrics gauges, never on the clock.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api_helpers import ApiProcess, metric_value, publish_model, wait_for

LONG = " ".join(["taylor swift album goal match team arsenal nike"] * 10)  # past the 64-token window


@pytest.fixture
def slow_store(tmp_path: Path) -> str:
    store = str(tmp_path / "store")
    publish_model(store, seed=1, hidden=512)
    return store


def _metrics(api: ApiProcess) -> str:
    return httpx.get(api.base + "/metrics", timeout=30).text


def _value(api: ApiProcess, name: str) -> float:
    return metric_value(_metrics(api), name)


def _blockers(
    api: ApiProcess, pool: concurrent.futures.Executor, n: int
) -> list[concurrent.futures.Future[httpx.Response]]:
    return [
        pool.submit(
            httpx.post,
            api.base + "/classify/batch",
            json={"texts": [f"{LONG} blocker {b} {i}" for i in range(256)]},
            timeout=300,
        )
        for b in range(n)
    ]


def test_deadline_passed_in_the_queue_is_a_503_with_retry_after_and_never_computed(
    slow_store: str, tmp_path: Path
) -> None:
    api = ApiProcess(
        slow_store,
        env={"TWEETDOMAINS_MAX_BATCH_SIZE": "1", "TWEETDOMAINS_REQUEST_DEADLINE_S": "0.2"},
    ).start(tmp_path)
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            blockers = _blockers(api, pool, 1)
            wait_for(
                lambda: metric_value(_metrics(api), "tweetdomains_computed_texts_total") >= 256, what="a pass"
            )
            late = [
                httpx.post(api.base + "/classify", json={"text": f"late {i}"}, timeout=60) for i in range(3)
            ]
            [f.result() for f in blockers]
        refused = [r for r in late if r.status_code == 503]
        assert refused, [r.status_code for r in late]
        for response in refused:
            assert response.headers["retry-after"].isdigit()
            assert "deadline" in response.json()["detail"]
        text = _metrics(api)
        assert metric_value(text, 'tweetdomains_shed_total{reason="deadline"}') == len(refused)
        computed = metric_value(text, "tweetdomains_computed_texts_total")
        assert computed == 256 + (len(late) - len(refused)), "a refused request is never computed"
        assert httpx.get(api.base + "/readyz").status_code == 200, "shedding is not unhealthiness"
    finally:
        api.stop()


def test_a_full_queue_sheds_with_503_and_retry_after(slow_store: str, tmp_path: Path) -> None:
    api = ApiProcess(
        slow_store,
        env={
            "TWEETDOMAINS_MAX_BATCH_SIZE": "1",
            "TWEETDOMAINS_MAX_QUEUED_TEXTS": "300",
            "TWEETDOMAINS_REQUEST_DEADLINE_S": "300",  # only the queue bound sheds here
        },
    ).start(tmp_path)
    try:
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            batches = [
                pool.submit(
                    httpx.post,
                    api.base + "/classify/batch",
                    json={"texts": [f"{LONG} {b} {i}" for i in range(64)]},
                    timeout=300,
                )
                for b in range(20)
            ]
            responses = [f.result() for f in batches]
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 503}, statuses
        for response in responses:
            if response.status_code == 503:
                assert response.headers["retry-after"].isdigit()
                assert "over capacity" in response.json()["detail"]
        shed = metric_value(_metrics(api), 'tweetdomains_shed_total{reason="overload"}')
        assert shed == statuses.count(503)
        ready = httpx.get(api.base + "/readyz").json()
        assert ready["status"] == "ready" and ready["queue"]["max_texts"] == 300
    finally:
        api.stop()


def _open_request(port: int, text: str) -> socket.socket:
    body = json.dumps({"text": text}).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )
    return sock


def test_200_abandoned_requests_are_never_computed(slow_store: str, tmp_path: Path) -> None:
    api = ApiProcess(
        slow_store,
        env={
            "TWEETDOMAINS_MAX_BATCH_SIZE": "1",
            "TWEETDOMAINS_MAX_QUEUED_TEXTS": "100000",
            "TWEETDOMAINS_REQUEST_DEADLINE_S": "300",
            "TWEETDOMAINS_MAX_IN_FLIGHT": "1000",
            "TWEETDOMAINS_MAX_LOOP_LAG_MS": "60000",  # the passes keep the loop late: admit all
        },
    ).start(tmp_path)
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            blockers = _blockers(api, pool, 3)
            wait_for(
                lambda: metric_value(_metrics(api), "tweetdomains_queue_texts") >= 256, what="queued blockers"
            )
            sockets = [_open_request(api.port, f"abandoned {i}") for i in range(200)]
            wait_for(
                lambda: metric_value(_metrics(api), "tweetdomains_queue_texts") % 256 == 200,
                what="200 queued",
            )
            for sock in sockets:
                sock.close()
            wait_for(
                lambda: metric_value(_metrics(api), "tweetdomains_cancelled_texts_total") == 200,
                what="200 cancelled",
            )
            assert all(f.result().status_code == 200 for f in blockers)
        text = _metrics(api)
        assert metric_value(text, "tweetdomains_computed_texts_total") == 3 * 256, "none of the 200 ran"
        assert metric_value(text, "tweetdomains_queue_texts") == 0
        assert 'status="499"} 200.0' in text
        assert httpx.post(api.base + "/classify", json={"text": "still serving"}).status_code == 200
    finally:
        api.stop()


@pytest.fixture
def patient_api(tmp_path: Path) -> Iterator[ApiProcess]:
    store = str(tmp_path / "store")
    publish_model(store, seed=1)
    # A batch may wait up to 1 s for requests on their way: a lone request must not.
    api = ApiProcess(store, env={"TWEETDOMAINS_MAX_WAIT_MS": "1000"}).start(tmp_path)
    yield api
    api.stop()


def test_a_lone_request_does_not_wait_for_company(patient_api: ApiProcess) -> None:
    for i in range(5):
        assert httpx.post(patient_api.base + "/classify", json={"text": f"alone {i}"}).status_code == 200
    text = _metrics(patient_api)
    assert metric_value(text, "tweetdomains_queue_wait_seconds_count") == 5
    # Waiting for company would be 5 x 1 s; allow a busy machine a great deal less than that.
    assert metric_value(text, "tweetdomains_queue_wait_seconds_sum") < 2.5
    # One client, one connection at a time: each pass ran at once on the loop (no queue at all).
    assert metric_value(text, "tweetdomains_queue_wait_seconds_sum") == 0
