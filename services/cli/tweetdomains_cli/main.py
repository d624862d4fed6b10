"""``tweetdomains``: one command line for every installed service, and the demo.

Commands come from the ``tweetdomains.commands`` entry-point group: each entry names a
``register(subparsers)`` function that adds a service's subcommands. A service whose package
is not installed (the collector's image holds only the library and the collector) fails to
import and contributes no commands. Service ``cli`` modules import only the standard library
at the top, so ``tweetdomains --help`` stays fast and never loads torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import Any

from tweetdomains.errors import UsageError

COMMAND_GROUP = "tweetdomains.commands"
# Help lists the pipeline's stages in the order data flows through them (the entry points'
# names; installers sort a group's entries by name), then any other registration by name.
STAGES = ("collector", "trainer", "api", "demo")


def registrations() -> Iterator[Callable[[Any], None]]:
    """The ``register(subparsers)`` functions of the installed services, in :data:`STAGES` order."""
    entry_points = sorted(
        metadata.entry_points(group=COMMAND_GROUP),
        key=lambda e: (STAGES.index(e.name) if e.name in STAGES else len(STAGES), e.name),
    )
    for entry_point in entry_points:
        try:
            yield entry_point.load()
        except ImportError:  # the service is not installed here
            continue


def build_parser() -> argparse.ArgumentParser:
    """The ``tweetdomains`` parser with every installed service's subcommands."""
    parser = argparse.ArgumentParser(
        prog="tweetdomains",
        description="Label tweets with the X/Twitter context-annotation domains they talk about.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in registrations():
        register(subparsers)
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

        from tweetdomains.errors import settings_error
        from tweetdomains.registry import RegistryError
        from tweetdomains.store import StoreError

        if isinstance(exc, ValidationError):  # a TWEETDOMAINS_* variable no flag overrode
            print(f"tweetdomains {args.command}: error: {settings_error(exc)}", file=sys.stderr)
            return 2
        # OSError: a full disk or a missing file, with the path it names.
        if isinstance(exc, (RegistryError, StoreError, ValueError, OSError)):
            print(f"tweetdomains {args.command}: error: {_one_line(exc)}", file=sys.stderr)
            return 1
        raise


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
