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
    ``kept`` those that passed the filters and were not duplicates, ``written`` those in a
    batch that reached the store, ``spooled`` those in a batch that waits in the spool."""

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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (the CLI prints it on its last line)."""
        out = asdict(self)
        out["parse"] = self.parse.summary()
        out["elapsed"] = round(self.elapsed, 3)
        out["seconds_disconnected"] = round(self.seconds_disconnected, 3)
        out.pop("started_at")
        return out

    def status_line(self) -> str:
        """One line for the console: counts and rate so far."""
        elapsed = max(time.time() - self.started_at, 1e-9)
        dropped = sum(self.dropped.values())
        return (
            f"received={self.received} kept={self.kept} dropped={dropped} duplicates={self.duplicates} "
            f"written={self.written} batches={self.batches_written} spool_depth={self.spool_depth} "
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
        yield GaugeMetricFamily(
            f"{prefix}_connected", "1 while the stream is connected", value=int(s.connected)
        )


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
                    body = json.dumps(
                        {"status": "ok", "connected": stats.connected, "spool_depth": stats.spool_depth}
                    ).encode()
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
