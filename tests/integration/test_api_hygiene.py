"""HTTP hygiene over the wire: long posts, header and body limits that clients can read, one
error shape, nothing-to-classify inputs, gzip, CORS, offline docs, an honest OpenAPI spec."""

from __future__ import annotations

import gzip
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.api_helpers import ApiProcess, publish_model

LINEAGE = {
    "store": "s3://tweets/prod",
    "raw_batches": 12,
    "raw_first_key": "raw/2026/11/01/00/a.jsonl.gz",
    "raw_last_key": "raw/2026/11/02/23/z.jsonl.gz",
    "records": 1000,
    "data_sha256": "ab" * 32,
    "recipe": "lstm-default",
    "git_commit": "0123abc",
    "label_counts": {"Brand": 100, "Musician": 400, "Person": 700, "Sport": 300, "Sports Team": 250},
}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    tmp = tmp_path_factory.mktemp("hygiene")
    store = str(tmp / "store")
    publish_model(store, seed=1, lineage=LINEAGE)
    env = {"TWEETDOMAINS_CORS_ORIGINS": "https://dash.example, https://other.example"}
    process = ApiProcess(store, env=env).start(tmp)
    yield process
    process.stop()


def test_a_25000_character_post_is_classified(api: ApiProcess) -> None:
    text = ("Arsenal won the match with a late goal. " * 700)[:25_000]
    assert len(text) == 25_000
    response = httpx.post(api.base + "/classify", json={"text": text})
    assert response.status_code == 200, response.text
    over = httpx.post(api.base + "/classify", json={"text": text + "x"})
    assert over.status_code == 422 and over.json()["detail"] == (
        "text is 25001 characters long; the limit is 25000"
    )


@pytest.mark.parametrize(
    "text",
    [
        "\u200b\u200b",
        "\u200e\u200f",
        "\u0301\u0302",
        "\ud800",
        "&amp;",
        "https://t.co/abc",
        "@someone",
        "\u00a0\u3000",
    ],
)
def test_nothing_classifiable_after_normalization_is_a_422(api: ApiProcess, text: str) -> None:
    body = json.dumps({"text": text})  # lone surrogates pass through JSON as \\ud800
    response = httpx.post(api.base + "/classify", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)


def test_oversized_headers_get_a_431_json(api: ApiProcess) -> None:
    response = httpx.get(api.base + "/healthz", headers={"X-Big": "a" * 64 * 1024})
    assert response.status_code == 431
    assert "headers" in response.json()["detail"]
    assert httpx.get(api.base + "/healthz").status_code == 200


