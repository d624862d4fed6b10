"""Trainer settings: the shared ``TWEETDOMAINS_*`` ones (store, logging); flags override them."""

from __future__ import annotations

from functools import lru_cache

from tweetdomains.settings import CommonSettings


class Settings(CommonSettings):
    """The trainer needs nothing beyond the common settings today; its own go here."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Read the environment once per process (never at import time)."""
    return Settings()
