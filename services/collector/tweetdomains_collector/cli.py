"""``tweetdomains collect`` and ``tweetdomains export-legacy``.

Only the standard library is imported here at module level: ``--help`` stays fast and the
collector's image (no torch) runs every command it needs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


def byte_size(text: str) -> int:
    """``5000000``, ``5MB``, ``512k`` or ``4MiB`` as a number of bytes."""
    match = _SIZE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 5MB, 512k, 1048576)")
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(float(match.group(1)) * _UNITS[unit])


def register(subparsers: Any) -> None:
    """Add the collector's commands."""
    parser = subparsers.add_parser(
        "collect",
        help="collect annotated tweets into the store (X API stream, replay of files, or synthetic)",
        description=(
            "Collect tweets into gzip JSONL batches under the store's raw/YYYY/MM/DD/HH/. "
            "Each flag overrides its TWEETDOMAINS_* variable (--batch-records: "
            "TWEETDOMAINS_BATCH_RECORDS); the defaults below apply when neither is set."
        ),
    )
    parser.add_argument(
        "--source",
        help="x-api (needs X_BEARER_TOKEN), replay:PATH[,PATH...] (files or globs, .gz, any format "
        "collect reads) or simulate[:SEED] (synthetic tweets) (default: x-api)",
    )
    parser.add_argument(
        "--store", help="store URI: s3://bucket/prefix, file:///path or a path (default: var/store)"
    )
    parser.add_argument("--limit", type=int, help="stop after this many records are kept (default: no limit)")
    parser.add_argument("--max-seconds", type=float, help="stop after this many seconds (default: no limit)")
    parser.add_argument(
        "--rate",
        type=float,
        help="pace replay/simulate at this many records per second (default: as fast as they read)",
    )
    parser.add_argument(
        "--batch-records", type=int, help="close a batch at this many records (default: 100000)"
    )
    parser.add_argument(
        "--batch-bytes",
        type=byte_size,
        help="close a batch at this JSONL size: bytes, or 512k, 5MB, 4MiB (default: 5MB)",
    )
    parser.add_argument("--batch-seconds", type=float, help="close a batch at this age (default: 300)")
    parser.add_argument("--languages", help="comma-separated languages to keep; '' keeps all (default: en)")
    parser.add_argument(
        "--no-require-annotations",
        dest="require_annotations",
        action="store_const",
        const=False,
        help="keep tweets without context annotations too (default: drop them)",
    )
    parser.add_argument(
        "--spool-dir",
        help="local folder of the write-ahead journal and the batches the store refused (default: var/spool)",
    )
    parser.add_argument(
        "--metrics-port", type=int, help="serve /healthz and /metrics on this port; 0: off (default: 0)"
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        help="force a progress bar (default: a bar on a terminal, status lines elsewhere)",
    )
    progress.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        help="no progress bar (default: a bar on a terminal)",
    )
    parser.set_defaults(func=collect_command, progress=None)

    export = subparsers.add_parser(
        "export-legacy",
        help="write the store's collected records in the original b'...'<COMMA>Domain format",
        description="Write every record under the store's raw/ as one line of the original project's "
        "stream format (b'<text as a bytes literal>'<COMMA>Domain<COMMA>Domain...), which its "
        "notebook reads; a one-line summary goes to standard error.",
    )
    export.add_argument("--store", help="store URI (default: $TWEETDOMAINS_STORE, else var/store)")
    export.add_argument("--output", default="-", help="file to write; - is standard output (default: -)")
    export.set_defaults(func=export_legacy_command)


_OVERRIDES = (
    "source",
    "store",
    "limit",
    "max_seconds",
    "rate",
    "batch_records",
    "batch_bytes",
    "batch_seconds",
    "languages",
    "require_annotations",
    "spool_dir",
    "metrics_port",
)


def _settings(args: argparse.Namespace, names: tuple[str, ...]) -> Any:
    from pydantic import ValidationError

    from tweetdomains.errors import settings_error
    from tweetdomains_collector.settings import Settings

    overrides = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise settings_error(exc, flags=names) from None


def collect_command(args: argparse.Namespace) -> int:
    """Run the collector; prints its counts as JSON on the last line of standard output."""
    from tweetdomains.logs import setup_logging
    from tweetdomains_collector.service import CollectorError, run_collector

    settings = _settings(args, _OVERRIDES)
    setup_logging(settings.log_level, settings.log_format)
    try:
        stats = run_collector(settings, progress=args.progress)
    except CollectorError as exc:
        print(f"tweetdomains collect: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(stats.to_dict(), sort_keys=True))
    return 0


def export_legacy_command(args: argparse.Namespace) -> int:
    """Write the store's records as legacy lines; a one-line summary goes to standard error."""
    from tweetdomains.logs import setup_logging
    from tweetdomains.store import open_store
    from tweetdomains_collector.service import export_legacy

    settings = _settings(args, ("store",))
    setup_logging(settings.log_level, settings.log_format)
    store = open_store(settings.store)
    if args.output == "-":
        stats = export_legacy(store, sys.stdout)
    else:
        with open(args.output, "w", encoding="utf-8") as handle:
            stats = export_legacy(store, handle)
    print(f"exported {stats.records} records from {store.uri}", file=sys.stderr)
    return 0
