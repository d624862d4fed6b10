"""Scenario 1: hostile HTTP input against the API process. Zero 5xx; every refusal a clear 4xx.

Two parts: schemathesis (its CLI, as a user would run it) generates requests from the API's
own ``/openapi.json``; then hand-written cases that generators rarely reach: invalid UTF-8,
NUL bytes, a 10 MB body, deeply nested JSON, a 100,000-character text, wrong content types,
batches of 0 and of the limit + 1, and slow-loris connections that trickle their bytes while
normal clients must still be served.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reliability.harness import ApiServer, Row, http_json
from reliability.models import publish_tiny
from tweetdomains.store import LocalStore

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tweetdomains_api.cli") is None, reason="the API service is not there yet"
)

BIN = Path(sys.executable).parent
MIN_GENERATED = 1000
BATCH_LIMIT = 64  # set on the API process, so "limit + 1" is known whatever the schema says


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """One API process (in-process cache, tiny model) for the module."""
    workdir = tmp_path_factory.mktemp("hostile")
    store_uri = str(workdir / "store")
    publish_tiny(LocalStore(store_uri), "hostile-run", seed=11, value=0.5)
    server = ApiServer(store_uri, workdir, env={"TWEETDOMAINS_MAX_TEXTS_PER_BATCH": str(BATCH_LIMIT)})
    server.wait_ready(90)
    yield server
    server.stop()


def _har_statuses(path: Path) -> Counter[int]:
    entries = json.loads(path.read_text(encoding="utf-8"))["log"]["entries"]
    return Counter(int(entry["response"]["status"]) for entry in entries)


@pytest.mark.scenario("1a schemathesis on /openapi.json")
def test_generated_requests_never_get_a_5xx(row: Row, api: ApiServer, tmp_path: Path) -> None:
    import subprocess

    har = tmp_path / "schemathesis.har"
    argv = [str(BIN / "schemathesis"), "run", f"{api.base}/openapi.json"]
    argv += ["--checks", "not_a_server_error", "--max-examples", "1500", "--seed", "8"]
    argv += ["--phases", "examples,coverage,fuzzing,stateful", "--workers", "2", "--request-timeout", "30"]
    argv += ["--report", "har", "--report-har-path", str(har), "--suppress-health-check", "all"]
    argv += ["--warnings", "off", "--no-color", "--generation-database", "none"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    statuses = _har_statuses(har)
    sent = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    row.load = "schemathesis: examples, coverage, fuzzing, stateful phases, every operation"
    row.faults = "generated valid and invalid bodies, headers, methods"
    row.requests, row.failed = sent, server_errors
    row.figures = {
        "by_status": " ".join(f"{s}:{n}" for s, n in sorted(statuses.items())),
        "schemathesis_exit": done.returncode,
        "stateful": _phase_outcome(done.stdout, "Stateful"),
    }
    assert api.proc.alive(), api.proc.stderr()
    assert server_errors == 0, done.stdout[-6000:]
    assert done.returncode == 0, done.stdout[-6000:]
    assert sent >= MIN_GENERATED, f"only {sent} generated requests"


def _phase_outcome(output: str, phase: str) -> str:
    """What schemathesis's summary says of a phase (e.g. "not applicable": no links in the schema)."""
    for line in output.splitlines():
        if line.strip().lstrip("✅⏭❌🚫 ").startswith(phase):
            rest = line.split(phase, 1)[1].strip()
            return rest.strip("()") or ("passed" if "✅" in line else line.strip())
    return "not run"


