"""The README's commands stay true: every ``tweetdomains ...`` line it shows parses with the
installed launcher's flags, and every ``make TARGET`` it names is a Makefile target.

Lines with placeholders (``COMMAND``, ``...``, ``<...>``) are prose, not commands, and are
skipped; optional parts written ``[--flag value]`` are parsed as given.
"""

from __future__ import annotations

import re
import shlex
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path

import pytest

from tweetdomains_cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PLACEHOLDERS = ("COMMAND", "...", "<", "…")


def _command_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    lines += re.findall(r"`((?:tweetdomains|make) [^`]+)`", README)
    return lines


def _words(line: str) -> list[str]:
    return shlex.split(line.replace("[", "").replace("]", ""), comments=True)


TWEETDOMAINS = sorted(
    {
        line
        for line in _command_lines()
        if line.startswith("tweetdomains ") and not any(p in line for p in PLACEHOLDERS)
    }
)
MAKE = sorted({line for line in _command_lines() if line.startswith("make ")})


def _parses(argv: list[str]) -> str:
    """What argparse says against ``argv`` (empty: it parses, or it is ``--help``)."""
    errors, shown = StringIO(), StringIO()
    try:
        with redirect_stderr(errors), redirect_stdout(shown):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        return "" if exc.code == 0 else errors.getvalue().strip() or f"exit {exc.code}"
    return ""


def test_the_readme_shows_commands() -> None:
    assert len(TWEETDOMAINS) >= 5 and any(line.startswith("make demo") for line in MAKE)


@pytest.mark.parametrize("line", TWEETDOMAINS)
def test_every_tweetdomains_command_in_the_readme_parses(line: str) -> None:
    assert not (problem := _parses(_words(line)[1:])), f"README: {line!r}: {problem}"


@pytest.mark.parametrize("line", MAKE)
def test_every_make_command_in_the_readme_names_a_target(line: str) -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M))
    words = _words(line)
    assert words[1] in targets, f"README: {line!r}: no Makefile target {words[1]!r}"
    for word in words[2:]:
        if word.startswith("DEMO_ARGS="):
            demo = ["demo", *shlex.split(word.removeprefix("DEMO_ARGS="))]
            assert not (problem := _parses(demo)), f"README: {line!r}: {problem}"
