"""Prometheus metrics of one app instance (its own registry, so tests can run several apps)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

# Past the longest request deadline one would set (30 s): an overload's samples land in buckets.
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
)  # fmt: skip


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, ...
        PlatformCollector(registry=r)
        self.requests = Counter(
            "tweetdomains_http_requests_total", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "tweetdomains_http_request_seconds",
            "HTTP latency",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "tweetdomains_batch_size",
            "texts per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=r,
        )
        self.queue_wait = Histogram(
            "tweetdomains_queue_wait_seconds",
            "time a request waited for its batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "tweetdomains_inference_seconds", "forward pass time", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.cache = Counter("tweetdomains_cache_total", "cache lookups per text", ["result"], registry=r)
        self.cache_hit, self.cache_miss, self.cache_error = (
            self.cache.labels(result) for result in ("hit", "miss", "error")
        )
        self.model_info = Gauge("tweetdomains_model_info", "served model (value 1)", ["run_id"], registry=r)
        self.model_load_seconds = Gauge("tweetdomains_model_load_seconds", "last model load time", registry=r)
        self.reloads = Counter(
            "tweetdomains_model_reloads_total", "model loads by result", ["result"], registry=r
        )
        self.redis_up = Gauge(
            "tweetdomains_cache_up", "1 when the cache answers, 0 when degraded", registry=r
        )
        self.in_flight = Gauge(
            "tweetdomains_http_in_flight_requests", "HTTP requests being served", registry=r
        )
        self.queue_depth = Gauge("tweetdomains_queue_texts", "texts waiting for a forward pass", registry=r)
        self.shed = Counter(
            "tweetdomains_shed_total",
            "requests answered 503 without computing: queue full (overload) or deadline passed",
            ["reason"],
            registry=r,
        )
        self.cancelled = Counter(
            "tweetdomains_cancelled_texts_total",
            "texts removed from the queue because their client disconnected",
            registry=r,
        )
        self.computed = Counter(
            "tweetdomains_computed_texts_total", "texts run through a forward pass", registry=r
        )
        for reason in ("overload", "deadline"):
            self.shed.labels(reason)
        self.drift_live = Gauge(
            "tweetdomains_drift_live_share",
            "share of the recent texts (drift window) predicted in each domain",
            ["domain"],
            registry=r,
        )
        self.drift_training = Gauge(
            "tweetdomains_drift_training_share",
            "share of the served run's training labels in each domain",
            ["domain"],
            registry=r,
        )
        self.drift_window = Gauge("tweetdomains_drift_window_texts", "texts in the drift window", registry=r)
        self.throughput = Gauge(
            "tweetdomains_model_texts_per_second",
            "the served model's measured throughput (sizes the queue bound)",
            registry=r,
        )
