"""Command-line flags generated from an options dataclass (see :mod:`tweetdomains_trainer.options`).

Every flag's help says what it does, its default and, for a ``Literal`` field, the allowed
values. Flags default to None (switches too): only what the command line sets overrides a
recipe or the dataclass default, so the dataclass stays the one place defaults live.
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Container, Mapping
from dataclasses import Field, fields
from typing import Any, get_args, get_type_hints

from tweetdomains_trainer.options import choices_of, flag_name


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _shown(f: Field[Any], value: Any, preset: bool = False) -> str:
    if f.metadata.get("shown") and not preset:
        return str(f.metadata["shown"])
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def help_text(f: Field[Any], annotation: Any, defaults: Mapping[str, Any] | None = None) -> str:
    """``<what it does> (default: X; one of: a, b)`` without any markup; ``defaults`` replaces
    the dataclass default of the fields it names (a command that starts from a recipe)."""
    text = str(f.metadata["help"])
    allowed = choices_of(annotation)
    preset = defaults is not None and f.name in defaults
    value = defaults[f.name] if defaults is not None and preset else f.default
    default = f"default: {_shown(f, value, preset)}"
    if f.metadata.get("required"):
        default = "required"
    elif f.metadata.get("switch") == "off":
        default = f"default: {'on' if value else 'off'}; this flag turns it off"
    elif f.metadata.get("switch") == "on":
        default = "default: off"
    if allowed is not None:
        return f"{text} ({default}; one of: {', '.join(str(a) for a in allowed)})"
    return f"{text} ({default})"


def add_flags(
    parser: argparse.ArgumentParser,
    options_type: type,
    skip: Container[str] = (),
    groups: dict[str, argparse._ArgumentGroup] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """One flag per CLI field of ``options_type`` (those named in ``skip`` left out); the help
    names the values of ``defaults`` in place of the dataclass defaults of the fields it holds."""
    hints = get_type_hints(options_type)
    groups = {} if groups is None else groups
    for f in fields(options_type):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        group_name = str(f.metadata["group"])
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        target = groups[group_name]
        annotation = hints[f.name]
        name = flag_name(f.name, f.metadata)
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_text(f, annotation, defaults)}
        if annotation is bool:
            switch = f.metadata["switch"]
            if switch == "both":
                target.add_argument(name, action=argparse.BooleanOptionalAction, **kwargs)
            elif switch == "on":
                target.add_argument(name, action="store_const", const=True, **kwargs)
            else:
                flag = name if name.startswith("--no-") else "--no-" + name.removeprefix("--")
                target.add_argument(flag, action="store_const", const=False, **kwargs)
            continue
        allowed = choices_of(annotation)
        if allowed is not None:
            kwargs["choices"] = list(allowed)
        elif _is_list(annotation):
            kwargs.update(nargs="+")
        elif _base(annotation) is int:
            kwargs["type"] = positive_int if f.metadata.get("positive") else int
        elif _base(annotation) is float:
            kwargs["type"] = float
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        if f.metadata.get("required"):
            kwargs["required"] = True
        target.add_argument(name, *f.metadata.get("aliases", ()), **kwargs)


def values_from(args: argparse.Namespace, options_type: type) -> dict[str, Any]:
    """The ``options_type`` fields the command line set."""
    names = {f.name for f in fields(options_type)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def _base(annotation: Any) -> Any:
    """``X`` of ``X | None``; anything else as it is."""
    if isinstance(annotation, types.UnionType):
        return next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def _is_list(annotation: Any) -> bool:
    return getattr(_base(annotation), "__origin__", None) is list
