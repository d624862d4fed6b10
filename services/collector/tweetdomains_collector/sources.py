"""Where tweets come from: the X API sampled stream, a replay of files, or the synthetic stream.

A source runs in its own thread and hands lists of records to ``emit``; ``emit`` returns False
once the collector is stopping, and the source then returns. Sources count what they parse in
``stats.parse`` and what they hand over in ``stats.received``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import Any

from tweetdomains.codecs import iter_paths, iter_records, parse_payload
from tweetdomains.records import Record
from tweetdomains_collector.settings import Settings
from tweetdomains_collector.stats import CollectorStats

log = logging.getLogger("tweetdomains.collector")

Emit = Callable[[list[Record]], bool]

TWEET_FIELDS = ["lang", "created_at", "context_annotations", "referenced_tweets"]
EXPANSIONS = ["referenced_tweets.id"]
CHUNK = 256
BACKFILL_MAX_SECONDS = 300  # X re-sends at most the last 5 minutes


class CollectorError(Exception):
    """A condition that ends the collector with a one-line error and ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Source:
    """Base class: ``run(emit)`` in a thread until the input ends or ``stop()`` is called."""

    name = "source"

    def __init__(self, stats: CollectorStats) -> None:
        self.stats = stats
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self, emit: Emit) -> None:
        """Produce records until the end of the input or a stop."""
        raise NotImplementedError

    def stop(self) -> None:
        """Ask the source to return soon."""
        self.stopping.set()


class IterableSource(Source):
    """Records from an iterator, in chunks, optionally paced to ``rate`` records a second."""

    def __init__(
        self, name: str, records: Iterable[Record], stats: CollectorStats, rate: float | None = None
    ):
        super().__init__(stats)
        self.name = name
        self.records = records
        self.rate = rate

    def run(self, emit: Emit) -> None:
        iterator = iter(self.records)
        chunk_size = CHUNK if self.rate is None else max(1, min(CHUNK, int(self.rate / 20)))
        started = time.monotonic()
        sent = 0
        while not self.stopping.is_set():
            chunk = list(islice(iterator, chunk_size))
            if not chunk:
                return
            if self.rate is not None:
                wait = started + sent / self.rate - time.monotonic()
                if wait > 0 and self.stopping.wait(wait):
                    return
            if not emit(chunk):
                return
            self.stats.received += len(chunk)
            sent += len(chunk)


def _replay_records(patterns: list[str], stats: CollectorStats) -> Iterator[Record]:
    for path in iter_paths(patterns):
        log.info("replaying file", extra={"path": str(path)})
        yield from iter_records(path, stats.parse)


def replay_source(spec: str, stats: CollectorStats, rate: float | None = None) -> IterableSource:
    """``replay:PATH[,PATH...]``: every format the codecs read, globs and ``.gz`` included.

    Raises FileNotFoundError at once for a pattern that matches nothing.
    """
    patterns = [part.strip() for part in spec.split(",") if part.strip()]
    if not patterns:
        raise CollectorError("replay: needs at least one path, e.g. replay:data/*.jsonl.gz", exit_code=2)
    list(iter_paths(patterns))  # fail fast, before any thread starts
    return IterableSource("replay", _replay_records(patterns, stats), stats, rate)


def simulate_source(seed_text: str, stats: CollectorStats, rate: float | None = None) -> IterableSource:
    """``simulate[:SEED]``: the endless synthetic stream of :mod:`tweetdomains.simulate`."""
    from tweetdomains.simulate import SyntheticTweets

    try:
        seed = int(seed_text) if seed_text else 0
    except ValueError:
        raise CollectorError(f"simulate seed must be an integer, got {seed_text!r}", exit_code=2) from None
    return IterableSource("simulate", SyntheticTweets(seed).records(), stats, rate)


class Backoff:
    """X's reconnection guidance: network errors back off linearly (``step`` more each time,
    up to ``network_max``); HTTP errors exponentially from ``http_start`` up to ``http_max``;
    429 exponentially from ``rate_limit_start``. A successful connection resets all three."""

    def __init__(self, settings: Settings) -> None:
        self.step = settings.network_backoff_step
        self.network_max = settings.network_backoff_max
        self.http_start = settings.http_backoff_start
        self.http_max = settings.http_backoff_max
        self.rate_limit_start = settings.rate_limit_backoff_start
        self.reset()

    def reset(self) -> None:
        """Forget past failures (after a successful connection)."""
        self._network_wait = 0.0
        self._http_wait = 0.0

    def network(self) -> float:
        """The wait before reconnecting after a network error or a dropped stream."""
        self._network_wait = min(self._network_wait + self.step, self.network_max)
        return self._network_wait

    def http(self, status: int) -> float:
        """The wait before reconnecting after an HTTP error ``status``."""
        start = self.rate_limit_start if status in (420, 429) else self.http_start
        if self._http_wait < start:
            self._http_wait = start
        else:
            self._http_wait = min(self._http_wait * 2, max(self.http_max, start))
        return self._http_wait


