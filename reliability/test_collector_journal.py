"""Scenarios 9a-9e: the collector's write-ahead journal against crashes, a full disk and
stream gaps, with real processes (``python -m tweetdomains collect``), a moto S3 server, a
real tmpfs and the loopback X stream server's live timeline.

A crash is a SIGKILL. What the collector had "kept at the last sync" is read from its
``/metrics`` (``journal_synced_records``) just before the kill, so the check "stored >= synced"
is made against a figure at most one scrape old.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reliability.harness import Proc, Row, child_env, free_port, kill_tree, metric, stored_ids, wait_until
from tests.conftest import S3Server
from tests.integration.xstream_server import TcpProxy, Timeline, XStreamServer
from tweetdomains.codecs import keep_reason, parse_payload
from tweetdomains.records import Record
from tweetdomains.simulate import generate, stream_messages
from tweetdomains_collector.journal import journal_records

M = "tweetdomains_collector_"
RATE = 2000


def _env(s3: S3Server, proxy: TcpProxy, spool: Path, **extra: str) -> dict[str, str]:
    return child_env(
        {
            **s3.env(),
            "AWS_ENDPOINT_URL": proxy.endpoint,
            "TWEETDOMAINS_SPOOL_DIR": str(spool),
            "TWEETDOMAINS_SPOOL_RETRY_START": "0.2",
            "TWEETDOMAINS_SPOOL_RETRY_MAX": "1",
            "TWEETDOMAINS_DRAIN_SECONDS": "30",
            **extra,
        }
    )


def _write(path: Path, records: list[Record]) -> list[str]:
    """Write a replay file; the ids the collector keeps from it, in order."""
    path.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")
    return [r.id for r in records if keep_reason(r) is None and r.id is not None]


def _at_least(port: int, name: str, value: float) -> Callable[[], bool]:
    return lambda: metric(port, M + name) >= value


def _collect(source: str, uri: str, port: int, *flags: str) -> list[str]:
    return [
        "collect",
        "--source",
        source,
        "--store",
        uri,
        "--metrics-port",
        str(port),
        "--no-progress",
        *flags,
    ]


def _finish(uri: str, env: dict[str, str], tmp_path: Path, name: str) -> dict[str, Any]:
    """A last run on an empty replay: recovers and uploads whatever the journal holds."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    last = Proc.tweetdomains(
        ["collect", "--source", f"replay:{empty}", "--store", uri, "--no-progress"], env, tmp_path, name
    )
    try:
        assert last.wait(90) == 0, last.stderr()
    finally:
        kill_tree(last)
    return last.last_json()


