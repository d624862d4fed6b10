"""``tweetdomains serve`` and ``tweetdomains drift``.

Standard library only at module level (fast ``--help``)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the API's command."""
    parser = subparsers.add_parser(
        "serve",
        help="run the inference API (POST /classify) on the best model in the store",
        description="Run the inference API. Flags override the TWEETDOMAINS_* settings.",
    )
    parser.add_argument("--store", help="store URI: s3://bucket/prefix, file:///path or a path")
    parser.add_argument("--redis-url", help="Redis for the cache (default: an in-process LRU)")
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--run", help="serve this run id instead of following models/best.json")
    parser.add_argument("--max-batch-size", type=int, help="texts per forward pass at most (default 128)")
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        help="recurrence arithmetic: float32 (exact, default) or bfloat16 (faster on AMX/AVX-512 BF16)",
    )
    parser.add_argument("--max-wait-ms", type=float, help="how long a batch waits to fill (default 2)")
    parser.add_argument(
        "--reload-interval", type=float, dest="reload_interval_s", help="seconds between polls"
    )
    parser.set_defaults(func=run_serve)

    drift = subparsers.add_parser(
        "drift",
        help="compare a day of collected tweets with the served run's training labels",
        description="Print the domains whose share moved most between the run's training data "
        "and one day of collected raw batches.",
    )
    drift.add_argument("--store", help="store URI: s3://bucket/prefix, file:///path or a path")
    drift.add_argument("--run", default="best", help="run id to compare with (default: best)")
    drift.add_argument("--day", help="YYYY-MM-DD of the raw batches (default: the newest day)")
    drift.add_argument("--top", type=int, default=10, help="domains to print (default 10)")
    drift.set_defaults(func=run_drift)


def run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from tweetdomains.errors import UsageError
    from tweetdomains.logs import setup_logging
    from tweetdomains_api.app import serve
    from tweetdomains_api.settings import Settings

    overrides = {
        key: value
        for key in (
            "store",
            "redis_url",
            "host",
            "port",
            "run",
            "max_batch_size",
            "max_wait_ms",
            "reload_interval_s",
            "precision",
        )
        if (value := getattr(args, key, None)) is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    setup_logging(settings.log_level, settings.log_format)
    serve(settings)
    return 0


def run_drift(args: argparse.Namespace) -> int:
    from tweetdomains.errors import UsageError
    from tweetdomains.store import open_store
    from tweetdomains_api.drift_report import drift_report, format_report
    from tweetdomains_api.settings import Settings

    store = args.store or Settings().store
    try:
        report = drift_report(open_store(store), args.run, args.day)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(format_report(report, max(1, args.top)))
    return 0
