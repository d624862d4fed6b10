"""Settings every service shares. Each service extends :class:`CommonSettings` with its own
and exposes one cached ``get_settings()``; nothing is read from the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = "var/store"


def data_dir() -> Path:
    """Where tests and benchmarks find the real tweets: ``TWEETDOMAINS_DATA_DIR``, else
    ``../shared/data`` beside the project's checkout. Read when called, never at import."""
    configured = os.environ.get("TWEETDOMAINS_DATA_DIR", "").strip()
    if configured:
        return Path(configured).resolve()
    return (Path(__file__).resolve().parents[3] / "shared" / "data").resolve()


class CommonSettings(BaseSettings):
    """``TWEETDOMAINS_*`` environment variables; command-line flags override them."""

    model_config = SettingsConfigDict(env_prefix="TWEETDOMAINS_", extra="ignore")

    store: str = DEFAULT_STORE
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object a line, for log shippers

    @field_validator("store")
    @classmethod
    def _store_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("TWEETDOMAINS_STORE must not be empty")
        return value.strip()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("TWEETDOMAINS_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return level

    @field_validator("log_format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value not in ("text", "json"):
            raise ValueError("TWEETDOMAINS_LOG_FORMAT must be text or json")
        return value
