"""A load generator in its own process: N concurrent HTTP clients against the API.

``python -m reliability.load --base URL --clients 64 --seconds 60 --out result.json``

Each client loops: POST ``/classify`` with a text that is either repeated (from a small pool,
so the cache can hit) or new (never sent before), and now and then ``/classify/batch``. Every
answer is checked (status 200, a model version, the right shape); the result file holds the
counts, latency percentiles, versions seen and a per-second timeline (wall-clock seconds) of
requests, failures and cache hits, so a scenario can line faults up with what clients saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

from tweetdomains.simulate import generate


class Tally:
    """What the clients saw."""

    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0
        self.statuses: Counter[str] = Counter()
        self.errors: list[str] = []
        self.latencies: list[float] = []
        self.versions: Counter[str] = Counter()
        self.timeline: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # sent, failed, hits, singles

    def fail(self, second: int, why: str) -> None:
        self.failed += 1
        self.timeline[second][1] += 1
        if len(self.errors) < 20:
            self.errors.append(why)

    def summary(self, seconds: float, clients: int) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(q: float) -> float:
            if not ordered:
                return 0.0
            return round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

        return {
            "clients": clients,
            "seconds": round(seconds, 2),
            "sent": self.sent,
            "failed": self.failed,
            "statuses": dict(self.statuses),
            "errors": self.errors,
            "throughput": round(self.sent / seconds, 1) if seconds else 0.0,
            "latency_ms": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": pct(1.0)},
            "versions": dict(self.versions),
            "timeline": [[t, *v] for t, v in sorted(self.timeline.items())],
        }


def _check(body: Any, batch: bool, size: int) -> str | None:
    """Why an answer is wrong, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("model_version"), str):
        return "no model_version"
    items = body.get("results") if batch else [body]
    if not isinstance(items, list) or len(items) != size:
        return "wrong number of results"
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("domains"), list) or not item["domains"]:
            return "no domains"
        if not isinstance(item.get("predicted"), list) or not isinstance(item.get("cached"), bool):
            return "no predicted/cached"
    return None


async def _client(
    index: int,
    client: httpx.AsyncClient,
    tally: Tally,
    pool: list[str],
    fresh: list[str],
    until: float,
    repeat_share: float,
    batch_share: float,
) -> None:
    rng = random.Random(index)
    serial = 0
    while time.monotonic() < until:
        serial += 1
        batch = rng.random() < batch_share
        texts = [
            rng.choice(pool) if rng.random() < repeat_share else f"{rng.choice(fresh)} n{index}x{serial}x{i}"
            for i in range(8 if batch else 1)
        ]
        path, payload = ("/classify/batch", {"texts": texts}) if batch else ("/classify", {"text": texts[0]})
        second = int(time.time())
        tally.sent += 1
        tally.timeline[second][0] += 1
        started = time.perf_counter()
        try:
            response = await client.post(path, json=payload)
        except httpx.HTTPError as exc:
            tally.statuses["error"] += 1
            tally.fail(second, f"{path}: {type(exc).__name__}: {exc}")
            continue
        tally.latencies.append(time.perf_counter() - started)
        tally.statuses[str(response.status_code)] += 1
        if response.status_code != 200:
            tally.fail(second, f"{path}: HTTP {response.status_code}: {response.text[:200]}")
            continue
        try:
            body = response.json()
        except ValueError:
            tally.fail(second, f"{path}: not JSON")
            continue
        problem = _check(body, batch, len(texts))
        if problem:
            tally.fail(second, f"{path}: {problem}")
            continue
        tally.versions[body["model_version"]] += 1
        if response.headers.get("x-model-version") not in (None, body["model_version"]):
            tally.fail(second, f"{path}: X-Model-Version header differs from the body")
        if not batch:
            tally.timeline[second][3] += 1
            tally.timeline[second][2] += int(body["cached"])


def texts(pool_size: int = 200, seed: int = 0) -> tuple[list[str], list[str]]:
    """The repeated pool and the fresh texts a run draws from (a scenario can warm the cache)."""
    records = generate(pool_size + 2000, seed=seed)
    return [r.text for r in records[:pool_size]], [r.text for r in records[pool_size:]]


async def run_load(
    base: str,
    clients: int,
    seconds: float,
    repeat_share: float = 0.5,
    batch_share: float = 0.1,
    pool_size: int = 200,
    headers: dict[str, str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run ``clients`` concurrent clients for ``seconds``; returns the summary."""
    pool, fresh = texts(pool_size, seed)
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30.0, limits=limits, headers=headers) as client:
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(
            *(
                _client(i, client, tally, pool, fresh, until, repeat_share, batch_share)
                for i in range(clients)
            )
        )
        elapsed = time.monotonic() - started
    return tally.summary(elapsed, clients)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", required=True)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat-share", type=float, default=0.5)
    parser.add_argument("--batch-share", type=float, default=0.1)
    parser.add_argument("--header", action="append", default=[], help="NAME:VALUE")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    result = asyncio.run(
        run_load(args.base, args.clients, args.seconds, args.repeat_share, args.batch_share, headers=headers)
    )
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "timeline"}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
