"""Collector throughput into S3: our batching sink with its write-ahead journal, the same sink
without it, and one put per tweet (the original design), side by side in one run.

Starts moto's S3 server on loopback, generates a large synthetic stream (``simulate``, before
any timing) and feeds it in the sources' chunks through the collector's sink (dedupe, default
batching hints, gzip, put and read-back) into it, first with the journal off (batches in
memory only), then on (every record appended and fsynced every 200 ms before it counts), then
writes a smaller number of tweets one PUT each, as the original collector did with Firehose.
Prints rates, memory over the runs and, last, ``tweets_per_s=N baseline_tweets_per_s=N
ratio=N peak_rss_mb=N journal_tweets_per_s=N journal_cost_pct=N`` (``tweets_per_s`` is the
sink without the journal; the journal's cost is the share of that throughput it takes; each
sink runs ``--repeats`` times, alternating, and its best run counts).

    python benchmarks/collector.py [--tweets 200000] [--baseline-tweets 2000] [--repeats 2] [--dry-run]
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"moto server did not start on port {port}")


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class RssSampler(threading.Thread):
    """Samples this process's resident memory every ``every`` seconds."""

    def __init__(self, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[float] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.samples.append(_rss_mb())


def make_records(tweets: int) -> list[Any]:
    """The first ``tweets`` kept records of ``simulate:1``, built before any timing starts."""
    from tweetdomains.codecs import keep_reason
    from tweetdomains.simulate import SyntheticTweets

    started = time.perf_counter()
    stream = (r for r in SyntheticTweets(1).records() if keep_reason(r) is None)
    records = [next(stream) for _ in range(tweets)]
    print(f"generated {tweets} kept synthetic tweets in {time.perf_counter() - started:.1f}s", flush=True)
    return records


def run_ours(uri: str, records: list[Any], spool: Path, journal: bool) -> tuple[float, list[float]]:
    """The collector's sink (default batching, dedupe on) taking ``records`` in the source's
    chunks until every batch is confirmed in the store; tweets/s and RSS samples."""
    from tweetdomains.store import open_store
    from tweetdomains_collector.settings import Settings
    from tweetdomains_collector.sink import BatchSink
    from tweetdomains_collector.sources import CHUNK
    from tweetdomains_collector.stats import CollectorStats

    settings = Settings(store=uri, spool_dir=str(spool))
    stats = CollectorStats()
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    sink = BatchSink(
        open_store(uri),
        stats,
        spool_dir=spool,
        batch_records=settings.batch_records,
        batch_bytes=settings.batch_bytes,
        batch_seconds=settings.batch_seconds,
        dedupe_window=settings.dedupe_window,
        compress_level=settings.compress_level,
        journal=journal,
        journal_sync_ms=settings.journal_sync_ms,
    )
    for start in range(0, len(records), CHUNK):
        sink.add_many(records[start : start + CHUNK])
        sink.tick()
    sink.close(drain_seconds=600)
    elapsed = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    if stats.written != len(records) or stats.spool_depth:
        raise SystemExit(
            f"benchmark run lost tweets: written={stats.written} spool_depth={stats.spool_depth}"
        )
    label = "journal on" if journal else "journal off"
    extra = (
        f", {stats.journal_fsyncs} fsyncs (max {stats.journal_fsync_max_seconds * 1000:.1f} ms)"
        if journal
        else ""
    )
    print(
        f"sink, {label}: {stats.written} tweets in {stats.batches_written} batches{extra} "
        f"({stats.bytes_written / 1e6:.1f} MB gzip) "
        f"in {elapsed:.2f}s = {stats.written / elapsed:,.0f} tweets/s",
        flush=True,
    )
    return stats.written / elapsed, sampler.samples


def run_baseline(endpoint: str, bucket: str, tweets: int) -> float:
    """One PUT per tweet, as the original collector put one record per tweet to Firehose."""
    import boto3

    from tweetdomains.codecs import keep_reason
    from tweetdomains.simulate import SyntheticTweets

    client = boto3.client("s3", endpoint_url=endpoint)
    records = (r for r in SyntheticTweets(2).records() if keep_reason(r) is None)
    started = time.perf_counter()
    for index in range(tweets):
        record = next(records)
        client.put_object(
            Bucket=bucket, Key=f"baseline/{record.id}-{index}.json", Body=record.to_json().encode()
        )
    elapsed = time.perf_counter() - started
    print(
        f"baseline: {tweets} tweets, one PUT each, in {elapsed:.2f}s = {tweets / elapsed:,.0f} tweets/s",
        flush=True,
    )
    return tweets / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tweets", type=int, default=200_000, help="tweets through our sink (default %(default)s)"
    )
    parser.add_argument("--baseline-tweets", type=int, default=2_000, help="tweets put one by one")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each sink, best kept (default 2)")
    parser.add_argument("--dry-run", action="store_true", help="a few tweets each way: checks it runs")
    args = parser.parse_args()
    if args.dry_run:
        args.tweets, args.baseline_tweets, args.repeats = 500, 20, 1

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        records = make_records(args.tweets)
        rss_before = _rss_mb()
        rates: dict[bool, float] = {False: 0.0, True: 0.0}
        for repeat in range(args.repeats):
            for journal in (False, True):
                with tempfile.TemporaryDirectory() as spool:
                    uri = f"s3://bench/collector-{'journal' if journal else 'memory'}-{repeat}"
                    rate, samples = run_ours(uri, records, Path(spool), journal)
                rates[journal] = max(rates[journal], rate)  # best of the repeats: the host is shared
                if samples:
                    quarter = max(1, len(samples) // 4)
                    print(
                        f"rss_mb ({'journal on' if journal else 'journal off'}): before={rss_before:.0f} "
                        f"first_quarter_max={max(samples[:quarter]):.0f} "
                        f"last_quarter_max={max(samples[-quarter:]):.0f}",
                        flush=True,
                    )
        ours, journaled = rates[False], rates[True]
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # ru_maxrss is KiB on Linux
        baseline = run_baseline(endpoint, "bench", args.baseline_tweets)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        f"tweets_per_s={ours:.0f} baseline_tweets_per_s={baseline:.0f} ratio={ours / baseline:.1f} "
        f"peak_rss_mb={peak_mb:.0f} journal_tweets_per_s={journaled:.0f} "
        f"journal_cost_pct={100 * (1 - journaled / ours):.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
