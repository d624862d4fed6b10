"""Prometheus metrics of one app instance (its own registry, so tests can run several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
        self.model_info = Gauge("tweetdomains_model_info", "served model (value 1)", ["run_id"], registry=r)
        self.model_load_seconds = Gauge("tweetdomains_model_load_seconds", "last model load time", registry=r)
        self.reloads = Counter(
            "tweetdomains_model_reloads_total", "model loads by result", ["result"], registry=r
        )
        self.redis_up = Gauge(
            "tweetdomains_cache_up", "1 when the cache answers, 0 when degraded", registry=r
        )
