"""``tweetdomains demo``: the whole pipeline on embedded defaults, as a new user first sees it.

It runs the services' own commands one after the other, as child processes, exactly as an
operator would. It imports no service code: it only starts ``tweetdomains`` commands.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path, PurePath
from typing import Any

from tweetdomains.errors import UsageError

DEFAULT_SOURCE = "simulate:7"
DEMO_ROOT = Path("var") / "demo"
# The synthetic stream is a toy that a small model learns in a few epochs: the demo-sized `word`
# recipe (a vocabulary of its own words, no MiniLM files), 4 epochs, no refit. Real tweets get
# the trainer's own default recipe (quality), so the demo trains what `tweetdomains train` would.
SYNTHETIC_TRAIN = ["--recipe", "word", "--epochs", "4", "--no-refit"]

# Plain text: argparse prints it as it stands.
DESCRIPTION = """\
The whole pipeline on embedded defaults, as a new user first sees it.

It runs the services' own commands one after the other, as child processes, exactly as
an operator would: 'collect' fills a local store (synthetic stream by default, or replay:
real files), 'train' trains an LSTM on CPU and promotes it, 'serve' answers on port 8000
(--port picks another).

Each source gets a store of its own, var/demo/<source>/store, emptied at the start of each
run, so the API serves the model trained on that source only. The port and the store are
checked before anything is collected.
"""


def register(subparsers: Any) -> None:
    """Add ``tweetdomains demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="collect, train and serve on embedded defaults (local store, in-process cache)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help="collector source: simulate[:SEED] (synthetic tweets) or replay:PATH[,PATH...] "
        "(files or globs of real tweets, any format collect reads) (default: %(default)s)",
    )
    parser.add_argument(
        "--store",
        default=None,
        help="store URI; it must hold no tweets or models yet (default: var/demo/<source>/store, "
        "emptied at the start of each run)",
    )
    parser.add_argument("--limit", type=int, default=8000, help="tweets to collect (default: %(default)s)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="most training epochs (default: 4 on simulate, recipe word, no refit; replay: the trainer's)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the API binds (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port the API listens on (default: %(default)s)"
    )
    parser.add_argument(
        "--no-serve", action="store_true", help="stop after training; no port is needed (default: serve)"
    )
    parser.set_defaults(func=run_demo)


def source_slug(source: str) -> str:
    """A folder name for a source: ``simulate-7``, ``replay-<first file's name>-<hash of the source>``."""
    kind, _, rest = source.strip().partition(":")
    if kind != "replay":
        return re.sub(r"[^A-Za-z0-9_-]+", "-", source.strip()).strip("-") or "source"
    first = rest.split(",")[0]
    named = [p for p in PurePath(first).parts if p not in ("..", ".", "/") and not set(p) & set("*?[")]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", named[-1].split(".")[0] if named else "files").strip("-")
    digest = hashlib.sha256(rest.encode("utf-8")).hexdigest()[:8]
    return f"replay-{stem[:40] or 'files'}-{digest}"


def _command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "tweetdomains_cli", *argv]


def _run(step: str, argv: list[str]) -> None:
    print(f"\n== {step}: tweetdomains {' '.join(argv)}", flush=True)
    result = subprocess.run(_command(argv), check=False)
    if result.returncode != 0:
        raise UsageError(f"step '{step}' failed with exit code {result.returncode}")


def check_port(host: str, port: int) -> None:
    """Refuse, before any work, a port the API could not bind."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(
                f"port {port} on {host} is not free ({exc.strerror}): another program listens there. "
                f"Stop it, or serve the demo on another port: tweetdomains demo --port 8080 "
                f"(with make: make demo DEMO_ARGS='--port 8080')"
            ) from None


def _check_store_is_empty(uri: str) -> None:
    """An explicit store must exist (S3: its bucket) and hold neither tweets nor models."""
    from tweetdomains.store import StoreError, open_store, require_existing

    try:
        store = open_store(uri)
        if "://" in uri and not uri.startswith("file://"):
            require_existing(store)
        held = next(iter(store.list("raw/")), None) or next(iter(store.list("models/")), None)
    except (StoreError, ValueError) as exc:
        raise UsageError(f"cannot use --store {uri}: {exc}") from None
    if held is not None:
        raise UsageError(
            f"the store {uri} already holds collected tweets or models ({held}); the demo serves only "
            "what it collects and trains, so it needs an empty store: pass another --store, or leave "
            "--store out (each source then gets var/demo/<source>/store, emptied every run)"
        )


def run_demo(args: argparse.Namespace) -> int:
    """Collect, train, then serve until Ctrl-C (or stop after training with ``--no-serve``)."""
    from tweetdomains.settings import CommonSettings

    CommonSettings()  # a bad TWEETDOMAINS_* setting is refused now, not by a later step
    source = args.source.strip()
    if not args.no_serve:
        check_port(args.host, args.port)
    collect_extra: list[str] = []
    if args.store:
        store = args.store
        _check_store_is_empty(store)
    else:
        folder = DEMO_ROOT / source_slug(source)
        store = str(folder / "store")
        if folder.exists():
            shutil.rmtree(folder)  # the demo's own folder: a fresh start, never another source's tweets
            print(f"== store: {store} (emptied: each demo run starts from a fresh store)", flush=True)
        else:
            print(f"== store: {store}", flush=True)
        # The collector's journal beside the store, so what an interrupted run left goes with it.
        collect_extra = ["--spool-dir", str(folder / "spool")]
    collect = ["collect", "--source", source, "--store", store, "--limit", str(args.limit)]
    # Small batches so even a short demo writes several objects, as a real collector would.
    collect += ["--batch-records", "1000", *collect_extra]
    _run("collect", collect)
    train = ["train", "--store", store]
    if not source.startswith("replay:"):
        train += SYNTHETIC_TRAIN
    if args.epochs is not None:
        train += ["--epochs", str(args.epochs)]
    _run("train", train)
    if args.no_serve:
        return 0
    print(
        f"\n== serve: the API is starting on http://{args.host}:{args.port} (Ctrl-C stops it),\n"
        f"   serving the model trained on {source} from {store}. Try:\n"
        f"   curl -s -X POST http://{args.host}:{args.port}/classify -H 'Content-Type: application/json' "
        """-d '{"text": "Taylor Swift just dropped a new album"}'\n"""
        f"   or open http://{args.host}:{args.port}/ in a browser\n",
        flush=True,
    )
    if not source.startswith("replay:"):
        print(
            "   (the synthetic stream is a toy: its test scores measure how learnable the generator is,\n"
            "   not how well the model labels real tweets; --source 'replay:FILE' trains on real ones)\n",
            flush=True,
        )
    serve = _command(["serve", "--store", store, "--host", args.host, "--port", str(args.port)])
    try:
        return subprocess.run(serve, env=dict(os.environ), check=False).returncode
    except KeyboardInterrupt:
        return 0