def _raw(port: int, request: bytes, timeout: float = 30.0) -> int:
    """Send raw bytes, return the response status (0 if the server closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return 0
            data += chunk
    return int(data.split(b" ", 2)[1])


def _post_raw(port: int, path: str, body: bytes, content_type: str | None = "application/json") -> int:
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n"
    if content_type is not None:
        head += f"Content-Type: {content_type}\r\n"
    return _raw(port, head.encode() + b"\r\n" + body)


def _cases(limit: int) -> list[tuple[str, str, dict[str, Any], set[int]]]:
    """(name, path, request kwargs for httpx, accepted statuses)."""
    bad = set(range(400, 500))
    ok_or_bad = {200} | bad
    deep = 50_000
    return [
        ("invalid UTF-8", "/classify", {"content": b'{"text": "caf\xc3\x28 \xff\xfe"}'}, bad),
        ("invalid UTF-8 in batch", "/classify/batch", {"content": b'{"texts": ["\xff\xff"]}'}, bad),
        ("NUL in text", "/classify", {"json": {"text": "a\u0000b\u0000"}}, ok_or_bad),
        ("raw NUL bytes", "/classify", {"content": b'{"text": "a\x00b"}'}, bad),
        ("only NULs", "/classify", {"content": b"\x00" * 1000}, bad),
        ("10 MB body", "/classify", {"json": {"text": "x" * 10_000_000}}, {413}),
        ("10 MB batch", "/classify/batch", {"json": {"texts": ["word " * 2000] * 1000}}, {413}),
        (
            "deeply nested JSON",
            "/classify",
            {"content": b'{"text": ' + b"[" * deep + b"]" * deep + b"}"},
            bad,
        ),
        ("deeply nested objects", "/classify", {"content": b'{"a":' * deep + b"1" + b"}" * deep}, bad),
        ("100,000-char text", "/classify", {"json": {"text": "goal " * 20_000}}, {200, 413, 422}),
        ("100,000 chars, one word", "/classify", {"json": {"text": "a" * 100_000}}, {200, 413, 422}),
        (
            "text/plain",
            "/classify",
            {"content": b'{"text": "hi"}', "headers": {"content-type": "text/plain"}},
            ok_or_bad,
        ),
        ("form", "/classify", {"data": {"text": "hi"}}, bad),
        ("multipart", "/classify", {"files": {"text": ("a.txt", b"hi")}}, bad),
        (
            "XML",
            "/classify",
            {"content": b"<text>hi</text>", "headers": {"content-type": "application/xml"}},
            bad,
        ),
        ("no body", "/classify", {}, bad),
        ("JSON null", "/classify", {"content": b"null"}, bad),
        ("JSON array", "/classify", {"json": ["hi"]}, bad),
        ("truncated JSON", "/classify", {"content": b'{"text": "hi'}, bad),
        ("text is a number", "/classify", {"json": {"text": 12345}}, bad),
        ("text is null", "/classify", {"json": {"text": None}}, bad),
        ("text is a list", "/classify", {"json": {"text": ["a", "b"]}}, bad),
        ("empty text", "/classify", {"json": {"text": ""}}, bad),
        ("whitespace text", "/classify", {"json": {"text": " \t\n\u3000 "}}, bad),
        ("lone surrogate escape", "/classify", {"content": b'{"text": "\\ud800 x"}'}, ok_or_bad),
        ("huge number", "/classify", {"content": b'{"text": 1' + b"0" * 5000 + b"}"}, bad),
        ("batch of 0", "/classify/batch", {"json": {"texts": []}}, {422}),
        ("batch of limit+1", "/classify/batch", {"json": {"texts": ["hi"] * (limit + 1)}}, {413, 422}),
        ("batch of limit", "/classify/batch", {"json": {"texts": ["hi"] * limit}}, {200}),
        ("batch texts is a string", "/classify/batch", {"json": {"texts": "hi"}}, bad),
        ("batch with a null", "/classify/batch", {"json": {"texts": ["hi", None]}}, bad),
        ("batch with an empty text", "/classify/batch", {"json": {"texts": ["hi", ""]}}, bad),
        ("unknown fields", "/classify", {"json": {"text": "hi", "admin": True, "__proto__": {}}}, ok_or_bad),
    ]


@pytest.mark.scenario("1b hand-written hostile input")
def test_hand_written_hostile_requests_get_clear_4xx(row: Row, api: ApiServer) -> None:
    cases = _cases(BATCH_LIMIT)
    problems: list[str] = []
    statuses: Counter[int] = Counter()
    sent = 0
    with httpx.Client(base_url=api.base, timeout=60) as client:
        for name, path, kwargs, accepted in cases:
            kwargs = dict(kwargs)
            headers = {"connection": "close"}  # one connection per case: no case breaks the next
            if "content" in kwargs:
                headers["content-type"] = "application/json"
            kwargs["headers"] = {**headers, **kwargs.get("headers", {})}
            sent += 1
            try:
                response = client.post(path, **kwargs)
            except httpx.HTTPError as exc:
                statuses[0] += 1  # no answer at all: not a clear 4xx either
                problems.append(f"{name}: no response ({type(exc).__name__}: {exc})")
                client.close()
                client = httpx.Client(base_url=api.base, timeout=60)
                continue
            statuses[response.status_code] += 1
            if response.status_code not in accepted:
                problems.append(f"{name}: {response.status_code} {response.text[:200]!r}")
            elif 400 <= response.status_code < 500:
                try:
                    detail = response.json().get("detail")
                except (ValueError, AttributeError):
                    detail = None
                if not detail:
                    problems.append(f"{name}: {response.status_code} without a JSON detail")
        # Requests outside the schema: methods, paths, headers.
        extra = [
            ("PUT /classify", client.put("/classify", json={"text": "hi"}), {405}),
            ("DELETE /model", client.delete("/model"), {405}),
            ("GET /classify", client.get("/classify"), {405}),
            ("8 KB path", client.get("/" + "a" * 8000), {404, 414, 431}),
            ("query junk", client.get("/labels?x=%ff%00&y=" + "z" * 4000), {200}),
            ("../ path", client.get("/../../etc/passwd"), {404}),
        ]
        for name, response, accepted in extra:
            sent += 1
            statuses[response.status_code] += 1
            if response.status_code not in accepted:
                problems.append(f"{name}: {response.status_code}")
    # Bytes no HTTP client would send.
    raw = [
        ("no Content-Length", b"POST /classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, 499),
        ("bad Content-Length", b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, 499),
        ("header with NUL", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, 499),
        ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, 0, 499),
    ]
    for name, data, low, high in raw:
        status = _raw(api.port, data)
        sent += 1
        statuses[status] += 1
        if not (status == 0 or low <= status <= high):
            problems.append(f"{name}: {status}")
    status = _post_raw(api.port, "/classify", b'{"text": "hi"}', content_type=None)
    sent += 1
    statuses[status] += 1
    if status >= 500:
        problems.append(f"no content type: {status}")
    assert api.proc.alive(), api.proc.stderr()
    healthy = http_json(api.base + "/classify", {"text": "still serving?"})[0]
    row.load = f"{sent} hand-written requests ({len(cases)} body cases, methods, paths, raw bytes)"
    row.faults = "invalid UTF-8, NUL, 10 MB, nesting 50k, 100k chars, content types, batch 0/limit+1"
    row.requests = sent
    row.failed = sum(n for s, n in statuses.items() if s >= 500)
    row.figures = {"by_status": " ".join(f"{s}:{n}" for s, n in sorted(statuses.items()))}
    assert healthy == 200
    assert row.failed == 0 and not problems, "\n".join(problems)


def _trickle(port: int, stop: threading.Event, mode: str, closed: list[str]) -> None:
    """A slow-loris client: headers (or a body) one byte-ish a second until told to stop."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        closed.append("refused")
        return
    try:
        if mode == "headers":
            pieces = [b"POST /classify HTTP/1.1\r\n", b"Host: x\r\n"] + [
                b"X-Slow: %d\r\n" % i for i in range(600)
            ]
        else:
            body = json.dumps({"text": "slow " * 200}).encode()
            head = b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            head += b"Content-Length: %d\r\n\r\n" % len(body)
            sock.sendall(head)
            pieces = [body[i : i + 2] for i in range(0, len(body), 2)]
        for piece in pieces:
            if stop.wait(1.0):
                break
            sock.sendall(piece)
    except OSError:
        closed.append(mode)  # the server hung up on the slow client: fine
    finally:
        sock.close()


