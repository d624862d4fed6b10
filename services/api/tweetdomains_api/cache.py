"""Result cache: Redis when configured (shared by every replica), else an in-process LRU.

With Redis, a small in-process LRU of the latest answers sits in front of it
(:class:`TieredCache`): a repeated text is answered without a round trip. An entry never goes
stale (its key names the model), so the two layers cannot disagree.

Keys hash the served model's run id with the *normalized* text: two spellings that normalize
alike share an entry, and a new model never serves an old model's answers. Values are opaque
bytes here; the API stores quantized probabilities (:mod:`tweetdomains_api.answers`, about
60 bytes an answer).

Redis is an optimization, never a dependency: an error or timeout counts as a miss; after
``failures_to_open`` failures in a row the circuit opens for ``retry_s`` seconds (so a dead
Redis adds no latency to every request), and the next call after that tries again. One slow
round trip in a load spike (the event loop late to read the answer) does not turn the cache
off. :meth:`RedisCache.probe` PINGs when no round trip happened lately: at start and from
``/readyz``, so readiness tells the cache's state before the first request and while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger(__name__)

PROBE_AFTER_S = 1.0  # /readyz PINGs Redis when no round trip happened for this long
HOT_ENTRIES = 4096  # answers kept in process in front of Redis (about 1.5 MB)
WRITE_DELAY_S = 0.02  # how long a write waits for a lookup's round trip to ride along


def cache_key(run_id: str, normalized: str, precision: str = "float32") -> str:
    """``td:<sha256(run id, normalized text)>`` of a text already through
    :func:`tweetdomains.text.normalize`; a bfloat16 replica's answers are kept apart
    (``run id@bfloat16``), so replicas of either precision can share one Redis."""
    model = run_id if precision == "float32" else f"{run_id}@{precision}"
    # surrogatepass: JSON can carry lone surrogates ("\\ud800"); they must hash, not raise.
    digest = hashlib.sha256(f"{model}\0{normalized}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"td:{digest}"


class Cache(Protocol):
    backend: str

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def set_many(self, items: dict[str, bytes]) -> None:
        """Store the items; never waits for a round trip (Redis writes go out from a task)."""

    def status(self) -> str: ...

    async def probe(self) -> str: ...

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

    async def probe(self) -> str:
        return "ok"

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Redis with short timeouts and a circuit breaker.

    Lookups and writes of concurrent requests are coalesced: while one ``MGET`` is in flight,
    the keys of the requests that arrive meanwhile gather into the next one, and writes go out
    together in one round trip. Under load that is one round trip for dozens of requests, and two
    connections whatever the concurrency (a pool per request would run out under bursts).

    Writes wait up to ``write_delay_s`` for the next lookup and go out in its round trip (their
    ``SET`` commands, then the ``MGET``); only when no lookup comes do they go alone. So a
    client sending uncached texts one after another costs one round trip a request, not two:
    each wakes Redis and this loop, which on a shared host wait for a CPU.
    """

    backend = "redis"

    def __init__(
        self,
        url: str,
        ttl_s: int,
        timeout_s: float,
        retry_s: float,
        failures_to_open: int = 3,
        write_delay_s: float = WRITE_DELAY_S,
    ) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.ttl_s = ttl_s
        self.retry_s = retry_s
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            # Connecting is rare (then the connection is reused): allow for a busy host.
            socket_connect_timeout=max(timeout_s, 0.5),
            retry_on_timeout=False,
        )
        self.failures_to_open = failures_to_open
        self.write_delay_s = write_delay_s
        self._failures = 0  # in a row
        self._open_until = 0.0
        self._healthy = True  # how the last round trip went
        self._last_round_trip = float("-inf")  # monotonic time it ended
        self.errors = 0
        self._pending_gets: list[tuple[list[str], asyncio.Future[list[bytes | None]]]] = []
        self._pending_sets: dict[str, bytes] = {}
        self._getter: asyncio.Task[None] | None = None
        self._setter: asyncio.Task[None] | None = None

    def _available(self) -> bool:
        return time.monotonic() >= self._open_until

    def _failed(self, exc: Exception) -> None:
        self._last_round_trip = time.monotonic()
        self.errors += 1
        self._failures += 1
        self._healthy = False
        if self._failures < self.failures_to_open:
            return
        if self._available():
            log.warning("redis unavailable, serving uncached for %.1fs: %s", self.retry_s, exc)
        self._open_until = time.monotonic() + self.retry_s

    def _succeeded(self) -> None:
        self._last_round_trip = time.monotonic()
        self._failures = 0
        self._healthy = True

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        if not self._available():
            raise CacheUnavailable("circuit open")
        future: asyncio.Future[list[bytes | None]] = asyncio.get_running_loop().create_future()
        self._pending_gets.append((list(keys), future))
        if self._getter is None or self._getter.done():
            self._getter = asyncio.create_task(self._flush_gets())
        return await future

    async def _flush_gets(self) -> None:
        while self._pending_gets:
            batch, self._pending_gets = self._pending_gets, []
            keys = [key for request_keys, _ in batch for key in request_keys]
            writes, self._pending_sets = self._pending_sets, {}
            try:
                if not self._available():
                    raise CacheUnavailable("circuit open")
                values = await self._round_trip(writes, keys)
                self._succeeded()
            except Exception as exc:  # redis errors, timeouts, connection resets
                if not isinstance(exc, CacheUnavailable):
                    self._failed(exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(CacheUnavailable(str(exc)))
                continue
            offset = 0
            for request_keys, future in batch:
                chunk = values[offset : offset + len(request_keys)]
                offset += len(request_keys)
                if not future.done():
                    future.set_result([v if isinstance(v, bytes) else None for v in chunk])

    async def _round_trip(self, writes: dict[str, bytes], keys: list[str]) -> list[object]:
        """A ``SET`` for each of ``writes``, then an ``MGET`` of ``keys`` (when any), in one round
        trip; returns the ``MGET``'s values.

        Sent on a pooled connection as one packed write, the replies read in order: what a
        redis-py pipeline does, without the pipeline object and its per-call machinery (167 ->
        103 us CPU for a write and a lookup, 96 -> 82 us for a lookup alone). No retry: a failed
        round trip is a miss, and the circuit breaker decides when to try again.
        """
        commands: list[tuple[str | bytes | int, ...]] = [
            ("SET", key, value, "EX", self.ttl_s) for key, value in writes.items()
        ]
        if keys:
            commands.append(("MGET", *keys))
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(connection.pack_commands(commands))
            replies = [await connection.read_response() for _ in commands]
        except BaseException:
            await connection.disconnect()  # replies may be left unread on it: never reuse it
            raise
        finally:
            await pool.release(connection)
        return list(replies[-1]) if keys else []

    async def set_many(self, items: dict[str, bytes]) -> None:
        if not items or not self._available():
            return
        self._pending_sets.update(items)
        if self._setter is None or self._setter.done():
            self._setter = asyncio.create_task(self._flush_sets())

    async def _flush_sets(self) -> None:
        await asyncio.sleep(self.write_delay_s)  # a lookup meanwhile takes the writes along
        while self._pending_sets and self._available():
            items, self._pending_sets = self._pending_sets, {}
            try:
                await self._round_trip(items, [])
                self._succeeded()
            except Exception as exc:
                self._failed(exc)
        self._pending_sets.clear()  # dropped while the circuit is open: a cache may forget

    def status(self) -> str:
        """``degraded`` from a failed round trip until one succeeds again."""
        return "ok" if self._healthy and self._available() else "degraded"

    async def probe(self) -> str:
        """:meth:`status`, after a PING when no round trip happened for ``PROBE_AFTER_S`` (and
        the circuit is closed): a Redis that is down, or back, is seen without traffic."""
        if self._available() and time.monotonic() - self._last_round_trip >= PROBE_AFTER_S:
            try:
                await self.client.ping()
                self._succeeded()
            except Exception as exc:  # redis errors, timeouts, refused connections
                self._failed(exc)
        return self.status()

    async def close(self) -> None:
        """Finish the pending writes (briefly), then close the connections."""
        # Closing a broken connection, or a write that cannot finish, must not fail shutdown.
        with contextlib.suppress(Exception):
            if self._setter is not None:
                await asyncio.wait_for(asyncio.shield(self._setter), 1.0)
        with contextlib.suppress(Exception):
            await self.client.aclose()


class TieredCache:
    """Redis behind an in-process LRU of the latest answers; Redis answers fill the LRU."""

    backend = "redis"

    def __init__(self, redis: RedisCache, hot_entries: int) -> None:
        self.redis = redis
        self.hot = LRUCache(hot_entries)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = await self.hot.get_many(keys)
        missing = [i for i, value in enumerate(values) if value is None]
        if missing:
            found = await self.redis.get_many([keys[i] for i in missing])
            for i, value in zip(missing, found, strict=True):
                values[i] = value
            await self.hot.set_many({keys[i]: v for i, v in zip(missing, found, strict=True) if v})
        return values

    async def set_many(self, items: dict[str, bytes]) -> None:
        await self.hot.set_many(items)
        await self.redis.set_many(items)

    def status(self) -> str:
        return self.redis.status()

    async def probe(self) -> str:
        return await self.redis.probe()

    async def close(self) -> None:
        await self.redis.close()
        await self.hot.close()


class CacheUnavailable(RuntimeError):
    """The cache could not answer; the request is served uncached."""


def make_cache(
    redis_url: str | None, ttl_s: int, max_entries: int, timeout_s: float, retry_s: float
) -> Cache:
    if redis_url:
        return TieredCache(RedisCache(redis_url, ttl_s, timeout_s, retry_s), min(max_entries, HOT_ENTRIES))
    return LRUCache(max_entries)