def _stream_class() -> type:
    """The tweepy subclass, built on first use so this module imports without tweepy."""
    import tweepy
    from tweepy.streaming import BaseStream

    class SampledStream(tweepy.StreamingClient):
        """tweepy's StreamingClient, one connection per :meth:`sample` call.

        tweepy's own reconnect loop has fixed delays and retries network errors forever; the
        collector drives reconnection itself (:class:`XApiSource`), so every disconnect ends
        tweepy's loop here and is reported in ``outcome``. The host is a setting, so tests
        (and proxies) can point the client at another server.
        """

        def __init__(self, token: str, base_url: str, read_timeout: float, on_payload: Callable[[Any], bool]):
            super().__init__(token, return_type=dict, max_retries=0, chunk_size=1024)
            self.base_url = base_url
            self.read_timeout = read_timeout
            self.on_payload = on_payload
            self.outcome: tuple[str, int | None, str] = ("", None, "")
            self.connected_once = False

        def _connect(self, method: str, endpoint: str, **kwargs: Any) -> None:
            self.session.headers["Authorization"] = f"Bearer {self.bearer_token}"
            url = f"{self.base_url}/2/tweets/{endpoint}/stream"
            BaseStream._connect(self, method, url, timeout=self.read_timeout, **kwargs)

        def on_connect(self) -> None:
            self.connected_once = True
            self.outcome = ("", None, "")
            if not self.on_payload(_CONNECTED):
                self.disconnect()

        def on_data(self, raw_data: bytes) -> None:
            try:
                payload = json.loads(raw_data)
            except ValueError:
                payload = _BAD_JSON
            if not self.on_payload(payload):
                self.disconnect()

        def on_keep_alive(self) -> None:
            pass

        def on_request_error(self, status_code: int) -> None:
            self.outcome = ("http", status_code, f"HTTP {status_code}")
            self.disconnect()

        def on_connection_error(self) -> None:
            self.outcome = ("network", None, "connection error or read timeout")
            self.disconnect()

        def on_closed(self, response: Any) -> None:
            self.outcome = ("network", None, "stream closed by the server")
            self.disconnect()

        def on_exception(self, exception: Exception) -> None:
            self.outcome = ("network", None, f"{type(exception).__name__}: {exception}")
            self.disconnect()

        def on_disconnect(self) -> None:
            pass

    return SampledStream


_CONNECTED = object()
_BAD_JSON = object()


