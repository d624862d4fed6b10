"""The API's settings: ``TWEETDOMAINS_*`` variables; ``tweetdomains serve`` flags override them."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from tweetdomains.model import Precision
from tweetdomains.settings import CommonSettings
from tweetdomains_api.schemas import MAX_TEXT_CHARS, MAX_TEXTS_PER_BATCH


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
    # How long a batch may wait for requests already on their way (a lone one never waits).
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)
    # Admission control, by expected wait: a request is refused (503 + Retry-After) when the
    # texts queued ahead of it would take over queue_target_s to compute, judged from recent
    # passes. max_queued_texts > 0 pins the bound in texts instead.
    max_queued_texts: int = Field(default=0, ge=0)
    queue_target_s: float = Field(default=0.5, gt=0, le=60)
    # Classify requests served at once; past it 503 + Retry-After before the body is parsed.
    # Fixed on purpose; the bound sized from measured throughput is the queue's (queue_target_s
    # of the model's measured seconds per text, above). This one caps HTTP concurrency, and by
    # Little's law admitted requests wait about max_in_flight / throughput: sized as ~1 s of
    # throughput (1,600 requests at the benchmark's 1,600/s) it would let them wait that second
    # by construction, and every request past what keeps the passes full only waits longer.
    # At 2x capacity offered (2 shared cores), 64 gave admitted p99 732 / 375 ms against
    # 1598 / 576 ms at 128, shedding the same share.
    max_in_flight: int = Field(default=64, ge=1)
    # The event loop (or a request waiting for it) this late: 503 + Retry-After before parsing.
    max_loop_lag_ms: float = Field(default=500.0, gt=0, le=60_000)
    # A request still queued after this long is answered 503 + Retry-After, never computed.
    request_deadline_s: float = Field(default=5.0, gt=0, le=600)
    torch_threads: int = Field(default=0, ge=0)  # 0: the CPUs available, less one (at least 1)
    # "bfloat16": the recurrent products in bfloat16, faster on CPUs with AMX or AVX-512 BF16;
    # probabilities move by about 1e-3 from the exact "float32".
    precision: Precision = "float32"

    reload_interval_s: float = Field(default=5.0, gt=0)
    cache_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    # In-process answers: the whole cache without Redis; with it, up to 4096 of them in front.
    cache_max_entries: int = Field(default=100_000, ge=0)
    # 0.1 s tripped under load (the loop late to read a fast answer); the breaker opens after
    # 3 failures in a row, so a dead Redis still costs little.
    redis_timeout_s: float = Field(default=0.5, gt=0)
    redis_retry_s: float = Field(default=2.0, gt=0)

    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    max_texts_per_batch: int = Field(default=MAX_TEXTS_PER_BATCH, ge=1, le=MAX_TEXTS_PER_BATCH)
    # Longer texts get 422; shorter ones are truncated to the model's token window.
    max_text_chars: int = Field(default=MAX_TEXT_CHARS, ge=1, le=MAX_TEXT_CHARS)
    max_header_bytes: int = Field(default=64 * 1024, ge=4096)  # request line + headers; past it 431
    header_timeout_s: float = Field(default=10.0, gt=0)  # headers slower than this: 408
    body_timeout_s: float = Field(default=30.0, gt=0)  # a body stalled this long between pieces: 408
    gzip_min_bytes: int = Field(default=4096, ge=0)  # responses this large are gzipped on request
    # Origins allowed to call the API from a browser (comma-separated); unset: none.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    drift_window: int = Field(default=10_000, ge=1)  # texts whose predicted domains /metrics shows
    graceful_shutdown_s: float = Field(default=30.0, ge=0)

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: object) -> object:
        # compose passes ${TWEETDOMAINS_API_KEY:-}: an empty variable means "no key".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("redis_url", mode="before")
    @classmethod
    def _blank_url_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment, read once."""
    return Settings()
