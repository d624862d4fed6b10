"""Pure ASGI middleware: request metrics, API-key check, body size limit.

Pure ASGI (not ``BaseHTTPMiddleware``) so that streaming bodies are counted as they arrive and
no per-request task is spawned.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException

from tweetdomains_api.metrics import ApiMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
KNOWN_ROUTES = frozenset(
    {
        "/",
        "/classify",
        "/classify/batch",
        "/healthz",
        "/readyz",
        "/metrics",
        "/labels",
        "/model",
        "/docs",
        "/openapi.json",
    }
)


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    payload = json.dumps(body).encode()
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


class MetricsMiddleware:
    """Counts requests by route and status and times them."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

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

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            path = scope.get("path", "")
            route = path if path in KNOWN_ROUTES else "other"  # bounded label values
            self.metrics.requests.labels(route, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


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


class ApiKeyMiddleware:
    """With a key set, every route but /healthz, /readyz and /metrics needs it.

    Accepted as ``Authorization: Bearer KEY``, or as the password of HTTP Basic auth, which a
    browser asks for by itself when it opens the page or /docs.
    """

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.api_key is None or scope.get("path") in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        key = _presented_key(scope)
        if key is not None and hmac.compare_digest(key.encode(), self.api_key):
            await self.app(scope, receive, send)
            return
        detail = "missing API key" if key is None else "wrong API key"
        challenge = b'Basic realm="tweetdomains"' if scope.get("path") in ("/", "/docs") else b"Bearer"
        await send_json(
            send,
            401,
            {"detail": f"{detail}: send 'Authorization: Bearer <key>'"},
            [(b"www-authenticate", challenge)],
        )


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: FastAPI re-raises HTTP exceptions from body parsing, so the
    client gets this 413 rather than a generic parsing error."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front, or counted as chunks arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
                    await send_json(send, 400, {"detail": "invalid Content-Length header"})
                    return
                if declared > self.max_bytes:
                    await send_json(send, 413, {"detail": message})
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await send_json(send, 413, {"detail": message})
