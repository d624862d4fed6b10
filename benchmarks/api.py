"""Inference API throughput and latency, side by side with the limits and the naive server.

Publishes a random-weight LSTM of the trainer's default size (embedding 200, hidden 100, two
layers, 80 labels, a 20,000-token vocabulary) into a temporary store, then measures:

(a) raw    the model's batched throughput in-process (``Classifier.predict_proba``): the limit;
(b) api    ``tweetdomains serve`` on unique texts (every request a cache miss);
(c) hit    ``tweetdomains serve`` on a small set of repeated texts (cache hits);
(d) floor  a trivial FastAPI endpoint answering a constant of the same shape: the HTTP floor;
           it parses the same body and runs under the API's own uvicorn settings
           (``tweetdomains_api.app.uvicorn_config``: asyncio's loop, the guarded httptools
           protocol), so ``hit_vs_floor`` compares the apps alone;
(e) naive  FastAPI calling the model once per request, no batching, no cache;
(f) overload  ``tweetdomains serve`` offered about 2x its measured capacity (open loop, unique
           texts) for ``--overload-seconds``: admitted requests' p99, the share shed with 503 +
           Retry-After, other failures, resident memory before and after;
(g) lone   one client, one uncached ``/classify`` at a time: its p50 beside the raw model's
           single-text call and the floor's p50 with one client.

Each server runs as its own process (uvicorn, one worker); the load comes from a separate
process (asyncio, raw HTTP/1.1 keep-alive connections, ``--clients`` of them). The API uses its
own ``redis-server`` when one is installed (else its in-process cache). Hit and floor, and the
three lone figures, are measured in turns (``--rounds`` of ``--seconds / 2`` each; medians), so
a shared host's changing load weighs on both sides of a ratio alike. Last line::

    raw=N api=N hit=N floor=N naive=N api_vs_raw=N api_vs_naive=N hit_vs_floor=N p99_api_ms=N
    p99_naive_ms=N overload_p99_ms=N shed_share=N lone_p50_ms=N raw_single_ms=N floor_p50_ms=N

    python benchmarks/api.py [--seconds 8] [--clients 64] [--dry-run]
    python benchmarks/api.py --phase overload [--overload-rate N]   # one phase, its own last line
    python benchmarks/api.py --phase hit
    python benchmarks/api.py --phase lone
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

LABELS = 80
VOCAB = 20_000
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server on port {port} not ready after {timeout}s")


def _texts(n: int, seed: int = 7) -> list[str]:
    from tweetdomains.simulate import generate

    return [r.text for r in generate(n, seed=seed)]


def publish_benchmark_model(store_uri: str) -> str:
    """A default-size random-weight LSTM, published and promoted; returns its run id."""
    import numpy as np
    import torch

    from tweetdomains.model import ModelConfig, build_model
    from tweetdomains.predict import run_artifacts
    from tweetdomains.registry import Registry, new_run_id
    from tweetdomains.store import open_store
    from tweetdomains.text import normalize, tokenize
    from tweetdomains.vocab import Vocabulary

    torch.manual_seed(0)
    words = [tokenize(normalize(t)) for t in _texts(2000)]
    filler = [[f"w{i}" for i in range(VOCAB)]]
    vocab = Vocabulary.build([*words, *filler], min_count=1, max_size=VOCAB)
    config = ModelConfig(
        kind="lstm", vocab_size=len(vocab), num_labels=LABELS, embedding_dim=200, hidden_dim=100
    )
    labels = [f"Domain {i:02d}" for i in range(LABELS)]
    run_id = new_run_id("bench")
    registry = Registry(open_store(store_uri))
    artifacts = run_artifacts(build_model(config), vocab, labels, np.full(LABELS, 0.5), {"note": "random"})
    registry.publish(run_id, artifacts)
    registry.promote(run_id, "val_micro_f1", 0.0, force=True)
    return run_id


def measure_raw(store_uri: str, seconds: float, batch: int) -> dict[str, float]:
    """Texts per second through ``predict_proba`` in batches of ``batch``, in this process,
    with the torch threads the API uses."""
    import torch

    from tweetdomains.predict import Classifier
    from tweetdomains.registry import Registry
    from tweetdomains.store import open_store
    from tweetdomains_api.cpus import inference_threads

    torch.set_num_threads(inference_threads())  # as the API sets it
    classifier = Classifier.load(Registry(open_store(store_uri)), "best")
    texts = _texts(4096, seed=11)
    classifier.predict_proba(texts[:batch])  # warm-up
    done, i, latencies = 0, 0, []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        chunk = texts[i : i + batch] or texts[:batch]
        i = (i + batch) % len(texts)
        t0 = time.perf_counter()
        classifier.predict_proba(chunk)
        latencies.append(time.perf_counter() - t0)
        done += len(chunk)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": done / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "errors": 0,
    }


# --- the comparison servers (run as `python benchmarks/api.py --serve floor|naive`) ---------


class ClassifyBody(BaseModel):
    """The request body the comparison servers parse (module level: FastAPI resolves it)."""

    text: str


def _floor_app(store_uri: str) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    constant = {
        "model_version": "constant",
        "domains": [{"name": f"Domain {i:02d}", "probability": round(1 / (i + 2), 6)} for i in range(LABELS)],
        "predicted": ["Domain 00"],
        "cached": True,
    }
    app = FastAPI()

    @app.post("/classify", response_model=None)
    async def classify(body: ClassifyBody) -> JSONResponse:
        return JSONResponse(constant)

    return app


def _naive_app(store_uri: str) -> Any:
    import numpy as np
    from fastapi import FastAPI

    from tweetdomains.predict import Classifier
    from tweetdomains.registry import Registry
    from tweetdomains.store import open_store

    classifier = Classifier.load(Registry(open_store(store_uri)), "best")
    app = FastAPI()

    @app.post("/classify", response_model=None)
    def classify(body: ClassifyBody) -> dict[str, Any]:
        probs = classifier.predict_proba([body.text])[0]
        order = np.argsort(-probs)
        return {
            "model_version": classifier.run_id,
            "domains": [{"name": classifier.labels[j], "probability": float(probs[j])} for j in order],
            "predicted": classifier.predicted(probs[None, :])[0],
            "cached": False,
        }

    @app.get("/readyz")
    def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def _serve(kind: str, store_uri: str, port: int) -> None:
    """Run a comparison server as ``serve`` runs the API: the same uvicorn settings (asyncio's
    loop, the guarded httptools protocol, no access log), so only the app differs."""
    import uvicorn

    from tweetdomains_api.app import uvicorn_config
    from tweetdomains_api.settings import Settings

    app = _floor_app(store_uri) if kind == "floor" else _naive_app(store_uri)
    settings = Settings(host="127.0.0.1", port=port, log_level="WARNING")
    uvicorn.Server(uvicorn_config(app, settings)).run()


# --- the load generator (run as `python benchmarks/api.py --load ...`) ----------------------


async def _client(
    port: int, texts: list[str], unique: bool, worker: int, window: tuple[float, float], out: dict[str, Any]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    start_at, stop_at = window
    try:
        while (now := time.perf_counter()) < stop_at:
            i += 1
            text = texts[(worker * 7919 + i) % len(texts)]
            if unique:
                text = f"{text} u{worker}x{i}"
            body = json.dumps({"text": text}).encode()
            head = (
                f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(head + body)
            header = await reader.readuntil(b"\r\n\r\n")
            status = int(header.split(b" ", 2)[1])
            length = 0
            for line in header.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            payload = await reader.readexactly(length)
            done = time.perf_counter()
            if now >= start_at:
                out["latencies"].append(done - t0)
                if status != 200:
                    out["errors"] += 1
                elif b'"cached":true' in payload.replace(b" ", b""):
                    out["hits"] += 1
    finally:
        writer.close()


async def _request(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], port: int, text: str
) -> tuple[int, bool]:
    """One POST /classify on a keep-alive connection: (status, whether Retry-After came)."""
    reader, writer = conn
    body = json.dumps({"text": text}).encode()
    writer.write(
        f"POST /classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    header = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in header.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(header.split(b" ", 2)[1]), b"\r\nretry-after:" in header.lower()


async def _offer(port: int, rate: float, seconds: float, texts: list[str]) -> None:
    """Open loop: requests start at ``rate`` a second whatever the answers, on as many
    keep-alive connections as are busy; prints offered/admitted/shed/failed and admitted p99."""
    # (reader, writer, when it was last used): a connection idle for over 4 s is closed here,
    # before the server's 5 s keep-alive timeout could close it under a request (a client race,
    # not the server's failure).
    free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    admitted: list[float] = []
    shed: list[float] = []
    on_fresh: list[float] = []  # every answer's latency, by whether its connection was new
    on_reused: list[float] = []
    failures: dict[str, int] = {}
    counts = {"offered": 0, "admitted": 0, "shed": 0, "shed_without_retry_after": 0, "failed": 0}

    def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        while free:
            reader, writer, used_at = free.pop()
            if time.perf_counter() - used_at < 4.0:
                return reader, writer
            writer.close()
        return None

    async def one(i: int) -> None:
        conn = None
        try:
            conn = connection()
            fresh = conn is None
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.perf_counter()
            status, retry_after = await _request(conn, port, f"{texts[i % len(texts)]} o{i}")
            (on_fresh if fresh else on_reused).append(time.perf_counter() - t0)
            if status == 200:
                counts["admitted"] += 1
                admitted.append(time.perf_counter() - t0)
            elif status == 503:
                counts["shed"] += 1
                shed.append(time.perf_counter() - t0)
                counts["shed_without_retry_after"] += not retry_after
            else:
                counts["failed"] += 1
                failures[str(status)] = failures.get(str(status), 0) + 1
            free.append((*conn, time.perf_counter()))
        except (OSError, asyncio.IncompleteReadError) as exc:
            counts["failed"] += 1
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            if conn is not None:
                conn[1].close()

    lag = {"max_s": 0.0}

    async def watch_own_lag() -> None:
        # This client's own lateness: a client that falls behind inflates every latency it sees.
        while True:
            due = time.perf_counter() + 0.02
            await asyncio.sleep(0.02)
            lag["max_s"] = max(lag["max_s"], time.perf_counter() - due)

    watcher = asyncio.create_task(watch_own_lag())
    tasks = []
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        due = counts["offered"] / rate
        if due > elapsed:
            await asyncio.sleep(due - elapsed)
        tasks.append(asyncio.create_task(one(counts["offered"])))
        counts["offered"] += 1
    await asyncio.gather(*tasks)
    watcher.cancel()
    for _, writer, _ in free:
        writer.close()
    summary = {**counts, "failures": failures, "seconds": seconds, "connections": len(free)}
    summary["client_lag_max_ms"] = 1000 * lag["max_s"]
    for name, latencies in (
        ("admitted", admitted),
        ("shed", shed),
        ("fresh", on_fresh),
        ("reused", on_reused),
    ):
        latencies.sort()
        n = len(latencies)
        summary[f"{name}_p50_ms"] = 1000 * latencies[n // 2] if n else 0.0
        summary[f"{name}_p99_ms"] = 1000 * latencies[min(n - 1, int(0.99 * n))] if n else 0.0
    print(json.dumps(summary))


def run_offer(port: int, rate: float, seconds: float, texts_path: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--offer", str(rate), "--load", str(port)]
    command += ["--seconds", str(seconds), "--texts", texts_path]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def _rss(port: int) -> float:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return float(line.split()[1])
    return 0.0


async def _load(
    port: int, clients: int, seconds: float, warmup: float, texts: list[str], unique: bool
) -> None:
    out: dict[str, Any] = {"latencies": [], "errors": 0, "hits": 0}
    start_at = time.perf_counter() + warmup
    window = (start_at, start_at + seconds)
    await asyncio.gather(*(_client(port, texts, unique, w, window, out) for w in range(clients)))
    latencies = sorted(out["latencies"])
    n = len(latencies)
    print(
        json.dumps(
            {
                "rps": n / seconds,
                "p50_ms": 1000 * latencies[n // 2] if n else 0.0,
                "p99_ms": 1000 * latencies[min(n - 1, int(0.99 * n))] if n else 0.0,
                "errors": out["errors"],
                "hit_rate": out["hits"] / n if n else 0.0,
            }
        )
    )


def run_load(
    port: int, clients: int, seconds: float, warmup: float, texts_path: str, unique: bool
) -> dict[str, Any]:
    """Drive ``port`` from a separate process; returns its JSON summary."""
    command = [
        sys.executable,
        __file__,
        "--load",
        str(port),
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--texts",
        texts_path,
    ]
    if unique:
        command.append("--unique")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    summary: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return summary


def _api_counters(port: int) -> dict[str, float]:
    """Batch-size and cache-error counters from the API's /metrics."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name in ("tweetdomains_batch_size_count", "tweetdomains_batch_size_sum"):
            out[name] = float(value)
        elif name == 'tweetdomains_cache_total{result="error"}':
            out["error"] = float(value)
    return out