def test_slow_headers_time_out_with_408(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    publish_model(store, seed=1)
    api = ApiProcess(store, env={"TWEETDOMAINS_HEADER_TIMEOUT_S": "1"}).start(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", api.port), timeout=30) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"detail"' in answer
    finally:
        api.stop()


def test_a_10mb_body_sent_with_urllib_reads_the_413(api: ApiProcess) -> None:
    body = b'{"text": "' + b"a" * 10_000_000 + b'"}'
    request = urllib.request.Request(
        api.base + "/classify", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    assert "larger than" in json.loads(refused.value.read())["detail"]


def test_no_redirect_built_from_the_host_header(api: ApiProcess) -> None:
    response = httpx.post(api.base + "/classify/", json={"text": "hi"}, headers={"Host": "evil.example"})
    assert response.status_code == 404 and "location" not in response.headers
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("PUT", "/classify", b"{}", 405),
        ("FOO", "/classify", b"", 400),  # llhttp refuses unknown methods
        ("POST", "/classify", b"\xff\xfe\xfa", 422),
        ("POST", "/classify", b"not json", 422),
        ("POST", "/classify", b'{"text": 5}', 422),
        ("GET", "/nothing", b"", 404),
    ],
)
def test_every_error_is_json_of_one_shape(
    api: ApiProcess, method: str, path: str, content: bytes, status: int
) -> None:
    response = httpx.request(
        method, api.base + path, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) <= {"detail", "errors"}


def test_a_100kb_url_gets_a_431_json(api: ApiProcess) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as sock:
        sock.sendall(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b"}" not in answer:
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"application/json" in answer and b'"detail"' in answer


def test_large_answers_are_gzipped_on_request(api: ApiProcess) -> None:
    texts = [f"goal number {i} for arsenal" for i in range(256)]
    response = httpx.post(
        api.base + "/classify/batch", json={"texts": texts}, headers={"Accept-Encoding": "gzip"}
    )
    assert response.status_code == 200 and response.headers["content-encoding"] == "gzip"
    assert len(response.json()["results"]) == 256  # httpx decodes it
    small = httpx.post(api.base + "/classify", json={"text": "hi there"}, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    assert gzip.compress(b"x")  # (the module is what the client used)


def test_cors_preflight_allowed_and_refused_by_origin(api: ApiProcess) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    allowed = httpx.options(api.base + "/classify", headers={"Origin": "https://dash.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    refused = httpx.options(api.base + "/classify", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    simple = httpx.post(
        api.base + "/classify", json={"text": "hi"}, headers={"Origin": "https://dash.example"}
    )
    assert simple.headers["access-control-allow-origin"] == "https://dash.example"
    assert "X-Model-Version" in simple.headers["access-control-expose-headers"]


def test_cors_preflight_passes_without_the_api_key_and_is_off_by_default(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    publish_model(store, seed=1)
    keyed = ApiProcess(
        store,
        env={
            "TWEETDOMAINS_API_KEY": "k3y",  # pragma: allowlist secret
            "TWEETDOMAINS_CORS_ORIGINS": "https://dash.example",
        },
    ).start(tmp_path)
    plain = ApiProcess(store).start(tmp_path)
    headers = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
    try:
        preflight = httpx.options(keyed.base + "/classify", headers=headers)
        assert preflight.status_code == 200, preflight.text
        assert httpx.post(keyed.base + "/classify", json={"text": "hi"}).status_code == 401
        unset = httpx.options(plain.base + "/classify", headers=headers)
        assert unset.status_code == 405 and "access-control-allow-origin" not in unset.headers
    finally:
        keyed.stop()
        plain.stop()


def test_docs_and_redoc_load_their_assets_from_the_app(api: ApiProcess) -> None:
    for path in ("/docs", "/redoc"):
        page = httpx.get(api.base + path)
        assert page.status_code == 200
        assert "cdn" not in page.text.lower() and "googleapis" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        response = httpx.get(f"{api.base}/static/docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000, asset
    assert httpx.get(api.base + "/favicon.ico").headers["content-type"].startswith("image/svg")


def test_openapi_has_security_limits_statuses_and_clean_operation_ids(api: ApiProcess) -> None:
    spec = httpx.get(api.base + "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    classify = spec["paths"]["/classify"]["post"]
    assert classify["operationId"] == "classify" and classify["security"] == [{"apiKey": []}]
    assert {"401", "413", "422", "431", "503"} <= set(classify["responses"])
    assert "security" not in spec["paths"]["/healthz"]["get"]
    for path in ("/labels", "/model"):
        assert {"401", "503"} <= set(spec["paths"][path]["get"]["responses"]), path
    assert spec["paths"]["/readyz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    schemas = spec["components"]["schemas"]
    assert schemas["ClassifyRequest"]["properties"]["text"]["maxLength"] == 25_000
    texts = schemas["BatchRequest"]["properties"]["texts"]
    assert texts["maxItems"] == 256 and texts["items"]["maxLength"] == 25_000
    assert schemas["ErrorResponse"]["properties"]["detail"]["type"] == "string"
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert all("_post" not in i and "_get" not in i for i in ids), ids


def test_model_shows_lineage_and_drift_gauges_follow_the_traffic(api: ApiProcess) -> None:
    info = httpx.get(api.base + "/model").json()
    assert info["lineage"] == LINEAGE
    assert httpx.post(api.base + "/classify", json={"text": "nike shoes"}).status_code == 200
    metrics = httpx.get(api.base + "/metrics").text
    assert 'tweetdomains_drift_training_share{domain="Person"} 0.7' in metrics
    assert "process_resident_memory_bytes" in metrics
    assert 'tweetdomains_http_request_seconds_bucket{le="30.0",route="/classify"}' in metrics
