"""uvicorn's httptools protocol with what nginx has and uvicorn lacks: a bound on the request
line + headers (431) and a timeout for them (408), answered as JSON with a lingering close.
Each request's scope records when its headers were parsed, so that admission control sees how
long it waited for the app, and whether its connection is the only one that sent a request in
the last quarter second (a lone client: the batcher may run its pass at once, on the loop).

httptools buffers a header until it ends, so without a bound a 64 MB header is held in memory
and accepted; uvicorn has only a keep-alive timeout, so a client may trickle headers forever.
Parse errors are answered in the API's JSON error shape instead of ``text/plain``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tweetdomains_api.errors import error_body
from tweetdomains_api.middleware import ONLY_CONNECTION, RECEIVED_AT

REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}
LINGER_S = 2.0  # how long a refused connection's remaining bytes are read and discarded


class HeadersTooLarge(Exception):
    """Raised from a parser callback: httptools stops and uvicorn's handler sees a parse error
    (answered already, so :meth:`GuardedHttpToolsProtocol.send_400_response` adds nothing)."""


ACTIVE_WINDOW_S = 0.25  # a connection that sent a request this recently counts as active


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes = 64 * 1024
    header_timeout_s = 10.0
    # Connections by when each last sent a request, oldest first (shared by the server's
    # connections): a request on the only active one cannot be batched with anybody's.
    _active: ClassVar[OrderedDict[int, float]] = OrderedDict()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._head_bytes = 0  # request line and headers of the request being parsed
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def _expect_headers(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = 0
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering: read and discard what the client is still sending
        if self._awaiting_headers:
            if self._header_bytes == 0 and self._header_timer is None:
                self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and self._header_bytes > self.max_header_bytes and not self._refused:
            self._refuse(431, f"request line and headers larger than {self.max_header_bytes} bytes")

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_timer()
        now = time.perf_counter()
        self.scope[RECEIVED_AT] = now  # type: ignore[literal-required]
        self.scope[ONLY_CONNECTION] = self._note_active(now) == 1  # type: ignore[literal-required]
        head_bytes, self._head_bytes = self._head_bytes, 0
        if head_bytes > self.max_header_bytes:  # arrived whole, in one read
            self._refuse(431, f"request line and headers larger than {self.max_header_bytes} bytes")
            raise HeadersTooLarge()  # stops the parser; the app never sees the request
        super().on_headers_complete()

    def _note_active(self, now: float) -> int:
        """Record this connection's request; how many connections sent one lately."""
        active = self._active
        active[id(self)] = now
        active.move_to_end(id(self))
        while active and next(iter(active.values())) < now - ACTIVE_WINDOW_S:
            active.popitem(last=False)
        return len(active)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline:
            self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._active.pop(id(self), None)
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self._refused and not self.transport.is_closing():
            self._refuse(408, f"the request headers took longer than {self.header_timeout_s:g} s")

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            self._refuse(400, f"invalid HTTP request: {msg}")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer, half-close, keep discarding input for a moment, then close: a client still
        sending reads the answer instead of a connection reset."""
        self._refused = True
        self._cancel_timer()
        body = error_body(detail)
        head = b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status])
        head += b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(
            body
        )
        if self.transport.is_closing():
            return
        self.transport.write(head + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)


def guarded_protocol(max_header_bytes: int, header_timeout_s: float) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with these limits, for ``uvicorn.Config(http=...)``."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout_s": header_timeout_s},
    )
