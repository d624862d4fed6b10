"""Errors the library, the services and the launcher share, so none needs to import another."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


class UsageError(Exception):
    """A bad flag value or setting: the ``tweetdomains`` command prints it as one line, exit code 2."""


def settings_error(exc: Any, flags: Collection[str] = (), env_prefix: str = "TWEETDOMAINS_") -> UsageError:
    """A pydantic ``ValidationError`` of a settings class as one :class:`UsageError` in our words.

    A validator's own message (``ValueError("--source must be ...")``) is kept as it is, without
    pydantic's ``Value error,`` prefix; a type or range error names the flag (for the fields in
    ``flags``) and the environment variable, then what the value should be and what it was.
    """
    problems = [_problem(error, flags, env_prefix) for error in exc.errors()]
    return UsageError("; ".join(problems) or "invalid settings")


def _problem(error: dict[str, Any], flags: Collection[str], env_prefix: str) -> str:
    ctx = error.get("ctx") or {}
    if error.get("type") == "value_error" and "error" in ctx:
        return " ".join(str(ctx["error"]).split())
    field = str(error["loc"][0]) if error.get("loc") else ""
    variable = f"{env_prefix}{field.upper()}"
    name = (
        f"--{field.replace('_', '-')} ({variable})" if field in flags else variable if field else "a setting"
    )
    message = str(error.get("msg", "is not valid"))
    message = message[len("Input ") :] if message.startswith("Input ") else f"is not valid: {message}"
    given = error.get("input")
    shown = f", not {given!r}" if isinstance(given, str | int | float) and not isinstance(given, bool) else ""
    return f"{name} {message}{shown}"
