"""Every command's ``--help``, as a user runs it through the installed ``tweetdomains`` launcher.

Each command has a one-line summary and a description; each flag has help text that gives its
default (choices show as ``{a,b}``); nothing carries markup meant for docs (RST or Markdown).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tweetdomains_cli.main import build_parser

LAUNCHER = Path(sys.executable).with_name("tweetdomains")
MARKUP = re.compile(r"``|`[^`\s][^`]*`|\*\*|:class:|:func:|:mod:|:data:|::$", re.M)
# A flag's invocation, then its help on the same line (after 2+ spaces) or indented below.
ENTRY = re.compile(r"^  (?P<invocation>\S.*?)(?:\s{2,}(?P<help>\S.*))?$")


def _subparsers() -> argparse._SubParsersAction:  # type: ignore[type-arg]
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))


COMMANDS = sorted(_subparsers().choices)


def _help(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "100"}
    result = subprocess.run(
        [str(LAUNCHER), *args, "--help"], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _sections(command: str, text: str) -> tuple[str, dict[str, list[str]]]:
    """The description (between usage and the first section) and each section's lines; the
    section titles are the parser's argument groups."""
    titles = [g.title for g in _subparsers().choices[command]._action_groups if g.title]
    pattern = "|".join(re.escape(title) for title in titles)
    blocks = re.split(rf"\n\n(?=(?:{pattern}):\n)", text)
    description = "\n".join(blocks[0].split("\n\n")[1:]).strip()
    sections = {}
    for block in blocks[1:]:
        title, _, body = block.partition("\n")
        sections[title.rstrip(":")] = body.splitlines()
    return description, sections


def _entries(lines: list[str], positional: bool) -> dict[str, str]:
    """Invocation -> help text, for each flag (or positional) of a section."""
    entries: dict[str, str] = {}
    current = None
    for line in lines:
        match = ENTRY.match(line)
        if match and (positional or match["invocation"].startswith("-")):
            current = match["invocation"]
            entries[current] = match["help"] or ""
        elif current and line.startswith("   ") and line.strip():
            entries[current] = f"{entries[current]} {line.strip()}".strip()
        elif not line.strip():
            current = None
    return entries


def test_every_command_has_a_one_line_summary() -> None:
    summaries = {a.dest: a.help for a in _subparsers()._choices_actions}
    for command in COMMANDS:
        summary = summaries.get(command)
        assert summary and "\n" not in summary and not MARKUP.search(summary), f"{command}: {summary!r}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_flag_of_every_command_says_what_it_does_and_its_default(command: str) -> None:
    text = _help(command)
    description, sections = _sections(command, text)
    assert description, f"`tweetdomains {command} --help` has no description"
    assert not MARKUP.search(text), f"{command}: markup {MARKUP.search(text)[0]!r} in its help"  # type: ignore[index]
    flags: dict[str, str] = {}
    for title, lines in sections.items():
        flags |= _entries(lines, positional=title == "positional arguments")
    assert any(name.startswith("--") for name in flags), f"{command}: no flags found in\n{text}"
    for invocation, help_text in flags.items():
        if invocation.startswith("-h, --help"):
            continue
        assert help_text, f"`tweetdomains {command}` {invocation}: no help text"
        if invocation.startswith("-"):
            assert "default" in help_text or "required" in help_text, (
                f"`tweetdomains {command}` {invocation}: no default in {help_text!r}"
            )


def test_the_top_level_help_lists_every_command() -> None:
    text = _help()
    for command in COMMANDS:
        assert re.search(rf"^    {re.escape(command)}\b", text, re.M), f"{command} missing from --help"
