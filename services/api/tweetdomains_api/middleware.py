"""Pure ASGI middleware: admission, request metrics, API-key check, body size limit and read timeout.

Pure ASGI (not ``BaseHTTPMiddleware``) so that streaming bodies are counted as they arrive and
no per-request task is spawned.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Match, Router

from tweetdomains_api.errors import error_body
from tweetdomains_api.metrics import ApiMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CLASSIFY_PATHS = frozenset({"/classify", "/classify/batch"})
# perf_counter() when the server parsed the request's headers (set by the HTTP protocol).
RECEIVED_AT = "tweetdomains.received_at"
# True when the request's connection is the only one that sent a request lately (set by the
# HTTP protocol; absent under other servers): nobody's request can share its forward pass.
ONLY_CONNECTION = "tweetdomains.only_connection"
SHED_DRAIN_BYTES = 1 << 20  # of a refused request's body read before answering
BROWSER_PATHS = frozenset({"/", "/docs", "/redoc"})  # answered with a Basic challenge


async def send_json(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    payload = error_body(detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def route_label(scope: Scope, router: Router) -> str:
    """The matched route's path template, ``other`` for none (bounded label values).

    The router records its match in the scope; a request refused before routing (401, 413)
    is matched here against the same routes.
    """
    route = scope.get("route")
    if route is None:
        for candidate in router.routes:
            match, child_scope = candidate.matches(scope)
            if match is not Match.NONE:
                route = child_scope.get("route", candidate)
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "other"


class MetricsMiddleware:
    """Counts requests by route and status, times them, and gauges those in flight."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, router: Router) -> None:
        self.app = app
        self.metrics = metrics
        self.router = router
        # The labelled series, looked up once each (``labels()`` costs a lock and a hash).
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._timers: dict[str, Any] = {}

    def _observe(self, route: str, method: str, status: str, seconds: float) -> None:
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = self._counters[route, method, status] = self.metrics.requests.labels(
                route, method, status
            )
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = self.metrics.latency.labels(route)
        counter.inc()
        timer.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.in_flight.dec()
            route = route_label(scope, self.router)
            self._observe(route, scope.get("method", ""), str(status), time.perf_counter() - started)


