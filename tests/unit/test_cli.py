"""The ``tweetdomains`` launcher: services' commands found through entry points, flags unchanged.

``cli_snapshot/`` holds what the command line was before the launcher moved out of the
library: ``help.txt`` is ``tweetdomains --help`` at 80 columns, ``flags.json`` every
subcommand's flags (option strings, choices, nargs, required, action). Operators' scripts,
compose files and manifests rely on both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tweetdomains_cli.main import COMMAND_GROUP, build_parser

SNAPSHOT = Path(__file__).parent / "cli_snapshot"
_ACTION_ALIASES = {"_StoreTrueAction": "_StoreConstAction", "_StoreFalseAction": "_StoreConstAction"}


def _describe(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    described = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        described.append(
            {
                "flags": list(action.option_strings) or [action.dest],
                "nargs": action.nargs,
                "choices": sorted(map(str, action.choices)) if action.choices else None,
                "required": action.required,
                # store_true is a store_const of True: the same flag to whoever types it.
                "action": _ACTION_ALIASES.get(type(action).__name__, type(action).__name__),
            }
        )
    return described


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "80", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, env=environment
    )


def test_every_subcommand_keeps_its_flags() -> None:
    parser = build_parser()
    current = {"": _describe(parser)} | {name: _describe(p) for name, p in _subcommands(parser).items()}
    before = json.loads((SNAPSHOT / "flags.json").read_text(encoding="utf-8"))
    assert list(current) == list(before), "the commands or their order changed"
    for command, flags in before.items():
        # The order flags are listed in is presentation (the trainer generates its flags from its
        # options dataclasses); what each flag is and accepts must not change.
        for flag in flags:
            flag["action"] = _ACTION_ALIASES.get(flag["action"], flag["action"])
        assert sorted(current[command], key=str) == sorted(flags, key=str), (
            f"`tweetdomains {command}` flags changed"
        )


def test_help_is_unchanged_through_python_m_tweetdomains() -> None:
    result = _run("-m", "tweetdomains", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (SNAPSHOT / "help.txt").read_text(encoding="utf-8")


def test_console_script_and_launcher_module_run_the_same_command() -> None:
    script = Path(sys.executable).with_name("tweetdomains")
    assert script.is_file(), f"no console script beside {sys.executable}"
    via_script = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    via_module = _run("-m", "tweetdomains_cli", "--version")
    via_library = _run("-m", "tweetdomains", "--version")
    assert via_script.returncode == via_module.returncode == via_library.returncode == 0
    assert via_script.stdout == via_module.stdout == via_library.stdout
    assert via_script.stdout.startswith("tweetdomains ")


def test_a_service_not_installed_contributes_no_commands() -> None:
    """As in the collector's image: only the library, the collector and the launcher."""
    code = (
        "import sys\n"
        "for name in ('tweetdomains_trainer', 'tweetdomains_api', 'torch', 'numpy'):\n"
        "    sys.modules[name] = None  # importing it now fails, as where it is not installed\n"
        "from tweetdomains_cli.main import build_parser\n"
        "parser = build_parser()\n"
        "action = next(a for a in parser._actions if hasattr(a, 'choices') and a.choices)\n"
        "print(' '.join(action.choices))\n"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["collect", "export-legacy", "demo"]


def test_services_register_through_the_entry_point_group() -> None:
    from importlib import metadata

    names = [entry.name for entry in metadata.entry_points(group=COMMAND_GROUP)]
    assert sorted(names) == ["api", "collector", "demo", "trainer"]


def test_usage_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    result = _run("-m", "tweetdomains", "collect", "--source", "nowhere:1", "--store", str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("tweetdomains collect: error:") and "Traceback" not in result.stderr


def test_demo_help_is_plain_text() -> None:
    result = _run("-m", "tweetdomains", "demo", "--help")
    assert result.returncode == 0, result.stderr
    assert "``" not in result.stdout and "the whole pipeline on embedded defaults" in result.stdout.lower()
