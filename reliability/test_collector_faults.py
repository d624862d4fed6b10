"""Scenarios 5 and 6: the collector process against a failing store and a failing stream
(the journal's crash scenarios, 9a-9e, are in ``test_collector_journal.py``).

The collector runs as ``python -m tweetdomains collect`` in its own process; the store is a
moto S3 server of this module reached through a :class:`TcpProxy` that takes it off the
network (connections refused and broken) without losing its objects; the stream is the
loopback X streaming server of the collector's own tests.
"""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import Proc, Row, child_env, free_port, kill_tree, metric, stored_ids, wait_until
from tests.conftest import S3Server
from tests.integration.xstream_server import KEEP_ALIVE, Plan, TcpProxy, XStreamServer
from tweetdomains.codecs import keep_reason, parse_payload
from tweetdomains.simulate import generate, stream_messages
from tweetdomains_collector.journal import journal_records

OUTAGE_SECONDS = 30.0
M = "tweetdomains_collector_"


def _env(s3: S3Server, proxy: TcpProxy, tmp_path: Path, **extra: str) -> dict[str, str]:
    return child_env(
        {
            **s3.env(),
            "AWS_ENDPOINT_URL": proxy.endpoint,
            "TWEETDOMAINS_SPOOL_DIR": str(tmp_path / "spool"),
            "TWEETDOMAINS_SPOOL_RETRY_START": "0.2",
            "TWEETDOMAINS_SPOOL_RETRY_MAX": "2",
            "TWEETDOMAINS_DRAIN_SECONDS": "30",
            **extra,
        }
    )


def _replay_file(tmp_path: Path, n: int, seed: int) -> tuple[Path, list[str]]:
    """A JSONL file of ``n`` synthetic records, and the ids the collector must keep."""
    records = generate(n, seed=seed)
    path = tmp_path / "replay.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    return path, [r.id for r in records if keep_reason(r) is None and r.id is not None]


def _spooled_ids(spool: Path) -> list[str | None]:
    """The ids in every journal (one per store) under ``spool``: what waits for the store."""
    return [
        r.id for journal in sorted(p for p in spool.iterdir() if p.is_dir()) for r in journal_records(journal)
    ]