@pytest.mark.scenario("9a 10 SIGKILLs during a 2,000/s replay")
def test_ten_sigkills_lose_at_most_the_last_sync_and_duplicate_nothing(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied
    env = _env(s3, proxy, tmp_path / "spool")
    rng = random.Random(7)
    kills, overlap, fresh_per_run = 10, 300, 7000
    losses: list[int] = []
    synced_total = 0
    previous: list[Record] = []
    runs: list[tuple[list[str], int]] = []
    for run in range(kills):
        fresh = generate(fresh_per_run, seed=700 + run)
        # Each run first replays 300 tweets the previous run surely kept: the rebuilt dedupe
        # window must drop them.
        kept_ids = _write(tmp_path / f"replay-{run}.jsonl", previous[:overlap] + fresh)
        fresh_set = {r.id for r in fresh}
        fresh_ids = [i for i in kept_ids if i in fresh_set]
        port = free_port()
        flags = ("--rate", str(RATE), "--batch-records", "1000", "--batch-seconds", "1")
        proc = Proc.tweetdomains(
            _collect(f"replay:{tmp_path / f'replay-{run}.jsonl'}", uri, port, *flags),
            env,
            tmp_path,
            f"c{run}",
        )
        try:
            wait_until(_at_least(port, "kept_total", overlap), 60, "tweets kept")
            time.sleep(rng.uniform(0.2, 2.0))
            synced = int(metric(port, M + "journal_synced_records_total"))
            kept = int(metric(port, M + "kept_total"))
            proc.signal(signal.SIGKILL)
            assert proc.wait(30) == -signal.SIGKILL
        finally:
            kill_tree(proc)
        runs.append((fresh_ids, synced))
        synced_total += synced
        losses.append(kept)
        previous = fresh
    summary = _finish(uri, env, tmp_path, "final")
    stored = stored_ids(uri, s3.env())
    stored_set = set(stored)
    worst = 0
    for (fresh_ids, synced), kept in zip(runs, losses, strict=True):
        landed = sum(1 for i in fresh_ids if i in stored_set)
        assert landed >= synced, f"stored {landed} < synced {synced}"
        assert set(fresh_ids[:landed]) <= stored_set  # what landed is a prefix of the run's stream
        worst = max(worst, kept - landed)
    row.load = f"replay at {RATE}/s, batches of 1,000 or 1 s, sync every 200 ms"
    row.faults = f"{kills} SIGKILLs at random moments, each followed by a restart"
    row.count_tweets([i for fresh_ids, synced in runs for i in fresh_ids[:synced]], stored)
    row.figures = {
        "synced_at_kills": synced_total,
        "worst_loss_tweets": worst,
        "worst_loss_ms": round(1000 * worst / RATE),
        "recovered_last": summary["journal_recovered"],
    }
    assert row.lost == 0 and row.duplicated == 0


@pytest.mark.scenario("9b SIGKILL during an upload")
def test_sigkill_mid_upload_reuploads_the_same_key(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied
    env = _env(s3, proxy, tmp_path / "spool")
    expected = _write(tmp_path / "replay.jsonl", generate(4000, seed=71))
    port = free_port()
    proxy.delay = 0.25  # a slow link: one batch takes seconds to upload
    flags = ("--batch-records", "2000")
    proc = Proc.tweetdomains(
        _collect(f"replay:{tmp_path / 'replay.jsonl'}", uri, port, *flags), env, tmp_path, "c"
    )
    try:
        wait_until(lambda: metric(port, M + "kept_total") >= len(expected), 60, "everything journaled")
        wait_until(lambda: proxy.bytes_up > 30_000, 60, "an upload under way")
        synced = int(metric(port, M + "journal_synced_records_total"))
        written = metric(port, M + "batches_written_total")
        proc.signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        kill_tree(proc)
    proxy.delay = 0.0
    summary = _finish(uri, env, tmp_path, "restart")
    stored = stored_ids(uri, s3.env())
    row.load = "replay 4,000 tweets, batches of 2,000, slow link to S3"
    row.faults = "SIGKILL while a batch is being uploaded; restart"
    row.count_tweets(expected, stored)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in s3.env().items():
            patch.setenv(key, value)
        from tweetdomains.store import open_store

        objects = list(open_store(uri).list("raw/"))
    row.figures = {"synced_at_kill": synced, "batches_before_kill": int(written), "objects": len(objects)}
    assert written == 0 and synced == len(expected), "the kill came during the first upload"
    assert summary["batches_written"] == 2 and len(objects) == 2
    assert row.lost == 0 and row.duplicated == 0


@pytest.mark.scenario("9c torn final journal record")
def test_torn_final_record_is_skipped_and_counted(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied
    env = _env(s3, proxy, tmp_path / "spool")
    _write(tmp_path / "replay.jsonl", generate(3000, seed=72))
    port = free_port()
    proc = Proc.tweetdomains(
        _collect(f"replay:{tmp_path / 'replay.jsonl'}", uri, port, "--rate", "1000"), env, tmp_path, "c"
    )
    try:
        wait_until(lambda: metric(port, M + "journal_synced_records_total") >= 1000, 60, "1,000 synced")
        proc.signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        kill_tree(proc)
    (segment,) = (tmp_path / "spool").rglob("*.open")
    os.truncate(segment, segment.stat().st_size - 9)  # the last record cut mid-way
    before = [r.id for r in journal_records(segment.parent)]
    summary = _finish(uri, env, tmp_path, "restart")
    stored = stored_ids(uri, s3.env())
    row.load = "replay at 1,000/s, one open batch"
    row.faults = "SIGKILL, then the journal's last record truncated mid-record"
    row.count_tweets([i for i in before if i], stored)
    row.figures = {"torn_records": summary["journal_torn"], "recovered": summary["journal_recovered"]}
    assert summary["journal_torn"] == 1 and summary["journal_recovered"] == len(before) >= 1000
    assert row.lost == 0 and row.duplicated == 0 and row.tweets_stored == len(before)


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs for the journal (root only), unmounted afterwards."""
    mount = tmp_path / "volume"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.scenario("9d journal volume full")
def test_full_journal_volume_stops_reading_and_resumes(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path, small_volume: Path
) -> None:
    uri, proxy = proxied
    env = _env(s3, proxy, small_volume)
    expected = _write(tmp_path / "replay.jsonl", generate(15000, seed=73))
    port = free_port()
    proxy.cut()  # batches cannot leave: the journal fills its 3 MB volume
    flags = ("--rate", str(RATE), "--batch-records", "1000")
    proc = Proc.tweetdomains(
        _collect(f"replay:{tmp_path / 'replay.jsonl'}", uri, port, *flags), env, tmp_path, "c"
    )
    try:
        wait_until(lambda: metric(port, M + "journal_full") == 1, 90, "the journal reports itself full")
        kept_when_full = metric(port, M + "kept_total")
        time.sleep(3)
        assert metric(port, M + "kept_total") == kept_when_full, "nothing kept while full"
        assert proc.alive(), proc.stderr()
        proxy.restore()  # the batches drain, space returns
        assert proc.wait(120) == 0, proc.stderr()
    finally:
        kill_tree(proc)
    summary = proc.last_json()
    stored = stored_ids(uri, s3.env())
    row.load = f"replay 15,000 tweets at {RATE}/s, store unreachable"
    row.faults = "the journal's 3 MB tmpfs fills up; the store comes back"
    row.count_tweets(expected, stored)
    row.figures = {"kept_when_full": int(kept_when_full), "full_pauses": summary["journal_full_pauses"]}
    assert "journal full: stopped reading" in proc.stderr(20000)
    assert summary["journal_full_pauses"] >= 1 and summary["kept"] == len(expected)
    assert row.lost == 0 and row.duplicated == 0


def _kept(messages: list[object]) -> list[str]:
    return [r.id for m in messages for r in parse_payload(m) if keep_reason(r) is None and r.id is not None]


def _run_gap(
    s3: S3Server, proxy: TcpProxy, uri: str, tmp_path: Path, timeline: Timeline, make_gap: object, name: str
) -> tuple[list[str], list[str | None], dict[str, Any]]:
    port = free_port()
    with XStreamServer(token="journal-token", timeline=timeline) as server:
        env = _env(
            s3,
            proxy,
            tmp_path / f"spool-{name}",
            X_BEARER_TOKEN="journal-token",
            X_API_BASE_URL=server.base_url,
            TWEETDOMAINS_HTTP_BACKOFF_START="1",
            TWEETDOMAINS_HTTP_BACKOFF_MAX="4",
            TWEETDOMAINS_NETWORK_BACKOFF_STEP="0.5",
            TWEETDOMAINS_STREAM_READ_TIMEOUT="5",
            TWEETDOMAINS_BATCH_RECORDS="200",
        )
        proc = Proc.tweetdomains(_collect("x-api", uri, port), env, tmp_path, name)
        try:
            wait_until(lambda: metric(port, M + "kept_total") >= 20, 60, "the stream flows")
            make_gap()  # type: ignore[operator]
            wait_until(lambda: timeline.published() == len(timeline.messages), 400, "the timeline ends")
            wait_until(
                lambda: (
                    bool(timeline.sent_indexes) and timeline.sent_indexes[-1] == len(timeline.messages) - 1
                ),
                120,
                "all sent",
            )
            time.sleep(1)
            proc.signal(signal.SIGTERM)
            assert proc.wait(60) == 0, proc.stderr()
        finally:
            kill_tree(proc)
    # Everything from the first message the collector was sent (a backfill may reach back
    # before its first connection) to the end: the gap's tweets included.
    expected = _kept(timeline.messages[min(timeline.sent_indexes) :])
    return expected, stored_ids(uri, s3.env()), proc.last_json()


@pytest.mark.scenario("9e X stream gaps of 30 s and 3 min, backfill")
def test_stream_gaps_are_backfilled(
    row: Row, s3: S3Server, proxied: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied
    rate = 20
    short = Timeline(list(itertools.islice(stream_messages(seed=74), rate * 60)), rate=rate)
    expected_short, stored_short, summary_short = _run_gap(
        s3, proxy, uri + "/short", tmp_path, short, lambda: short.drop(refuse_for=30), "short"
    )
    # 3 minutes without waiting them: the server's clock runs 180 s behind until the drop, then
    # jumps ahead, so 180 s of tweets are published in the gap and the newest created_at the
    # collector holds is 180 s old when it reconnects (the real gap is ~2 s).
    long = Timeline(list(itertools.islice(stream_messages(seed=75), rate * 200)), rate=rate, offset=-180)

    def long_gap() -> None:
        long.drop(refuse_for=2)
        time.sleep(0.3)  # the open connection ends before the clock jumps
        long.skip(180)

    expected_long, stored_long, summary_long = _run_gap(
        s3, proxy, uri + "/long", tmp_path, long, long_gap, "long"
    )
    row.load = f"X stream at {rate}/s (live timeline)"
    row.faults = "disconnect 30 s (real); disconnect 3 min (server clock skipped 180 s)"
    row.count_tweets(expected_short + expected_long, stored_short + stored_long)
    row.figures = {
        "backfill_minutes_asked": f"{short.backfill_asked}/{long.backfill_asked}",
        "resent_dropped": f"{summary_short['duplicates']}/{summary_long['duplicates']}",
    }
    assert short.backfill_asked == [1] and long.backfill_asked and long.backfill_asked[0] >= 4
    assert summary_short["duplicates"] > 0 and summary_long["duplicates"] > 0  # re-sent, dropped
    assert row.lost == 0 and row.duplicated == 0
