"""Replay and simulate sources through the whole collector into a local store."""

from __future__ import annotations

import gzip
import io
import json
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port, require_data
from tweetdomains.codecs import iter_records, keep_reason, parse_legacy_line, read_jsonl_bytes
from tweetdomains.records import Record
from tweetdomains.simulate import generate
from tweetdomains.store import LocalStore
from tweetdomains_collector.service import CollectorStats, export_legacy, run_collector
from tweetdomains_collector.settings import Settings

LEGACY = "raw/Isaac1o__tweet_domain_classification/data"


def _settings(tmp_path: Path, source: str, **extra: object) -> Settings:
    return Settings(source=source, store=str(tmp_path / "store"), spool_dir=str(tmp_path / "spool"), **extra)


def _stored(tmp_path: Path) -> list[list[Record]]:
    store = LocalStore(tmp_path / "store")
    return [list(read_jsonl_bytes(store.get(k))) for k in store.list("raw/")]


def test_replay_of_the_legacy_file_imports_1172_records_across_batches(tmp_path: Path) -> None:
    folder = require_data(LEGACY)
    stats = run_collector(_settings(tmp_path, f"replay:{folder}/*", batch_records=500), handle_signals=False)
    batches = _stored(tmp_path)
    assert [len(b) for b in sorted(batches, key=len)] == [172, 500, 500]
    assert stats.received == stats.kept == stats.written == 1172 and stats.parse.bad_lines == 0
    originals = [r for path in sorted(folder.iterdir()) for r in iter_records(path)]
    assert sorted(r.text for b in batches for r in b) == sorted(r.text for r in originals)


def test_export_legacy_writes_lines_the_legacy_reader_reads_back(tmp_path: Path) -> None:
    folder = require_data(LEGACY)
    run_collector(_settings(tmp_path, f"replay:{folder}"), handle_signals=False)
    out = io.StringIO()
    stats = export_legacy(LocalStore(tmp_path / "store"), out)
    lines = out.getvalue().splitlines()
    assert stats.records == len(lines) == 1172
    originals = sorted((r.text, r.domains) for path in folder.iterdir() for r in iter_records(path))
    assert sorted((r.text, r.domains) for r in map(parse_legacy_line, lines)) == originals


def test_replay_reads_gzip_and_globs_and_filters(tmp_path: Path) -> None:
    records = generate(300, seed=3)
    data = tmp_path / "in"
    data.mkdir()
    half = len(records) // 2
    (data / "a.jsonl").write_text("".join(r.to_json() + "\n" for r in records[:half]) + "not json\n")
    (data / "b.jsonl.gz").write_bytes(
        gzip.compress("".join(r.to_json() + "\n" for r in records[half:]).encode())
    )
    stats = run_collector(_settings(tmp_path, f"replay:{data}/*.jsonl,{data}/*.gz"), handle_signals=False)
    expected = [r for r in records if keep_reason(r) is None]
    assert stats.received == 300 and stats.parse.bad_lines == 1
    assert stats.kept == stats.written == len(expected)
    assert sum(stats.dropped.values()) == 300 - len(expected) and set(stats.dropped) <= {
        "lang",
        "no_annotations",
    }
    assert sorted(r.id for b in _stored(tmp_path) for r in b) == sorted(r.id for r in expected)


def test_filters_are_settings(tmp_path: Path) -> None:
    records = generate(200, seed=5)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(r.to_json() + "\n" for r in records))
    stats = run_collector(
        _settings(tmp_path, f"replay:{path}", languages="", require_annotations=False), handle_signals=False
    )
    assert stats.kept == len([r for r in records if r.text.strip()])


def test_simulate_stops_at_the_limit_exactly(tmp_path: Path) -> None:
    stats = run_collector(
        _settings(tmp_path, "simulate:7", limit=2500, batch_records=1000), handle_signals=False
    )
    batches = _stored(tmp_path)
    assert stats.stop_reason == "limit" and stats.kept == stats.written == 2500
    assert sorted(len(b) for b in batches) == [500, 1000, 1000]
    expected = [r.id for r in generate(stats.received, seed=7) if keep_reason(r) is None][:2500]
    assert sorted(r.id for b in batches for r in b) == sorted(expected)


def test_paced_simulate_stops_at_max_seconds(tmp_path: Path) -> None:
    stats = run_collector(_settings(tmp_path, "simulate", rate=200, max_seconds=1.0), handle_signals=False)
    assert stats.stop_reason == "max-seconds"
    assert 100 <= stats.received <= 260 and stats.written == stats.kept


def test_ops_endpoint_serves_health_and_prometheus_metrics(tmp_path: Path) -> None:
    port = free_port()
    stats = CollectorStats()
    settings = _settings(
        tmp_path, "simulate:1", rate=500, max_seconds=1.5, metrics_port=port, metrics_host="127.0.0.1"
    )
    import threading

    thread = threading.Thread(
        target=run_collector, args=(settings,), kwargs={"handle_signals": False, "stats": stats}
    )
    thread.start()
    try:
        import time

        deadline = time.monotonic() + 10
        while stats.received < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200 and json.loads(response.read())["status"] == "ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
        assert missing.value.code == 404
    finally:
        thread.join(timeout=30)
    for name in (
        "received_total",
        "kept_total",
        "duplicates_total",
        "batches_written_total",
        "bytes_written_total",
    ):
        assert f"tweetdomains_collector_{name} " in text
    assert 'tweetdomains_collector_dropped_total{reason="no_annotations"}' in text
    assert "tweetdomains_collector_spool_depth " in text
    assert "tweetdomains_collector_disconnects_total " in text
    assert "tweetdomains_collector_seconds_disconnected_total " in text