@pytest.mark.scenario("5a store down 30 s during replay")
def test_store_outage_during_replay_loses_and_duplicates_nothing(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied
    path, expected = _replay_file(tmp_path, 3000, seed=51)
    port = free_port()
    row.load = "replay 3,000 tweets at 80/s, batches of 50 or 1 s"
    row.faults = f"S3 unreachable {OUTAGE_SECONDS:.0f} s (connections refused and cut)"
    argv = ["collect", "--source", f"replay:{path}", "--store", uri, "--rate", "80"]
    argv += ["--batch-records", "50", "--batch-seconds", "1", "--metrics-port", str(port), "--no-progress"]
    collector = Proc.tweetdomains(argv, _env(s3, proxy, tmp_path), tmp_path, "collector")
    try:
        wait_until(lambda: metric(port, M + "batches_written_total") >= 2, 60, "two batches stored")
        proxy.cut()
        cut_at = time.monotonic()
        peak_depth = 0.0
        while time.monotonic() - cut_at < OUTAGE_SECONDS:
            assert collector.alive(), collector.stderr()
            peak_depth = max(peak_depth, metric(port, M + "spool_depth"))
            time.sleep(0.5)
        errors_in_outage = metric(port, M + "store_errors_total")
        proxy.restore()
        assert collector.wait(90) == 0, collector.stderr()
    finally:
        kill_tree(collector)
    summary = collector.last_json()
    stored = stored_ids(uri, s3.env())
    row.count_tweets(expected, stored)
    row.figures = {
        "spooled_batches": summary["batches_spooled"],
        "spool_peak": int(peak_depth),
        "store_errors": summary["store_errors"],
    }
    assert summary["batches_spooled"] > 0 and errors_in_outage > 0, "the outage hit no write"
    assert summary["spool_depth"] == 0 and summary["written"] == summary["kept"] == len(expected)
    assert row.lost == 0 and row.duplicated == 0 and row.tweets_stored == len(expected)


@pytest.mark.scenario("5b collector SIGKILLed, restarted")
def test_sigkilled_collector_restarted_uploads_its_spool(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied
    path, _ = _replay_file(tmp_path, 3000, seed=52)
    port = free_port()
    row.load = "replay at 400/s, batches of 50, store down"
    row.faults = "S3 unreachable, then SIGKILL; restart with S3 back"
    proxy.cut()
    env = _env(s3, proxy, tmp_path)
    argv = ["collect", "--source", f"replay:{path}", "--store", uri, "--rate", "400"]
    argv += ["--batch-records", "50", "--metrics-port", str(port), "--no-progress"]
    first = Proc.tweetdomains(argv, env, tmp_path, "collector-1")
    try:
        wait_until(lambda: metric(port, M + "batches_spooled_total") >= 6, 60, "six batches spooled")
        first.signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
    finally:
        kill_tree(first)
    spooled = _spooled_ids(tmp_path / "spool")
    assert len(spooled) >= 300

    proxy.restore()
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    second = Proc.tweetdomains(
        ["collect", "--source", f"replay:{empty}", "--store", uri, "--no-progress"],
        env,
        tmp_path,
        "collector-2",
    )
    try:
        assert second.wait(60) == 0, second.stderr()
    finally:
        kill_tree(second)
    summary = second.last_json()
    stored = stored_ids(uri, s3.env())
    row.count_tweets([i for i in spooled if i is not None], stored)
    row.figures = {"spooled_at_kill": len(spooled), "batches_uploaded_on_restart": summary["batches_written"]}
    assert summary["spool_depth"] == 0
    assert not _spooled_ids(tmp_path / "spool")
    assert row.lost == 0 and row.duplicated == 0 and row.tweets_stored == len(spooled)


@pytest.mark.scenario("5c SIGTERM mid-replay")
def test_sigterm_flushes_everything_received(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied
    path, expected = _replay_file(tmp_path, 3000, seed=53)
    port = free_port()
    row.load = "replay at 200/s, one batch never full (300 s age)"
    row.faults = "SIGTERM mid-stream"
    argv = ["collect", "--source", f"replay:{path}", "--store", uri, "--rate", "200", "--no-progress"]
    argv += ["--batch-seconds", "300", "--metrics-port", str(port)]
    collector = Proc.tweetdomains(argv, _env(s3, proxy, tmp_path), tmp_path, "collector")
    try:
        wait_until(lambda: metric(port, M + "kept_total") >= 300, 60, "300 tweets kept")
        assert metric(port, M + "batches_written_total") == 0
        collector.signal(signal.SIGTERM)
        assert collector.wait(60) == 0, collector.stderr()
    finally:
        kill_tree(collector)
    summary = collector.last_json()
    stored = stored_ids(uri, s3.env())
    kept_prefix = expected[: summary["kept"]]
    row.count_tweets(kept_prefix, stored)
    row.figures = {"received": summary["received"], "stop": summary["stop_reason"]}
    assert summary["stop_reason"] == "stopped" and summary["kept"] < len(expected)
    assert summary["dropped"].get("shutdown", 0) == 0
    assert summary["written"] == summary["kept"] >= 300
    assert row.lost == 0 and row.duplicated == 0 and set(stored) <= set(expected)


def _kept_ids(messages: list[Any]) -> list[str]:
    return [r.id for m in messages for r in parse_payload(m) if keep_reason(r) is None and r.id is not None]


def _stream_plans(
    per_connection: int, connections: int, resend: int
) -> tuple[list[Plan], list[Any], list[Any]]:
    """Connections that each carry ``per_connection`` messages over ~2 s then drop; after the
    second, two 429s; each reconnect first re-sends the previous connection's last ``resend``
    messages (as a backfill does). Returns the plans, every new message, and the re-sent ones."""
    source = stream_messages(seed=61)
    plans: list[Plan] = []
    sent: list[Any] = []
    resent: list[Any] = []
    previous: list[Any] = []
    for index in range(connections):
        fresh = [next(source) for _ in range(per_connection)]
        messages: list[Any] = [*previous[-resend:], *fresh]
        messages.insert(len(messages) // 2, KEEP_ALIVE)
        sent += fresh
        resent += previous[-resend:]
        previous = fresh
        plans.append(Plan(messages=messages, delay=2.0 / per_connection, end="drop"))
        if index == 1:
            plans += [Plan(status=429, body={"title": "Too Many Requests", "status": 429})] * 2
    plans.append(Plan(messages=previous[-resend:], end="hold"))
    resent += previous[-resend:]
    return plans, sent, resent


@pytest.mark.scenario("6 stream drops every 2 s + two 429s")
def test_stream_drops_and_429s_back_off_and_store_no_duplicate(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied
    connections, resend = 6, 15
    plans, sent, resent = _stream_plans(per_connection=150, connections=connections, resend=resend)
    expected = set(_kept_ids(sent))
    expected_duplicates = len(_kept_ids(resent))
    port = free_port()
    row.load = f"X stream, {len(sent)} tweets over {connections} connections"
    row.faults = f"drop every ~2 s ({connections}x), 429 twice, {resend} tweets re-sent per reconnect"
    step, rate_limit = 0.3, 1.0
    with XStreamServer(plans, token="reliability-token") as server:
        env = _env(
            s3,
            proxy,
            tmp_path,
            X_BEARER_TOKEN="reliability-token",
            X_API_BASE_URL=server.base_url,
            TWEETDOMAINS_NETWORK_BACKOFF_STEP=str(step),
            TWEETDOMAINS_RATE_LIMIT_BACKOFF_START=str(rate_limit),
            TWEETDOMAINS_HTTP_BACKOFF_START="0.5",
            TWEETDOMAINS_STREAM_READ_TIMEOUT="5",
            TWEETDOMAINS_BATCH_RECORDS="100",
        )
        argv = ["collect", "--source", "x-api", "--store", uri, "--metrics-port", str(port), "--no-progress"]
        collector = Proc.tweetdomains(argv, env, tmp_path, "collector")
        try:
            wait_until(
                lambda: (
                    server.connections >= len(plans)
                    and metric(port, M + "kept_total") >= len(expected)
                    and metric(port, M + "duplicates_total") >= expected_duplicates
                ),
                90,
                "every planned connection made, every tweet kept, every re-sent one seen",
                every=0.2,
            )
            collector.signal(signal.SIGTERM)
            assert collector.wait(60) == 0, collector.stderr()
        finally:
            kill_tree(collector)
        times = [r["at"] for r in server.requests]
    summary = collector.last_json()
    stored = stored_ids(uri, s3.env())
    row.count_tweets(expected, stored)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Requests: 0,1 stream; 2,3 the 429s; 4.. stream. Gap i is the wait before request i+1.
    row.requests = len(times)
    row.failed = None
    row.figures = {
        "disconnects": summary["disconnects"],
        "s_disconnected": summary["seconds_disconnected"],
        "waits_after_429s_s": f"{gaps[2]:.2f}/{gaps[3]:.2f}",
        "resent_dropped_as_duplicates": summary["duplicates"],
    }
    assert gaps[2] >= rate_limit * 0.9, "first 429: the rate-limit back-off"
    assert gaps[3] >= 2 * rate_limit * 0.9, "second 429: exponential back-off"
    assert summary["disconnects"] >= connections
    assert summary["seconds_disconnected"] >= connections * step * 0.9 + 3 * rate_limit * 0.9
    assert summary["duplicates"] == expected_duplicates
    assert row.lost == 0 and row.duplicated == 0