@pytest.mark.scenario("1c slow-loris connections")
def test_slow_clients_do_not_starve_normal_ones(row: Row, api: ApiServer) -> None:
    stop = threading.Event()
    closed: list[str] = []
    slow = [
        threading.Thread(target=_trickle, args=(api.port, stop, mode, closed), daemon=True)
        for mode in ["headers"] * 48 + ["body"] * 48
    ]
    for thread in slow:
        thread.start()
    time.sleep(2)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    try:
        with httpx.Client(base_url=api.base, timeout=10) as client:
            deadline = time.monotonic() + 10
            index = 0
            while time.monotonic() < deadline:
                index += 1
                started = time.perf_counter()
                response = client.post("/classify", json={"text": f"normal client {index}"})
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] += 1
    finally:
        stop.set()
        for thread in slow:
            thread.join(timeout=10)
    latencies.sort()
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    row.load = f"{len(slow)} slow-loris connections (48 trickling headers, 48 a body) for 12 s"
    row.faults = "one piece a second per connection"
    row.requests = sum(statuses.values())
    row.failed = sum(n for s, n in statuses.items() if s != 200)
    row.figures = {"normal_p99_ms": round(p99, 1), "slow_conns_cut_by_server": len(closed)}
    assert api.proc.alive(), api.proc.stderr()
    assert row.failed == 0, statuses
    assert row.requests >= 20 and p99 < 2000
