"""``tweetdomains`` command line: one entry point for the three services and the demo.

Each service package owns its commands in a ``cli`` module with a ``register(subparsers)``
function. Those modules import only the standard library at the top, so ``tweetdomains
--help`` is fast and the collector's image, which has no torch, can still run ``collect``.
A service that is not installed simply contributes no commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SERVICE_CLIS = (
    "tweetdomains_collector.cli",
    "tweetdomains_trainer.cli",
    "tweetdomains_api.cli",
    "tweetdomains.demo",
)


class UsageError(Exception):
    """A bad flag value or setting: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tweetdomains",
        description="Label tweets with the X/Twitter context-annotation domains they talk about.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in SERVICE_CLIS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        module.register(subparsers)
    return parser


def _version() -> str:
    from tweetdomains import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, dispatch, and turn expected failures into one-line errors with exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"tweetdomains {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tweetdomains {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from pydantic import ValidationError

        from tweetdomains.registry import RegistryError
        from tweetdomains.store import StoreError

        if isinstance(exc, (RegistryError, StoreError, ValidationError, ValueError, FileNotFoundError)):
            print(f"tweetdomains {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        raise


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
