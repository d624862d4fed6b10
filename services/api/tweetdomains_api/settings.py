"""The API's settings: ``TWEETDOMAINS_*`` variables; ``tweetdomains serve`` flags override them."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from tweetdomains.model import Precision
from tweetdomains.settings import CommonSettings


class Settings(CommonSettings):
    """Everything the inference API reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="TWEETDOMAINS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Unset: an in-process LRU cache. Set: Redis, shared by every replica.
    redis_url: str | None = None
    # Set: every route but /healthz, /readyz and /metrics needs "Authorization: Bearer KEY".
    api_key: SecretStr | None = None
    run: str = "best"  # pin a run id instead of following models/best.json

    max_batch_size: int = Field(default=128, ge=1, le=4096)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    torch_threads: int = Field(default=0, ge=0)  # 0: the CPUs available, less one (at least 1)
    # "bfloat16": the recurrent products in bfloat16, faster on CPUs with AMX or AVX-512 BF16;
    # probabilities move by about 1e-3 from the exact "float32".
    precision: Precision = "float32"

    reload_interval_s: float = Field(default=5.0, gt=0)
    cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    cache_max_entries: int = Field(default=100_000, ge=0)
    redis_timeout_s: float = Field(default=0.1, gt=0)
    redis_retry_s: float = Field(default=2.0, gt=0)

    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_texts_per_batch: int = Field(default=256, ge=1)
    max_text_chars: int = Field(default=10_000, ge=1)
    graceful_shutdown_s: float = Field(default=30.0, ge=0)

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: object) -> object:
        # compose passes ${TWEETDOMAINS_API_KEY:-}: an empty variable means "no key".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _blank_url_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment, read once."""
    return Settings()
