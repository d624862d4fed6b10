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
        description="Run the inference API. Each flag overrides its TWEETDOMAINS_* variable "
        "(--port: TWEETDOMAINS_PORT); the defaults below apply when neither is set. A store that "
        "does not exist (no such folder or bucket) is refused; an empty one is served once a model "
        "is promoted there.",
    )
    parser.add_argument(
        "--store", help="store URI: s3://bucket/prefix, file:///path or a path (default: var/store)"
    )
    parser.add_argument(
        "--redis-url", help="Redis for the cache, redis://HOST:PORT/DB (default: an in-process LRU cache)"
    )
    parser.add_argument("--host", help="bind address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: 8000)")
    parser.add_argument(
        "--run", help="serve this run id instead of following models/best.json (default: follow best.json)"
    )
    parser.add_argument(
        "--max-batch-size", type=int, help="texts per forward pass at most, 1-4096 (default: 128)"
    )
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        help="recurrence arithmetic: float32 (exact) or bfloat16 (faster on AMX/AVX-512 BF16) "
        "(default: float32)",
    )
    parser.add_argument(
        "--max-wait-ms", type=float, help="how long a batch waits to fill, 0-1000 ms (default: 2)"
    )
    parser.add_argument(
        "--reload-interval",
        type=float,
        dest="reload_interval_s",
        help="seconds between polls of models/best.json for a new best (default: 5)",
    )
    parser.set_defaults(func=run_serve)

    drift = subparsers.add_parser(
        "drift",
        help="compare a day of collected tweets with the served run's training labels",
        description="Print the domains whose share moved most between the run's training data "
        "and one day of collected raw batches.",
    )
    drift.add_argument(
        "--store", help="store URI: s3://bucket/prefix, file:///path or a path (default: var/store)"
    )
    drift.add_argument("--run", default="best", help="run id to compare with (default: best)")
    drift.add_argument("--day", help="YYYY-MM-DD of the raw batches (default: the newest day)")
    drift.add_argument("--top", type=int, default=10, help="domains to print (default: 10)")
    drift.set_defaults(func=run_drift)


SERVE_FLAGS = (
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


def run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from tweetdomains.errors import settings_error
    from tweetdomains.logs import setup_logging
    from tweetdomains_api.app import serve
    from tweetdomains_api.settings import Settings

    overrides = {key: value for key in SERVE_FLAGS if (value := getattr(args, key, None)) is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise settings_error(exc, flags=SERVE_FLAGS) from None
    setup_logging(settings.log_level, settings.log_format)
    _check_store(settings.store)
    serve(settings)
    return 0


def _check_store(uri: str) -> None:
    """Refuse a store that does not exist before serving: the API would wait for a model forever.
    A store that exists but cannot be reached now is only logged: the API retries it while it runs."""
    import logging

    from tweetdomains.errors import UsageError
    from tweetdomains.store import StoreError, StoreMissing, open_store, require_existing

    try:
        require_existing(open_store(uri))
    except StoreMissing as exc:
        raise UsageError(str(exc)) from None
    except StoreError as exc:
        logging.getLogger("tweetdomains.api").warning("store check failed, serving anyway: %s", exc)


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