def _start(command: list[str], env: dict[str, str], port: int, ready_path: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_http(port, ready_path, process)
    except BaseException:
        _stop(process)
        raise
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each")
    parser.add_argument("--clients", type=int, default=64, help="concurrent keep-alive connections")
    parser.add_argument("--raw-batch", type=int, default=64, help="batch size of the in-process limit")
    parser.add_argument("--no-redis", action="store_true", help="the API uses its in-process cache")
    parser.add_argument("--overload-seconds", type=float, default=20.0, help="the overload phase")
    parser.add_argument(
        "--overload-rate",
        type=_positive_rate,
        help="requests a second offered in overload (default: 2x measured)",
    )
    parser.add_argument(
        "--phase",
        choices=["all", "overload", "hit", "lone"],
        default="all",
        help="run one phase alone: overload (capacity, then 2x it), hit (cache hits and the floor) "
        "or lone (one client: the API, the raw single call, the floor)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="turns of hit/floor and of the lone figures (medians)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="every phase for a moment, 4 clients: checks it runs"
    )
    parser.add_argument("--offer", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=["floor", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--unique", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.serve:
        _serve(args.serve, args.store, args.port)
        return 0
    if args.dry_run:
        args.seconds, args.warmup, args.clients, args.overload_seconds = 0.5, 0.2, 4, 1.0
        args.rounds = 1
    if args.load:
        texts = json.loads(Path(args.texts).read_text())
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        if args.offer is not None:
            asyncio.run(_offer(args.load, args.offer, args.seconds, texts))
        else:
            asyncio.run(_load(args.load, args.clients, args.seconds, args.warmup, texts, args.unique))
        return 0

    # This tree first: the servers must run the code under test, not another editable install.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TWEETDOMAINS_LOG_LEVEL": "WARNING", "PYTHONPATH": path}
    if args.phase != "all":
        return run_phase(args, env)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        store, unique_path, repeat_path = _prepare(Path(tmp))
        results["raw"] = measure_raw(store, args.seconds, args.raw_batch)
        results["raw_single"] = measure_raw(store, min(args.seconds, 3.0), 1)
        print(f"raw   (in-process, batch {args.raw_batch}): {results['raw']['rps']:.0f} texts/s", flush=True)
        slice_s = args.seconds / 2  # hit/floor and the lone figures are measured in turns
        with _api_server(store, env, args.no_redis) as port, _comparison_server("floor", store, env) as floor:
            load = (port, args.clients, args.seconds, args.warmup)
            before = _api_counters(port)
            results["api"] = run_load(*load, str(unique_path), unique=True)
            middle = _api_counters(port)
            results |= _hit_and_floor(port, floor, args, slice_s, repeat_path)
            after = _api_counters(port)
            results |= _lone(port, floor, store, args, slice_s, unique_path, repeat_path)
            rate = _overload_rate(args.overload_rate, results["api"]["rps"])
            overload = _overload(port, rate, args.overload_seconds, unique_path)
            passes = middle["tweetdomains_batch_size_count"] - before["tweetdomains_batch_size_count"]
            texts = middle["tweetdomains_batch_size_sum"] - before["tweetdomains_batch_size_sum"]
            api_notes = (
                f"api: {texts / max(passes, 1):.1f} texts per forward pass on average; "
                f"cache errors {after.get('error', 0):.0f}"
            )
        with _comparison_server("naive", store, env) as port:
            results["naive"] = run_load(port, args.clients, args.seconds, args.warmup, str(unique_path), True)

    cache = "redis" if shutil.which("redis-server") and not args.no_redis else "in-process LRU"
    print(
        f"\n{args.clients} concurrent clients, {args.seconds:g} s each "
        f"({os.cpu_count()} CPUs, shared with other work; cache: {cache})"
    )
    print(api_notes)
    print(f"{'':6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'hits':>6}")
    for name in ("raw", "api", "hit", "floor", "naive"):
        r = results[name]
        hits = f"{100 * r['hit_rate']:.0f}%" if "hit_rate" in r else "-"
        print(f"{name:6} {r['rps']:9.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['errors']:7d} {hits:>6}")
    print(_overload_line(overload, rate, args.overload_seconds))
    lone, single, floor_lone = results["lone"], results["raw_single"], results["floor_lone"]
    print(
        f"lone client: p50 {lone['p50_ms']:.2f} ms; raw single call {single['p50_ms']:.2f} ms + "
        f"floor {floor_lone['p50_ms']:.2f} ms + 1 ms = {single['p50_ms'] + floor_lone['p50_ms'] + 1:.2f} ms"
    )
    rps = {k: v["rps"] for k, v in results.items()}
    ratios = {
        "api_vs_raw": rps["api"] / rps["raw"],
        "api_vs_naive": rps["api"] / rps["naive"],
        "hit_vs_floor": results["hit"]["vs_floor"],
    }
    print(
        "goals: api_vs_raw >= 0.7, api_vs_naive >= 5, hit_vs_floor >= 0.8, p99 api < p99 naive, "
        "overload p99 < 1000 ms, lone p50 <= raw single + floor + 1 ms"
    )
    shed_share = overload["shed"] / max(overload["offered"], 1)
    print(
        " ".join(f"{k}={rps[k]:.0f}" for k in ("raw", "api", "hit", "floor", "naive"))
        + " "
        + " ".join(f"{k}={v:.2f}" for k, v in ratios.items())
        + f" p99_api_ms={results['api']['p99_ms']:.1f} p99_naive_ms={results['naive']['p99_ms']:.1f}"
        + f" overload_p99_ms={overload['admitted_p99_ms']:.0f} shed_share={shed_share:.2f}"
        + f" lone_p50_ms={lone['p50_ms']:.2f} raw_single_ms={single['p50_ms']:.2f}"
        + f" floor_p50_ms={floor_lone['p50_ms']:.2f}"
    )
    return 0


def _medians(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over a measurement's slices (errors: their sum)."""
    return {
        key: sum(s[key] for s in slices) if key == "errors" else statistics.median(s[key] for s in slices)
        for key in slices[0]
    }


def _in_turns(
    measures: dict[str, Callable[[], dict[str, Any]]], rounds: int
) -> dict[str, list[dict[str, Any]]]:
    """Each measurement ``rounds`` times, taking turns, so that a host whose load changes (a
    shared machine) weighs on all of them alike."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in measures}
    for _ in range(rounds):
        for name, measure in measures.items():
            out[name].append(measure())
    return out


def _hit_and_floor(
    port: int, floor: int, args: argparse.Namespace, slice_s: float, repeat_path: Path
) -> dict[str, dict[str, Any]]:
    """Cache hits and the HTTP floor on the same repeated texts, in turns; ``vs_floor`` is the
    median of the rounds' hit / floor ratios."""

    def on(target: int) -> Callable[[], dict[str, Any]]:
        return lambda: run_load(target, args.clients, slice_s, args.warmup, str(repeat_path), False)

    turns = _in_turns({"hit": on(port), "floor": on(floor)}, args.rounds)
    ratios = [h["rps"] / f["rps"] for h, f in zip(turns["hit"], turns["floor"], strict=True)]
    return {
        "hit": {**_medians(turns["hit"]), "vs_floor": statistics.median(ratios)},
        "floor": _medians(turns["floor"]),
    }


def _lone(
    port: int,
    floor: int,
    store: str,
    args: argparse.Namespace,
    slice_s: float,
    unique_path: Path,
    repeat_path: Path,
) -> dict[str, dict[str, Any]]:
    """One client at a time on the API (uncached), the raw model's single call, one client on
    the floor: in turns, the median of each."""
    turns = _in_turns(
        {
            "raw_single": lambda: measure_raw(store, min(slice_s, 3.0), 1),
            "lone": lambda: run_load(port, 1, slice_s, args.warmup, str(unique_path), True),
            "floor_lone": lambda: run_load(floor, 1, slice_s, args.warmup, str(repeat_path), False),
        },
        args.rounds,
    )
    return {name: _medians(slices) for name, slices in turns.items()}


def _prepare(tmp: Path) -> tuple[str, Path, Path]:
    """The benchmark model's store and the unique and repeated text files."""
    store = str(tmp / "store")
    run_id = publish_benchmark_model(store)
    print(f"model {run_id}: lstm emb 200 hidden 100 x2, {LABELS} labels, vocab {VOCAB}", flush=True)
    unique_path, repeat_path = tmp / "unique.json", tmp / "repeat.json"
    unique_path.write_text(json.dumps(_texts(2000, seed=3)))
    repeat_path.write_text(json.dumps(_texts(256, seed=5)))
    return store, unique_path, repeat_path


@contextlib.contextmanager
def _api_server(store: str, env: dict[str, str], no_redis: bool) -> Iterator[int]:
    """``tweetdomains serve`` on a free port (with its own redis-server when one is installed)."""
    api_command = [sys.executable, "-m", "tweetdomains", "serve", "--store", store]
    redis_server = shutil.which("redis-server")
    redis_proc = None
    if redis_server and not no_redis:
        redis_port = _free_port()
        no_persistence = ["--save", "", "--appendonly", "no"]
        redis_proc = subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", *no_persistence],
            stdout=subprocess.DEVNULL,
        )
        api_command += ["--redis-url", f"redis://127.0.0.1:{redis_port}/0"]
    try:
        port = _free_port()
        api = _start([*api_command, "--port", str(port)], env, port, "/readyz")
        try:
            yield port
        finally:
            _stop(api)
    finally:
        if redis_proc is not None:
            _stop(redis_proc)


@contextlib.contextmanager
def _comparison_server(kind: str, store: str, env: dict[str, str]) -> Iterator[int]:
    port = _free_port()
    command = [sys.executable, __file__, "--serve", kind, "--store", store, "--port", str(port)]
    server = _start(command, env, port, "/openapi.json")
    try:
        yield port
    finally:
        _stop(server)


MIN_OVERLOAD_RATE = 20.0


def _positive_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not rate > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the rate must be above 0 requests a second")
    return rate


def _overload_rate(asked: float | None, capacity_rps: float) -> float:
    """The rate offered in overload: ``asked``, else twice the measured capacity, never under
    MIN_OVERLOAD_RATE (a dry run on a loaded host can measure no answer at all in its moment)."""
    return asked if asked is not None else max(2 * capacity_rps, MIN_OVERLOAD_RATE)


def _overload(port: int, rate: float, seconds: float, texts_path: Path) -> dict[str, Any]:
    rss_before = _rss(port)
    overload = run_offer(port, rate, seconds, str(texts_path))
    return {**overload, "rss_before": rss_before, "rss_after": _rss(port)}


def _overload_line(overload: dict[str, Any], rate: float, seconds: float) -> str:
    return (
        f"overload: {overload['offered']} offered at {rate:.0f}/s for {seconds:g} s: "
        f"{overload['admitted']} admitted (p50 {overload['admitted_p50_ms']:.0f} ms, "
        f"p99 {overload['admitted_p99_ms']:.0f} ms), {overload['shed']} shed with 503 "
        f"(p99 {overload['shed_p99_ms']:.0f} ms, {overload['shed_without_retry_after']} without "
        f"Retry-After), {overload['failed']} other failures {overload['failures'] or ''}, "
        f"{overload['connections']} connections; "
        f"RSS {overload['rss_before'] / 2**20:.0f} -> {overload['rss_after'] / 2**20:.0f} MiB"
    )


def run_phase(args: argparse.Namespace, env: dict[str, str]) -> int:
    """One phase alone, for before/after comparisons: ``overload`` (capacity measured first unless
    ``--overload-rate``), ``hit`` (cache hits beside the HTTP floor) or ``lone`` (one client)."""
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        store, unique_path, repeat_path = _prepare(Path(tmp))
        if args.phase == "overload":
            with _api_server(store, env, args.no_redis) as port:
                rate = args.overload_rate
                if rate is None:
                    api = run_load(port, args.clients, args.seconds, args.warmup, str(unique_path), True)
                    rate = _overload_rate(None, api["rps"])
                    print(f"api: {api['rps']:.0f} req/s (unique texts); offering {rate:.0f}/s", flush=True)
                overload = _overload(port, rate, args.overload_seconds, unique_path)
            print(_overload_line(overload, rate, args.overload_seconds))
            print(
                f"overload_rate={rate:.0f} overload_p50_ms={overload['admitted_p50_ms']:.0f} "
                f"overload_p99_ms={overload['admitted_p99_ms']:.0f} "
                f"shed_share={overload['shed'] / max(overload['offered'], 1):.2f} "
                f"shed_p99_ms={overload['shed_p99_ms']:.0f} failed={overload['failed']} "
                f"rss_mib={overload['rss_before'] / 2**20:.0f}->{overload['rss_after'] / 2**20:.0f}"
            )
            return 0
        slice_s = args.seconds / 2
        with _api_server(store, env, args.no_redis) as port, _comparison_server("floor", store, env) as floor:
            if args.phase == "lone":
                lone = _lone(port, floor, store, args, slice_s, unique_path, repeat_path)
            else:
                results = _hit_and_floor(port, floor, args, slice_s, repeat_path)
    if args.phase == "lone":
        single, api, floor_lone = lone["raw_single"], lone["lone"], lone["floor_lone"]
        target = single["p50_ms"] + floor_lone["p50_ms"] + 1
        print(
            f"lone_p50_ms={api['p50_ms']:.2f} raw_single_ms={single['p50_ms']:.2f} "
            f"floor_p50_ms={floor_lone['p50_ms']:.2f} lone_target_ms={target:.2f} "
            f"lone_p99_ms={api['p99_ms']:.2f} lone_errors={api['errors']}"
        )
        return 0
    hit, floor_figures = results["hit"], results["floor"]
    print(
        f"hit={hit['rps']:.0f} floor={floor_figures['rps']:.0f} hit_vs_floor={hit['vs_floor']:.2f} "
        f"hit_p99_ms={hit['p99_ms']:.1f} floor_p99_ms={floor_figures['p99_ms']:.1f} "
        f"hit_rate={hit['hit_rate']:.2f} hit_errors={hit['errors']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
