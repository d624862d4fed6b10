"""Errors the library, the services and the launcher share, so none needs to import another."""

from __future__ import annotations


class UsageError(Exception):
    """A bad flag value or setting: the ``tweetdomains`` command prints it as one line, exit code 2."""
