"""The collector's settings: ``TWEETDOMAINS_*`` variables (plus ``X_BEARER_TOKEN`` and
``X_API_BASE_URL``); the ``collect`` command's flags override them."""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from tweetdomains.settings import CommonSettings

X_API_BASE_URL = "https://api.twitter.com"


class Settings(CommonSettings):
    """Everything ``tweetdomains collect`` reads from the environment.

    Batching follows the Firehose buffering hints: a batch is written when it holds
    ``batch_records`` records, ``batch_bytes`` bytes of JSONL (before compression), or is
    ``batch_seconds`` old, whichever comes first. The back-off delays follow X's guidance for
    streaming clients; they are settings so tests can shrink them.
    """

    model_config = SettingsConfigDict(env_prefix="TWEETDOMAINS_", extra="ignore", populate_by_name=True)

    source: str = "x-api"
    x_bearer_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("x_bearer_token", "X_BEARER_TOKEN")
    )
    x_api_base_url: str = Field(
        default=X_API_BASE_URL,
        validation_alias=AliasChoices("x_api_base_url", "X_API_BASE_URL", "TWEETDOMAINS_X_API_BASE_URL"),
    )

    limit: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)
    rate: float | None = Field(default=None, gt=0)

    batch_records: int = Field(default=100_000, ge=1)
    batch_bytes: int = Field(default=5_000_000, ge=1)
    batch_seconds: float = Field(default=300.0, gt=0)
    compress_level: int = Field(default=6, ge=1, le=9)

    languages: str = "en"
    require_annotations: bool = True
    dedupe_window: int = Field(default=200_000, ge=0)
    queue_size: int = Field(default=256, ge=1)

    # The journal (write-ahead log) lives under spool_dir; a failed upload leaves it there.
    spool_dir: str = "var/spool"
    journal: bool = True
    journal_sync_ms: int = Field(default=200, ge=1, le=60_000)
    journal_max_bytes: int = Field(default=1 << 30, ge=1)
    spool_retry_start: float = Field(default=1.0, gt=0)
    spool_retry_max: float = Field(default=60.0, gt=0)
    drain_seconds: float = Field(default=10.0, ge=0)

    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "0.0.0.0"
    status_seconds: float = Field(default=30.0, gt=0)

    network_backoff_step: float = Field(default=0.25, ge=0)
    network_backoff_max: float = Field(default=16.0, ge=0)
    http_backoff_start: float = Field(default=5.0, ge=0)
    http_backoff_max: float = Field(default=320.0, ge=0)
    rate_limit_backoff_start: float = Field(default=60.0, ge=0)
    stream_read_timeout: float = Field(default=21.0, gt=0)
    # Ask for backfill_minutes after a disconnect of at most 5 minutes (off where the access
    # level refuses it; a refusal is detected, logged once, and backfill is dropped).
    backfill: bool = True

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        value = value.strip()
        simulate = value == "simulate" or value.startswith("simulate:")
        if value != "x-api" and not value.startswith("replay:") and not simulate:
            raise ValueError(
                "--source (TWEETDOMAINS_SOURCE) must be x-api, replay:PATH[,PATH...] or "
                f"simulate[:SEED], not {value!r}"
            )
        return value

    @field_validator("x_bearer_token")
    @classmethod
    def _blank_token_is_none(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("x_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("X_API_BASE_URL must start with http:// or https://")
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: str) -> str:
        return ",".join(part.strip() for part in value.split(",") if part.strip())

    @model_validator(mode="after")
    def _backoff_order(self) -> Settings:
        if self.spool_retry_max < self.spool_retry_start:
            raise ValueError("TWEETDOMAINS_SPOOL_RETRY_MAX must be at least TWEETDOMAINS_SPOOL_RETRY_START")
        return self

    @property
    def language_list(self) -> tuple[str, ...]:
        """The kept languages; empty keeps every language."""
        return tuple(part for part in self.languages.split(",") if part)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The collector's settings from the environment, built once on first use."""
    return Settings()
