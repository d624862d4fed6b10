"""The trainer's command line: the flags users know stay as they were, and every one is explained.

``fixtures/cli_flags.json`` was captured from the code before the trainer's redesign (flags of
every ``tweetdomains`` subcommand, and the options each trainer command line runs with). The
redesign generates the flags from the options dataclasses; these tests hold it to the old
surface: the same flags, choices and arity, and the same effective options for the same argv.
A deliberate change to the command line updates the fixture in the same commit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from tweetdomains_cli.main import build_parser
from tweetdomains_trainer.cli import option_overrides
from tweetdomains_trainer.flags import values_from
from tweetdomains_trainer.options import EvaluateOptions, RecipeName, TrainOptions
from tweetdomains_trainer.pretrain_options import PretrainOptions
from tweetdomains_trainer.recipes import DEFAULT_RECIPE, RECIPES

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "cli_flags.json").read_text(encoding="utf-8"))
TRAINER_COMMANDS = ("train", "evaluate", "sweep", "pretrain", "teacher", "teacher-score")
MARKUP = ("``", "`", "**", ":class:", ":func:")


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _flags(parser: argparse.ArgumentParser) -> dict[str, dict[str, Any]]:
    """Per flag: what a user can see and type (``dest`` and the parse-time default are internal)."""
    flags = {}
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
            continue
        flags[" ".join(sorted(a.option_strings)) or a.dest] = {
            "choices": sorted(a.choices) if a.choices is not None else None,
            "nargs": a.nargs,
            "required": a.required,
            "takes_value": a.nargs != 0,
        }
    return flags


def _structure(flags: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keep = ("choices", "nargs", "required", "takes_value")
    return {name: {k: spec[k] for k in keep} for name, spec in flags.items()}


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def test_every_subcommand_keeps_its_flags(parser: argparse.ArgumentParser) -> None:
    commands = _subparsers(parser).choices
    assert sorted(commands) == sorted(FIXTURE["commands"])
    for name, old in FIXTURE["commands"].items():
        assert _flags(commands[name]) == _structure(old["flags"]), name


def _effective(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, Any]:
    args = parser.parse_args(argv)
    if argv[0] == "train":
        return TrainOptions(**{**option_overrides(args), "store": "STORE"}).to_dict()
    if argv[0] == "pretrain":
        return PretrainOptions(**{**values_from(args, PretrainOptions), "store": "STORE"}).to_dict()
    if argv[0] == "sweep":
        overrides = option_overrides(args)
        overrides.pop("store", None)
        return {"overrides": overrides, "grid": args.grid, "max_rows": args.max_rows}
    options = EvaluateOptions(**{**values_from(args, EvaluateOptions), "store": "STORE"})
    return {k: getattr(options, k) for k in ("run", "data", "label_field", "write_report")}


@pytest.mark.parametrize("command_line", sorted(FIXTURE["effective"]))
def test_the_same_command_line_runs_with_the_same_options(
    parser: argparse.ArgumentParser, command_line: str
) -> None:
    assert _effective(parser, command_line.split()) == FIXTURE["effective"][command_line]


@pytest.mark.parametrize("command", TRAINER_COMMANDS)
def test_every_trainer_flag_says_what_it_does_its_default_and_its_choices(
    parser: argparse.ArgumentParser, command: str
) -> None:
    sub = _subparsers(parser)
    command_parser = sub.choices[command]
    summary = next(a.help for a in sub._choices_actions if a.dest == command)
    assert summary and "\n" not in summary, f"{command} has no one-line description"
    assert command_parser.description, f"{command} has no description"
    for text in (summary, command_parser.description):
        assert not any(mark in text for mark in MARKUP), text
    for action in command_parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings)
        assert action.help and action.help.strip(), f"{command} {name} has no help"
        assert "default" in action.help or action.required, f"{command} {name}: no default in {action.help!r}"
        assert not any(mark in action.help for mark in MARKUP), f"{command} {name}: markup in {action.help!r}"
        for choice in action.choices or ():
            assert str(choice) in action.help, f"{command} {name}: {choice!r} not in {action.help!r}"
    command_parser.format_help()  # renders (no bad % format in a help text)


def test_a_flag_help_names_the_default_the_command_runs_with(parser: argparse.ArgumentParser) -> None:
    """A sweep starts from the dataclass defaults; train from its default recipe, which its
    help names instead."""
    commands = _subparsers(parser).choices

    def help_of(command: str, flag: str) -> str:
        return str(next(a.help for a in commands[command]._actions if flag in a.option_strings))

    assert f"default: {TrainOptions.hidden_dim}" in help_of("sweep", "--hidden-dim")
    assert f"default: {RECIPES[DEFAULT_RECIPE]['hidden_dim']}" in help_of("train", "--hidden-dim")
    assert f"default: {DEFAULT_RECIPE}" in help_of("train", "--recipe")
    assert "default: wordpiece" in help_of("train", "--vocab") and "default: word;" in help_of(
        "sweep", "--vocab"
    )
    assert "one of: lstm, rnn" in help_of("train", "--model")


def test_recipe_names_are_the_recipes() -> None:
    from typing import get_args

    assert set(get_args(RecipeName)) == set(RECIPES)


def test_trainer_modules_import_only_down_their_documented_order() -> None:
    """The package docstring lists every module, dependencies first: no module imports one
    listed after it, so there is no import cycle (the old train <-> pretrain one included)."""
    import ast
    import re

    import tweetdomains_trainer

    order = re.findall(r"^\| ``(\w+)`` \|", str(tweetdomains_trainer.__doc__), re.M)
    package = Path(tweetdomains_trainer.__file__).parent
    modules = {p.stem: p for p in package.glob("*.py") if p.stem != "__init__"}
    assert sorted(order) == sorted(modules), "the docstring's table names every module once"
    rank = {name: i for i, name in enumerate(order)}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tweetdomains_trainer"):
                module = str(node.module)
                targets = [module.split(".")[1]] if "." in module else [a.name for a in node.names]
                for target in targets:
                    assert rank[target] < rank[name], f"{name} imports {target}, listed after it"


def test_no_trainer_module_passes_450_lines() -> None:
    import tweetdomains_trainer

    for path in Path(tweetdomains_trainer.__file__).parent.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 450, path.name