class XApiSource(Source):
    """The X API v2 sampled stream through tweepy, with reconnection per X's guidance."""

    name = "x-api"

    def __init__(self, settings: Settings, stats: CollectorStats) -> None:
        super().__init__(stats)
        if settings.x_bearer_token is None:
            raise CollectorError(
                "X_BEARER_TOKEN is not set: the x-api source needs a bearer token", exit_code=2
            )
        self.settings = settings
        self.backoff = Backoff(settings)
        self._emit: Emit | None = None
        self._disconnected_at: float | None = None
        self.backfill = settings.backfill
        self._last_data_at: float | None = None  # monotonic, the last tweet received
        self._newest_created: float | None = None  # epoch, the newest created_at received
        self._asked_backfill = 0
        self.stream = _stream_class()(
            settings.x_bearer_token.get_secret_value(),
            settings.x_api_base_url,
            settings.stream_read_timeout,
            self._on_payload,
        )

    def _on_payload(self, payload: Any) -> bool:
        if payload is _CONNECTED:
            self.stats.connected = True
            if self._disconnected_at is not None:
                down = time.monotonic() - self._disconnected_at
                self.stats.seconds_disconnected += down
                self._disconnected_at = None
                log.info("stream reconnected", extra={"disconnected_s": round(down, 3)})
            else:
                log.info("stream connected", extra={"url": self.settings.x_api_base_url})
            return not self.stopping.is_set()
        if payload is _BAD_JSON:
            self.stats.parse.lines += 1
            self.stats.parse.bad("bad_json")
            return not self.stopping.is_set()
        self.stats.parse.lines += 1
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if errors:
            count = len(errors) if isinstance(errors, list) else 1
            self.stats.api_errors += count
            log.warning("error payload in the stream", extra={"errors": json.dumps(errors)[:500]})
        records = parse_payload(payload, self.stats.parse)
        if not records:
            return not self.stopping.is_set()
        self._note_received(records)
        self.stats.received += len(records)
        assert self._emit is not None
        if not self._emit(records):
            # Read off the socket after the collector closed its queue: counted, not kept.
            for _ in records:
                self.stats.drop("shutdown")
            return False
        return not self.stopping.is_set()

    def stop(self) -> None:
        super().stop()
        self.stream.disconnect()

    def _note_received(self, records: list[Record]) -> None:
        self._last_data_at = time.monotonic()
        for record in records:
            created = _epoch(record.created_at)
            if created is not None and (self._newest_created is None or created > self._newest_created):
                self._newest_created = created

    def backfill_minutes(self) -> int | None:
        """The ``backfill_minutes`` that covers the gap since the last tweet received: measured
        by the local clock and by the stream's own (the newest ``created_at``), whichever is
        longer, plus a few seconds; None when off, at the first connection, or past 5 minutes."""
        if not self.backfill or self._last_data_at is None:
            return None
        gap = time.monotonic() - self._last_data_at
        if self._newest_created is not None:
            gap = max(gap, time.time() - self._newest_created)
        gap += 5.0
        if gap > BACKFILL_MAX_SECONDS + 5.0:
            log.warning(
                "disconnected longer than backfill can cover: tweets of the gap are missed",
                extra={"gap_s": round(gap, 1)},
            )
            return None
        return max(1, min(5, math.ceil(gap / 60)))

    def _refused_backfill(self, status: int | None) -> bool:
        """Whether an HTTP error answers a request that asked for backfill (then turn it off)."""
        if not self._asked_backfill or status not in (400, 403):
            return False
        self.backfill = False
        self.stats.backfill_refused = True
        log.warning(
            "the stream refused backfill_minutes (access level?): reconnecting without it from now on",
            extra={"status": status, "backfill_minutes": self._asked_backfill},
        )
        return True

    def run(self, emit: Emit) -> None:
        self._emit = emit
        while not self.stopping.is_set():
            self.stream.connected_once = False
            minutes = self.backfill_minutes()
            self._asked_backfill = minutes or 0
            params: dict[str, Any] = {"tweet_fields": TWEET_FIELDS, "expansions": EXPANSIONS}
            if minutes:
                params["backfill_minutes"] = minutes
                self.stats.backfill_requests += 1
                log.info("reconnecting with backfill", extra={"backfill_minutes": minutes})
            self.stream.sample(**params)
            if self.stream.connected_once:
                self.backoff.reset()
            if self.stopping.is_set():
                break
            kind, status, reason = self.stream.outcome
            if self.stats.connected:
                self.stats.connected = False
                self.stats.disconnects += 1
            if self._disconnected_at is None:
                self._disconnected_at = time.monotonic()
            if kind == "http" and self._refused_backfill(status):
                continue
            if status in (401, 403):
                raise CollectorError(
                    f"the X API refused the bearer token (HTTP {status}): check X_BEARER_TOKEN", exit_code=3
                )
            wait = self.backoff.http(status) if kind == "http" and status else self.backoff.network()
            log.warning(
                "stream disconnected; reconnecting",
                extra={"reason": reason or "unknown", "retry_in_s": round(wait, 3)},
            )
            if self.stopping.wait(wait):
                break
        if self._disconnected_at is not None:
            self.stats.seconds_disconnected += time.monotonic() - self._disconnected_at
            self._disconnected_at = None
        self.stats.connected = False


def _epoch(created_at: str | None) -> float | None:
    if not created_at:
        return None
    try:
        return datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def build_source(settings: Settings, stats: CollectorStats) -> Source:
    """The source that ``settings.source`` names."""
    spec = settings.source
    if spec == "x-api":
        return XApiSource(settings, stats)
    if spec.startswith("replay:"):
        return replay_source(spec[len("replay:") :], stats, settings.rate)
    if spec == "simulate" or spec.startswith("simulate:"):
        return simulate_source(spec[len("simulate:") :], stats, settings.rate)
    raise CollectorError(f"unknown source {spec!r}: use x-api, replay:PATH or simulate[:SEED]", exit_code=2)
