"""The collector's counters, and how they are shown: Prometheus ``/metrics``, ``/healthz``,
and the one-line status.

The hot path only adds to plain integers on :class:`CollectorStats`; Prometheus reads them at
scrape time through a custom collector, so counting costs nothing per tweet.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tweetdomains.codecs import ParseStats

log = logging.getLogger("tweetdomains.collector")


@dataclass
class CollectorStats:
    """What one collector run did. ``received`` counts records the source produced,
    ``kept`` those that passed the filters, were not duplicates and are in the journal,
    ``written`` those in a batch that reached the store, ``spooled`` those in a batch whose
    upload failed (it waits in the journal). ``journal_synced`` counts this run's kept
    records covered by the last fsync; ``journal_recovered`` the unconfirmed records found in
    the journal at start, ``journal_torn`` the torn tail records cut off then."""

    source: str = ""
    received: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    written: int = 0
    batches_written: int = 0
    bytes_written: int = 0
    spooled: int = 0
    batches_spooled: int = 0
    spool_depth: int = 0
    store_errors: int = 0
    journal_depth: int = 0
    journal_bytes: int = 0
    journal_oldest_at: float = 0.0
    journal_synced: int = 0
    journal_fsyncs: int = 0
    journal_fsync_seconds: float = 0.0
    journal_fsync_max_seconds: float = 0.0
    journal_torn: int = 0
    journal_recovered: int = 0
    journal_full: bool = False
    journal_full_pauses: int = 0
    backfill_requests: int = 0
    backfill_refused: bool = False
    disconnects: int = 0
    seconds_disconnected: float = 0.0
    connected: bool = False
    api_errors: int = 0
    parse: ParseStats = field(default_factory=ParseStats)
    started_at: float = field(default_factory=time.time)
    elapsed: float = 0.0
    stop_reason: str = ""

    def drop(self, reason: str) -> None:
        """Count one record dropped for ``reason``."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def journal_oldest_age(self, now: float | None = None) -> float:
        """Seconds since the oldest unconfirmed journaled record arrived (0: none pending)."""
        if not self.journal_oldest_at:
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.journal_oldest_at)

    def health(self) -> dict[str, Any]:
        """The ``/healthz`` body."""
        return {
            "status": "ok",
            "connected": self.connected,
            "spool_depth": self.spool_depth,
            "journal_depth": self.journal_depth,
            "journal_bytes": self.journal_bytes,
            "journal_oldest_unconfirmed_s": round(self.journal_oldest_age(), 3),
            "journal_fsync_seconds": round(self.journal_fsync_seconds, 6),
            "journal_full": self.journal_full,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the CLI prints it on its last line)."""
        out = asdict(self)
        out["parse"] = self.parse.summary()
        out["elapsed"] = round(self.elapsed, 3)
        out["seconds_disconnected"] = round(self.seconds_disconnected, 3)
        out.pop("started_at")
        out.pop("journal_oldest_at")
        return out

    def status_line(self) -> str:
        """One line for the console: counts and rate so far."""
        elapsed = max(time.time() - self.started_at, 1e-9)
        dropped = sum(self.dropped.values())
        return (
            f"received={self.received} kept={self.kept} dropped={dropped} duplicates={self.duplicates} "
            f"written={self.written} batches={self.batches_written} spool_depth={self.spool_depth} "
            f"journal={self.journal_depth}/{self.journal_bytes}B "
            f"disconnects={self.disconnects} rate={self.kept / elapsed:.0f}/s"
        )


class StatsMetrics:
    """A ``prometheus_client`` collector that reads a :class:`CollectorStats` at scrape time."""

    def __init__(self, stats: CollectorStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.stats
        prefix = "tweetdomains_collector"
        counters = [
            ("received", "Records the source produced", s.received),
            ("kept", "Records that passed the filters (duplicates excluded)", s.kept),
            ("duplicates", "Records dropped as a tweet id already seen", s.duplicates),
            ("records_written", "Records in batches that reached the store", s.written),
            ("batches_written", "Batches that reached the store", s.batches_written),
            ("bytes_written", "Compressed bytes that reached the store", s.bytes_written),
            (
                "batches_spooled",
                "Batches written to the local spool after a store failure",
                s.batches_spooled,
            ),
            ("store_errors", "Failed store writes", s.store_errors),
            ("disconnects", "Stream disconnects", s.disconnects),
            ("seconds_disconnected", "Seconds spent disconnected from the stream", s.seconds_disconnected),
            ("api_errors", "Error entries in stream payloads", s.api_errors),
            (
                "journal_synced_records",
                "Records of this run covered by the last journal fsync",
                s.journal_synced,
            ),
            ("journal_fsyncs", "Journal fsyncs", s.journal_fsyncs),
            ("journal_torn_records", "Torn journal tail records cut off on recovery", s.journal_torn),
            (
                "journal_recovered_records",
                "Unconfirmed records found in the journal at start",
                s.journal_recovered,
            ),
            (
                "journal_full_pauses",
                "Times reading stopped because the journal was full",
                s.journal_full_pauses,
            ),
            (
                "backfill_requests",
                "Reconnects that asked the stream for backfill_minutes",
                s.backfill_requests,
            ),
        ]
        for name, doc, value in counters:
            yield CounterMetricFamily(f"{prefix}_{name}", doc, value=value)
        dropped = CounterMetricFamily(f"{prefix}_dropped", "Records dropped, by reason", labels=["reason"])
        for reason, count in sorted(s.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
        yield GaugeMetricFamily(
            f"{prefix}_spool_depth", "Batches waiting in the local spool", value=s.spool_depth
        )
        gauges = [
            ("connected", "1 while the stream is connected", int(s.connected)),
            (
                "journal_depth",
                "Unconfirmed journal segments (batches), the open one included",
                s.journal_depth,
            ),
            ("journal_bytes", "Bytes of unconfirmed records in the journal", s.journal_bytes),
            (
                "journal_oldest_unconfirmed_seconds",
                "Age of the oldest record not yet confirmed by the store",
                s.journal_oldest_age(),
            ),
            ("journal_fsync_seconds", "Duration of the last journal fsync", s.journal_fsync_seconds),
            ("journal_fsync_max_seconds", "Longest journal fsync so far", s.journal_fsync_max_seconds),
            ("journal_full", "1 while reading is stopped because the journal is full", int(s.journal_full)),
            ("backfill_refused", "1 once the stream refused backfill_minutes", int(s.backfill_refused)),
        ]
        for name, doc, value in gauges:
            yield GaugeMetricFamily(f"{prefix}_{name}", doc, value=value)


class OpsServer:
    """``/healthz`` and ``/metrics`` on a small threaded HTTP server (stdlib)."""

    def __init__(self, stats: CollectorStats, host: str, port: int) -> None:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        registry = CollectorRegistry(auto_describe=False)
        registry.register(StatsMetrics(stats))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    body = json.dumps(stats.health()).encode()
                    self._send(200, "application/json", body)
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                else:
                    self._send(404, "application/json", b'{"detail": "not found"}')

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, name="collector-ops", daemon=True)

    def start(self) -> OpsServer:
        """Serve in a background thread."""
        self.thread.start()
        log.info("metrics endpoint listening", extra={"port": self.port})
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()