def _accepts_gzip(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"accept-encoding" and b"gzip" in value.lower():
            return True
    return False


class GzipWhenAsked(GZipMiddleware):
    """Starlette's gzip for requests that accept it; the others pass straight through with
    ``Vary: Accept-Encoding`` (Starlette wraps every response to decide that, a cost each
    small answer paid)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _accepts_gzip(scope):
            await super().__call__(scope, receive, send)
            return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"vary", b"Accept-Encoding")]
            await send(message)

        await self.app(scope, receive, send_with_vary)


def _presented_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            scheme, _, credentials = text.partition(" ")
            if scheme.lower() == "bearer":
                return credentials.strip()
            if scheme.lower() == "basic":  # browsers: the page and /docs prompt for it natively
                try:
                    _user, _, password = (
                        base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
                    )
                except (binascii.Error, UnicodeDecodeError):
                    return None
                return password
    return None


def _is_preflight(scope: Scope) -> bool:
    if scope.get("method") != "OPTIONS":
        return False
    names = {name for name, _ in scope.get("headers", [])}
    return b"origin" in names and b"access-control-request-method" in names


class ApiKeyMiddleware:
    """With a key set, every route but /healthz, /readyz and /metrics needs it.

    Accepted as ``Authorization: Bearer KEY``, or as the password of HTTP Basic auth, which a
    browser asks for by itself when it opens the page or /docs. CORS preflights pass without
    it: browsers never send credentials on a preflight (CORSMiddleware, outside, answers them).
    """

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self.api_key is None
            or scope.get("path") in PUBLIC_PATHS
            or scope.get("path", "").startswith("/static/")
            or _is_preflight(scope)
        ):
            await self.app(scope, receive, send)
            return
        key = _presented_key(scope)
        if key is not None and hmac.compare_digest(key.encode(), self.api_key):
            await self.app(scope, receive, send)
            return
        detail = "missing API key" if key is None else "wrong API key"
        challenge = b'Basic realm="tweetdomains"' if scope.get("path") in BROWSER_PATHS else b"Bearer"
        await send_json(
            send,
            401,
            f"{detail}: send 'Authorization: Bearer <key>'",
            [(b"www-authenticate", challenge)],
        )


class LoopLag:
    """How late the event loop runs: a timer that should fire every ``interval_s`` records by
    how much it was late. A loop busy past its capacity runs every callback late, and the
    sockets it has not read yet wait in the kernel, where no request can be timed."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.lag_s = 0.0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.lag_s = max(0.0, loop.time() - due)


class AdmissionMiddleware:
    """503 + ``Retry-After`` for a classify request, answered before any parsing or routing
    (the cheapest answer the app has: under overload most requests get it), when

    - the event loop runs more than ``max_lag_s`` late, or this request already waited that
      long between the server parsing its headers and the app seeing it: the loop is past its
      capacity, and whatever it admits now waits behind the backlog (the HTTP work, not the
      model, is the bottleneck there; the batcher's own bound never fills);
    - ``max_in_flight`` classify requests are being served already.

    Outermost but for CORS, so it counts the requests it refuses in ``requests_total`` itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_in_flight: int,
        metrics: ApiMetrics,
        max_lag_s: float = 0.5,
        lag: LoopLag | None = None,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.metrics = metrics
        self.max_lag_s = max_lag_s
        self.lag = lag or LoopLag()
        self.in_flight = 0

    def _refusal(self, scope: Scope) -> str | None:
        if self.in_flight >= self.max_in_flight:
            return f"the server is over capacity ({self.in_flight} requests in flight); retry shortly"
        late_s = self.lag.lag_s
        received_at = scope.get(RECEIVED_AT)
        if received_at is not None:
            late_s = max(late_s, time.perf_counter() - received_at)
        if late_s > self.max_lag_s:
            return f"the server is over capacity (running {1000 * late_s:.0f} ms late); retry shortly"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in CLASSIFY_PATHS or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            self.metrics.shed.labels("overload").inc()
            self.metrics.requests.labels(path, "POST", "503").inc()
            headers = [(b"retry-after", b"1")]
            drained, more = 0, True
            while more:  # the body first, so that the client reads the answer
                message = await receive()
                more = message["type"] == "http.request" and message.get("more_body", False)
                drained += len(message.get("body", b""))
                if more and drained > SHED_DRAIN_BYTES:  # no more of it: close afterwards
                    headers.append((b"connection", b"close"))
                    break
            await send_json(send, 503, refusal, headers)
            return
        self.in_flight += 1
        answered = False

        async def answering_send(message: Message) -> None:
            # Counted out before the last byte leaves: a client's next request on its
            # connection never finds its previous one still counted.
            nonlocal answered
            last = message["type"] == "http.response.body" and not message.get("more_body", False)
            if last and not answered:
                answered = True
                self.in_flight -= 1
            await send(message)

        try:
            await self.app(scope, receive, answering_send)
        finally:
            if not answered:
                self.in_flight -= 1


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once more than ``max_bytes`` arrived. An HTTP exception: FastAPI
    re-raises those from body parsing, so the client gets this 413, not a parsing error."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


class BodyTimeout(HTTPException):
    """Raised from ``receive`` when the next piece of the body is slower than the timeout."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(408, f"the request body stalled for over {timeout_s:g} s")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes`` (by Content-Length up front, or counted as chunks
    arrive), 408 for a body whose next piece takes longer than ``read_timeout_s``.

    Before a 413 the rest of the body is read and discarded, up to ``drain_bytes`` or
    ``drain_s`` (nginx's lingering close): a client still sending (Python's urllib, requests)
    then reads the 413 instead of a connection reset.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        read_timeout_s: float = 30.0,
        drain_bytes: int = 64 * 1024 * 1024,
        drain_s: float = 10.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s
        self.drain_bytes = drain_bytes
        self.drain_s = drain_s

    async def _drain(self, receive: Receive, more_body: bool) -> None:
        drained = 0
        stop_at = time.monotonic() + self.drain_s
        while more_body and drained < self.drain_bytes:
            remaining = stop_at - time.monotonic()
            if remaining <= 0:
                return
            try:
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                return
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            more_body = message.get("more_body", False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body larger than {self.max_bytes} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_json(send, 400, "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    if declared <= self.drain_bytes:
                        await self._drain(receive, True)
                    await send_json(send, 413, message, [(b"connection", b"close")])
                    return
        received = 0
        body_done = False
        more_body = True
        exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, body_done, more_body, exceeded
            if body_done:  # after the body: waiting for the disconnect, however long
                return await receive()
            try:
                async with asyncio.timeout(self.read_timeout_s):  # no task per read, as wait_for has
                    msg = await receive()
            except TimeoutError:
                raise BodyTimeout(self.read_timeout_s) from None
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                more_body = msg.get("more_body", False)
                body_done = not more_body
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge(self.max_bytes)
            return msg

        async def draining_send(msg: Message) -> None:
            if exceeded and msg["type"] == "http.response.start":
                await self._drain(receive, more_body)
                msg["headers"] = [*msg.get("headers", []), (b"connection", b"close")]
            await send(msg)

        await self.app(scope, counting_receive, draining_send)
