"""``tweetdomains demo``: the whole pipeline on embedded defaults, as a new user first sees it.

It runs the services' own commands one after the other, as child processes, exactly as an
operator would. It imports no service code: it only starts ``tweetdomains`` commands.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import Any

from tweetdomains.errors import UsageError

DEFAULT_SOURCE = "simulate:7"

# Plain text: argparse prints it as it stands.
DESCRIPTION = """\
The whole pipeline on embedded defaults, as a new user first sees it.

It runs the services' own commands one after the other, as child processes, exactly as
an operator would: 'collect' fills a local store (synthetic stream by default, or replay:
real files), 'train' trains an LSTM on CPU and promotes it, 'serve' answers on port 8000.
"""


def register(subparsers: Any) -> None:
    """Add ``tweetdomains demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="collect, train and serve on embedded defaults (local store, in-process cache)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="collector source (default %(default)s)")
    parser.add_argument("--store", default=None, help="store URI (default $TWEETDOMAINS_STORE or var/store)")
    parser.add_argument("--limit", type=int, default=8000, help="tweets to collect (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the trainer's)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-serve", action="store_true", help="stop after training")
    parser.set_defaults(func=run_demo)


def _command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "tweetdomains_cli", *argv]


def _run(step: str, argv: list[str]) -> None:
    print(f"\n== {step}: tweetdomains {' '.join(argv)}", flush=True)
    result = subprocess.run(_command(argv), check=False)
    if result.returncode != 0:
        raise UsageError(f"step '{step}' failed with exit code {result.returncode}")


def run_demo(args: argparse.Namespace) -> int:
    """Collect, train, then serve until Ctrl-C (or stop after training with ``--no-serve``)."""
    from tweetdomains.settings import CommonSettings

    store = args.store or CommonSettings().store
    source = args.source
    collect = ["collect", "--source", source, "--store", store, "--limit", str(args.limit)]
    # Small batches so even a short demo writes several objects, as a real collector would.
    collect += ["--batch-records", "1000"]
    _run("collect", collect)
    train = ["train", "--store", store]
    if source.startswith("replay:"):
        # Real tweets: the quality recipe (MiniLM wordpieces, BiLSTM, refit), a few minutes on a CPU.
        train += ["--recipe", "quality"]
    if args.epochs is not None:
        train += ["--epochs", str(args.epochs)]
    _run("train", train)
    if args.no_serve:
        return 0
    print(
        f"\n== serve: the API is starting on http://{args.host}:{args.port} (Ctrl-C stops it). Try:\n"
        f"   curl -s -X POST http://{args.host}:{args.port}/classify -H 'Content-Type: application/json' "
        """-d '{"text": "Taylor Swift just dropped a new album"}'\n"""
        f"   or open http://{args.host}:{args.port}/ in a browser\n",
        flush=True,
    )
    serve = _command(["serve", "--store", store, "--host", args.host, "--port", str(args.port)])
    try:
        return subprocess.run(serve, env=dict(os.environ), check=False).returncode
    except KeyboardInterrupt:
        return 0
