"""Collector settings, back-off schedule and command-line handling."""

from __future__ import annotations

import pytest

from tweetdomains_cli.main import main
from tweetdomains_collector.cli import byte_size
from tweetdomains_collector.settings import Settings
from tweetdomains_collector.sources import Backoff


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWEETDOMAINS_BATCH_BYTES", "1000")
    monkeypatch.setenv("TWEETDOMAINS_LANGUAGES", "en, fr")
    monkeypatch.setenv("X_BEARER_TOKEN", " secret ")
    monkeypatch.setenv("X_API_BASE_URL", "http://127.0.0.1:9/")
    settings = Settings()
    assert settings.batch_bytes == 1000
    assert settings.language_list == ("en", "fr")
    assert settings.x_bearer_token is not None and settings.x_bearer_token.get_secret_value() == "secret"
    assert "secret" not in repr(settings)
    assert settings.x_api_base_url == "http://127.0.0.1:9"


def test_defaults_follow_the_firehose_hints_and_have_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    settings = Settings()
    assert (settings.batch_bytes, settings.batch_seconds) == (5_000_000, 300)
    assert settings.x_bearer_token is None and settings.x_api_base_url == "https://api.twitter.com"
    assert settings.language_list == ("en",) and settings.require_annotations


@pytest.mark.parametrize("source", ["twitter", "simulated", "replay"])
def test_unknown_sources_are_refused(source: str) -> None:
    with pytest.raises(ValueError):
        Settings(source=source)


def test_backoff_follows_x_guidance() -> None:
    backoff = Backoff(Settings())
    assert [backoff.network() for _ in range(3)] == [0.25, 0.5, 0.75]
    assert max(backoff.network() for _ in range(100)) == 16
    assert [backoff.http(503) for _ in range(8)] == [5, 10, 20, 40, 80, 160, 320, 320]
    backoff.reset()
    assert [backoff.http(429) for _ in range(3)] == [60, 120, 240]
    backoff.reset()
    assert backoff.network() == 0.25 and backoff.http(500) == 5


def test_byte_sizes() -> None:
    assert byte_size("5MB") == 5_000_000
    assert byte_size("512k") == 512_000
    assert byte_size("4MiB") == 4 * 2**20
    assert byte_size("1234") == 1234


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # The flag a user typed, and its variable (not pydantic's field name or wording).
        (["--batch-records", "0"], "--batch-records (TWEETDOMAINS_BATCH_RECORDS) should be greater than"),
        (["--source", "nope"], "--source (TWEETDOMAINS_SOURCE) must be x-api,"),
        (["--metrics-port", "70000"], "--metrics-port (TWEETDOMAINS_METRICS_PORT) should be less than"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    code = main(["collect", "--store", str(tmp_path), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("tweetdomains collect: error:") and message in err[0]


def test_missing_replay_file_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    code = main(["collect", "--source", "replay:/nonexistent/*.jsonl", "--store", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].startswith("tweetdomains collect: error: no files match")


def test_journal_and_backfill_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.journal, defaults.journal_sync_ms, defaults.backfill) == (True, 200, True)
    monkeypatch.setenv("TWEETDOMAINS_JOURNAL_SYNC_MS", "50")
    monkeypatch.setenv("TWEETDOMAINS_JOURNAL_MAX_BYTES", "4096")
    monkeypatch.setenv("TWEETDOMAINS_BACKFILL", "false")
    settings = Settings()
    assert (settings.journal_sync_ms, settings.journal_max_bytes, settings.backfill) == (50, 4096, False)
    with pytest.raises(ValueError):
        Settings(journal_sync_ms=0)


def test_backfill_minutes_cover_the_gap_up_to_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from tweetdomains_collector.sources import XApiSource
    from tweetdomains_collector.stats import CollectorStats

    source = XApiSource(Settings(x_bearer_token="t"), CollectorStats())
    assert source.backfill_minutes() is None  # nothing received yet: nothing to backfill
    now = time.monotonic()
    for gap, minutes in ((10, 1), (56, 2), (170, 3), (290, 5), (400, None)):
        source._last_data_at = now - gap
        assert source.backfill_minutes() == minutes, gap
    source._last_data_at, source._newest_created = now, time.time() - 200  # the stream's clock says 200 s
    assert source.backfill_minutes() == 4
    source.backfill = False
    assert source.backfill_minutes() is None


def test_health_and_metrics_report_the_journal() -> None:
    import time

    from prometheus_client import CollectorRegistry, generate_latest

    from tweetdomains_collector.stats import CollectorStats, StatsMetrics

    stats = CollectorStats(journal_depth=3, journal_bytes=12345, journal_fsync_seconds=0.002)
    stats.journal_oldest_at = time.time() - 9
    health = stats.health()
    assert health["journal_depth"] == 3 and health["journal_bytes"] == 12345
    assert 8 < health["journal_oldest_unconfirmed_s"] < 60 and health["journal_fsync_seconds"] == 0.002
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsMetrics(stats))
    text = generate_latest(registry).decode()
    for name in (
        "journal_depth 3.0",
        "journal_bytes 12345.0",
        "journal_fsync_seconds 0.002",
        "journal_full 0.0",
    ):
        assert f"tweetdomains_collector_{name}" in text
    assert "tweetdomains_collector_journal_oldest_unconfirmed_seconds" in text
