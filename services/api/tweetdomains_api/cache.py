"""Result cache: Redis when configured (shared by every replica), else an in-process LRU.

Keys hash the served model's run id with the *normalized* text: two spellings that normalize
alike share an entry, and a new model never serves an old model's answers. Values are the
probabilities as little-endian float32 bytes, in the model's label order.

Redis is an optimization, never a dependency: any error or timeout counts as a miss, opens a
circuit for ``retry_s`` seconds (so a dead Redis adds no latency to every request), and the
next call after that tries again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

from tweetdomains.text import normalize

log = logging.getLogger(__name__)


def cache_key(run_id: str, text: str) -> str:
    """``td:<sha256(run id, normalized text)>``."""
    digest = hashlib.sha256(f"{run_id}\0{normalize(text)}".encode()).hexdigest()
    return f"td:{digest}"


class Cache(Protocol):
    backend: str

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set_many(self, items: dict[str, bytes]) -> None: ...

    def status(self) -> str: ...

    async def close(self) -> None: ...


class LRUCache:
    """Bounded in-process cache (per replica)."""

    backend = "memory"

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self.errors = 0

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for key in keys:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            out.append(value)
        return out

    async def set_many(self, items: dict[str, bytes]) -> None:
        if self.max_entries == 0:
            return
        for key, value in items.items():
            self._data[key] = value
            self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def status(self) -> str:
        return "ok"

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Redis with short timeouts and a circuit breaker; one pipelined round trip per batch."""

    backend = "redis"

    def __init__(self, url: str, ttl_s: int, timeout_s: float, retry_s: float) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self._open_until = 0.0
        self.errors = 0

    def _available(self) -> bool:
        return time.monotonic() >= self._open_until

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self._available():
            log.warning("redis unavailable, serving uncached for %.1fs: %s", self.retry_s, exc)
        self._open_until = time.monotonic() + self.retry_s

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        if not self._available():
            raise CacheUnavailable("circuit open")
        try:
            values = await self.client.mget(list(keys))
        except Exception as exc:  # redis errors, timeouts, connection resets
            self._failed(exc)
            raise CacheUnavailable(str(exc)) from exc
        return [v if isinstance(v, bytes) else None for v in values]

    async def set_many(self, items: dict[str, bytes]) -> None:
        if not items or not self._available():
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=self.ttl_s)
                await pipe.execute()
        except Exception as exc:
            self._failed(exc)

    def status(self) -> str:
        return "ok" if self._available() else "degraded"

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection must not fail shutdown
            await self.client.aclose()


class CacheUnavailable(RuntimeError):
    """The cache could not answer; the request is served uncached."""


def make_cache(
    redis_url: str | None, ttl_s: int, max_entries: int, timeout_s: float, retry_s: float
) -> Cache:
    if redis_url:
        return RedisCache(redis_url, ttl_s, timeout_s, retry_s)
    return LRUCache(max_entries)
