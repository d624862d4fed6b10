"""The collector against a real S3 server (moto) that goes off the network: batches wait in
the journal, nothing is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import S3Server, require_data
from tests.integration.xstream_server import TcpProxy
from tweetdomains.codecs import keep_reason, read_jsonl_bytes
from tweetdomains.records import Record
from tweetdomains.simulate import generate
from tweetdomains.store import open_store
from tweetdomains_collector.journal import journal_records
from tweetdomains_collector.service import CollectorStats, run_collector, spool_root
from tweetdomains_collector.settings import Settings

LEGACY = "raw/Isaac1o__tweet_domain_classification/data"


@pytest.fixture
def proxied_s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh bucket on the shared S3 server, reached through a proxy the test can cut."""
    bucket = s3_server.create_bucket()
    proxy = TcpProxy(s3_server.port)
    proxy.restore()
    for key, value in {**s3_server.env(), "AWS_ENDPOINT_URL": proxy.endpoint}.items():
        monkeypatch.setenv(key, value)
    try:
        yield f"s3://{bucket}/collector", proxy
    finally:
        proxy.cut()


def _stored(uri: str) -> list[Record]:
    store = open_store(uri)
    return [r for key in store.list("raw/") for r in read_jsonl_bytes(store.get(key))]


def _wait(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _settings(store: str, tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "store": store,
        "spool_dir": str(tmp_path / "spool"),
        "spool_retry_start": 0.05,
        "spool_retry_max": 0.3,
        "status_seconds": 1,
    }
    values.update(extra)
    return Settings(**values)


def test_store_outage_spools_and_everything_lands_after_it_returns(
    proxied_s3: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied_s3
    settings = _settings(uri, tmp_path, source="simulate:11", rate=3000, batch_records=150)
    stats = CollectorStats()
    stop = threading.Event()
    thread = threading.Thread(
        target=run_collector, args=(settings,), kwargs={"stop": stop, "handle_signals": False, "stats": stats}
    )
    thread.start()
    try:
        _wait(lambda: stats.batches_written >= 2)
        proxy.cut()
        _wait(lambda: stats.batches_spooled >= 3)
        assert stats.store_errors >= 1 and stats.spool_depth >= 1
        proxy.restore()
        _wait(lambda: stats.spool_depth == 0 and stats.batches_spooled >= 3)
        spooled_at_return = stats.spooled
        _wait(lambda: stats.written > spooled_at_return + 300)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()

    stored = _stored(uri)
    ids = [r.id for r in stored]
    assert len(ids) == len(set(ids)) == stats.kept == stats.written
    expected = [r.id for r in generate(stats.received, seed=11) if keep_reason(r) is None]
    assert sorted(ids) == sorted(expected), "every kept record of the stream, none twice"
    assert stats.spool_depth == 0
    assert not list(journal_records(spool_root(settings.spool_dir, uri)))


def test_restarted_collector_uploads_what_an_earlier_run_spooled(
    proxied_s3: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    uri, proxy = proxied_s3
    legacy = require_data(LEGACY)
    proxy.cut()
    down = _settings(uri, tmp_path, source=f"replay:{legacy}", batch_records=400, drain_seconds=0)
    first = run_collector(down, handle_signals=False)
    assert first.kept == 1172 and first.written == 0
    assert first.batches_spooled == 3 and first.spool_depth == 3
    journal = spool_root(down.spool_dir, uri)
    assert len(list(journal.glob("*.seg"))) == 3 and len(list(journal_records(journal))) == 1172

    proxy.restore()
    empty = tmp_path / "nothing.jsonl"
    empty.write_text("")
    second = run_collector(_settings(uri, tmp_path, source=f"replay:{empty}"), handle_signals=False)
    assert second.kept == 0
    assert second.batches_written == 3 and second.written == 1172 and second.spool_depth == 0
    stored = _stored(uri)
    assert len(stored) == 1172
    assert {r.text for r in stored} == {
        r.text for key in sorted(legacy.iterdir()) for r in _legacy_records(key)
    }


def _legacy_records(path: Path) -> list[Record]:
    from tweetdomains.codecs import iter_records

    return list(iter_records(path))
