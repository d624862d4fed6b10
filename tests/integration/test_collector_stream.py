"""The live source end to end: real tweepy against the loopback X streaming server, real S3 (moto).

The stream is built from real API payloads in ../shared/data/raw; it carries keep-alives, a
mid-stream disconnect, a 429, an error payload and tweets re-sent after a reconnect.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, require_data
from tests.integration.xstream_server import KEEP_ALIVE, Plan, Timeline, XStreamServer, stream_messages_from
from tweetdomains.codecs import keep_reason, parse_payload, read_jsonl_bytes
from tweetdomains.records import Record
from tweetdomains.simulate import stream_messages
from tweetdomains.store import open_store
from tweetdomains_collector.service import CollectorError, CollectorStats, run_collector
from tweetdomains_collector.settings import Settings

PAYLOADS = [
    "raw/DocNow__twarc-csv/test-data/streaming_output.jsonl",  # real stream messages
    "raw/DocNow__twarc-csv/test-data/kpop.jsonl",  # a response with many non-English tweets
    "raw/DocNow__twarc-csv/test-data/brexit.jsonl",  # a response with unannotated tweets
]
TOKEN = "test-bearer-token"


def _messages() -> list[dict[str, Any]]:
    return list(stream_messages_from(require_data(p) for p in PAYLOADS))


def _expected(messages: list[dict[str, Any]]) -> tuple[set[str], Counter[str]]:
    kept: set[str] = set()
    dropped: Counter[str] = Counter()
    for message in messages:
        for record in parse_payload(message):
            reason = keep_reason(record)
            if reason is None:
                assert record.id is not None
                kept.add(record.id)
            else:
                dropped[reason] += 1
    return kept, dropped


def _stored(uri: str) -> list[Record]:
    store = open_store(uri)
    return [r for key in store.list("raw/") for r in read_jsonl_bytes(store.get(key))]


def _settings(server: XStreamServer, store: str, tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "source": "x-api",
        "store": store,
        "x_bearer_token": TOKEN,
        "x_api_base_url": server.base_url,
        "spool_dir": str(tmp_path / "spool"),
        "batch_records": 40,
        "network_backoff_step": 0.1,
        "http_backoff_start": 0.2,
        "rate_limit_backoff_start": 0.5,
        "stream_read_timeout": 5,
        "status_seconds": 1,
    }
    values.update(extra)
    return Settings(**values)


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in time: {condition.__doc__ or ''}")
        time.sleep(0.02)


def test_stream_survives_disconnect_429_and_errors_and_lands_each_kept_tweet_once(
    s3_uri: str, tmp_path: Path
) -> None:
    messages = _messages()
    kept, dropped = _expected(messages)
    assert len(kept) > 100 and dropped["lang"] > 0 and dropped["no_annotations"] > 0
    third = len(messages) // 3
    first: list[Any] = []
    for index, message in enumerate(messages[:third]):
        first += [message, KEEP_ALIVE] if index % 5 == 0 else [message]  # keep-alives between tweets
    # Kept tweets re-sent after the reconnect (as backfill does): they must not land twice.
    repeated = [m for m in messages[:third] if any(keep_reason(r) is None for r in parse_payload(m))][-5:]
    error = {"errors": [{"title": "operational-disconnect", "type": "https://api.twitter.com/2/problems/x"}]}
    plans = [
        Plan(messages=first, end="drop"),
        Plan(status=429, body={"title": "Too Many Requests", "status": 429}),
        Plan(messages=[*repeated, *messages[third : 2 * third], error], end="close"),
        Plan(messages=messages[2 * third :], end="hold"),
    ]
    stats = CollectorStats()
    stop = threading.Event()
    result: dict[str, Any] = {}
    with XStreamServer(plans, token=TOKEN) as server:
        settings = _settings(server, s3_uri, tmp_path)

        def run() -> None:
            result["stats"] = run_collector(
                settings, stop=stop, handle_signals=False, progress=False, stats=stats
            )

        thread = threading.Thread(target=run)
        thread.start()
        try:
            _wait(lambda: server.connections >= 4 and stats.kept >= len(kept) and stats.duplicates >= 5)
        finally:
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()

    stored = _stored(s3_uri)
    ids = [r.id for r in stored]
    assert len(ids) == len(set(ids)), "a tweet landed twice"
    assert set(ids) == kept
    assert stats.written == len(kept) and stats.duplicates == len(repeated)
    assert stats.dropped["lang"] == dropped["lang"]
    assert stats.dropped["no_annotations"] == dropped["no_annotations"]
    assert stats.api_errors >= 1 and stats.parse.skipped.get("api_error", 0) >= 1
    # Disconnects: the dropped socket and the clean close; the 429 delayed the reconnect.
    assert stats.disconnects == 2
    assert stats.seconds_disconnected >= 0.1 + 0.5
    times = [r["at"] for r in server.requests]
    assert times[1] - times[0] >= 0.1 * 0.9  # network error: linear back-off
    assert times[2] - times[1] >= 0.5 * 0.9  # 429: the longer back-off
    request = server.requests[0]
    assert request["path"] == "/2/tweets/sample/stream"
    assert request["authorization"] == f"Bearer {TOKEN}"
    assert set(request["query"]["tweet.fields"].split(",")) >= {
        "lang",
        "created_at",
        "context_annotations",
        "referenced_tweets",
    }
    assert request["query"]["expansions"] == "referenced_tweets.id"


def test_rejected_token_stops_at_once_with_exit_code_3(tmp_path: Path) -> None:
    with XStreamServer(token="the-right-token") as server:
        settings = _settings(server, str(tmp_path / "store"), tmp_path)
        started = time.monotonic()
        with pytest.raises(CollectorError) as info:
            run_collector(settings, handle_signals=False, progress=False)
        assert info.value.exit_code == 3
        assert "401" in str(info.value)
        assert server.connections == 1, "a rejected token must not be retried"
        assert time.monotonic() - started < 10


def _cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "X_BEARER_TOKEN"}
    env.update(extra)
    return env


def test_cli_missing_or_rejected_token_is_one_line_and_an_exit_code(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "tweetdomains",
        "collect",
        "--source",
        "x-api",
        "--store",
        str(tmp_path / "s"),
    ]
    missing = subprocess.run(argv, env=_cli_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "tweetdomains collect: error: X_BEARER_TOKEN is not set: the x-api source needs a bearer token"
    ]
    with XStreamServer(token="the-right-token") as server:
        env = _cli_env(X_BEARER_TOKEN="wrong", X_API_BASE_URL=server.base_url, TWEETDOMAINS_LOG_LEVEL="ERROR")
        rejected = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert rejected.returncode == 3
    assert "Traceback" not in rejected.stderr
    assert (
        rejected.stderr.strip().splitlines()[-1].startswith("tweetdomains collect: error: the X API refused")
    )


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def test_sigterm_mid_stream_flushes_everything_received(
    s3_uri: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    messages = _messages()
    kept, _ = _expected(messages)
    port = free_port()
    # Tweets keep arriving (one every 10 ms) when SIGTERM comes; batches are never full.
    with XStreamServer([Plan(messages=messages, delay=0.01, end="hold")], token=TOKEN) as server:
        env = _cli_env(
            **s3_env,
            X_BEARER_TOKEN=TOKEN,
            X_API_BASE_URL=server.base_url,
            TWEETDOMAINS_SPOOL_DIR=str(tmp_path / "spool"),
        )
        argv = [sys.executable, "-m", "tweetdomains", "collect", "--source", "x-api", "--store", s3_uri]
        argv += ["--metrics-port", str(port), "--no-progress"]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait(lambda: _metric_or_zero(port, "tweetdomains_collector_kept_total") >= 20, timeout=60)
            assert _metric(port, "tweetdomains_collector_batches_written_total") == 0
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                assert response.status == 200 and json.loads(response.read())["status"] == "ok"
            process.send_signal(signal.SIGTERM)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        sent = server.sent
    assert process.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stop_reason"] == "stopped"
    assert summary["kept"] >= 20 and summary["received"] < len(messages) + 10
    assert sent < len(messages), "SIGTERM should come mid-stream"
    stored = _stored(s3_uri)
    ids = [r.id for r in stored]
    assert len(ids) == len(set(ids)) == summary["kept"] == summary["written"]
    assert set(ids) <= kept
    assert summary["received"] == summary["kept"] + sum(summary["dropped"].values()) + summary["duplicates"]
    assert summary["dropped"].get("shutdown", 0) == 0, "a tweet read off the socket was not kept"


def _metric_or_zero(port: int, name: str) -> float:
    try:
        return _metric(port, name)
    except OSError:
        return 0.0


def _live_run(
    timeline: Timeline, tmp_path: Path, gap: Callable[[], None], **extra: Any
) -> tuple[CollectorStats, list[Record]]:
    """Collect from a live timeline; ``gap`` makes the disconnect once 30 messages arrived."""
    uri = str(tmp_path / "store")
    stats = CollectorStats()
    stop = threading.Event()
    with XStreamServer(token=TOKEN, timeline=timeline) as server:
        settings = _settings(server, uri, tmp_path, **extra)
        thread = threading.Thread(
            target=run_collector,
            args=(settings,),
            kwargs={"stop": stop, "handle_signals": False, "stats": stats},
        )
        thread.start()
        try:
            _wait_for(lambda: stats.received >= 30, 30)
            gap()
            _wait_for(lambda: timeline.published() == len(timeline.messages), 60)
            _wait_for(
                lambda: (
                    len(timeline.sent_indexes) and timeline.sent_indexes[-1] == len(timeline.messages) - 1
                ),
                30,
            )
            time.sleep(0.5)
        finally:
            stop.set()
            thread.join(timeout=60)
    return stats, _stored(uri)


def _wait_for(condition: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _live_expected(timeline: Timeline) -> set[str]:
    first = min(timeline.sent_indexes)
    return {
        r.id
        for m in timeline.messages[first:]
        for r in parse_payload(m)
        if keep_reason(r) is None and r.id is not None
    }


def test_a_short_disconnect_is_backfilled_without_loss_or_duplicates(tmp_path: Path) -> None:
    timeline = Timeline(list(itertools.islice(stream_messages(seed=71), 200)), rate=40)
    stats, stored = _live_run(timeline, tmp_path, lambda: timeline.drop(refuse_for=1.5))
    ids = [r.id for r in stored]
    assert timeline.backfill_asked == [1] and stats.backfill_requests >= 1  # 503s asked too
    assert set(ids) == _live_expected(timeline) and len(ids) == len(set(ids))
    assert stats.duplicates > 0  # what the backfill re-sent was seen and dropped


def test_a_refused_backfill_is_logged_once_and_the_stream_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    timeline = Timeline(list(itertools.islice(stream_messages(seed=72), 200)), rate=40, refuse_backfill=True)

    def two_gaps() -> None:
        timeline.drop()
        time.sleep(1.5)
        timeline.drop()

    with caplog.at_level("INFO", logger="tweetdomains.collector"):
        stats, stored = _live_run(timeline, tmp_path, two_gaps)
    refusals = [r for r in caplog.records if "refused backfill_minutes" in r.getMessage()]
    assert len(refusals) == 1 and stats.backfill_refused and stats.backfill_requests == 1
    assert len(stored) == len({r.id for r in stored}) > 0
