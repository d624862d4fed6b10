"""Loopback stand-ins for the network the collector meets, for tests of real clients.

``XStreamServer`` speaks the X API v2 streaming protocol (``GET /2/tweets/sample/stream``):
a chunked HTTP response of newline-delimited JSON messages with ``\\r\\n`` keep-alives. Each
connection follows the next :class:`Plan` (status, messages, how the connection ends), so a
test scripts disconnects, 429s, error payloads and bad tokens. ``TcpProxy`` forwards a port
to another and can be cut and restored, to take a real server (the S3 one) off the network
without losing its state.

With a :class:`Timeline` the server is a live stream instead: messages are published on the
server's clock at a fixed rate, a connection gets what is published while it is open, and
``backfill_minutes=N`` (1-5, as X's stream offers it) first re-sends what was published in
the last N minutes, duplicates included. The test drops connections, refuses reconnects for a
while, or jumps the server's clock ahead to stand for a long gap without waiting for it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

KEEP_ALIVE = None  # a message slot that sends a blank keep-alive line


@dataclass
class Plan:
    """What one connection gets.

    ``status`` other than 200 answers with ``body`` (JSON) and closes. With 200, ``messages``
    are sent in order (dicts as JSON lines, ``KEEP_ALIVE`` as ``\\r\\n``), ``delay`` seconds
    apart, then the connection ends by ``end``: ``"hold"`` (keep-alives until the client or
    the server goes), ``"drop"`` (the socket is cut mid-stream, no final chunk) or ``"close"``
    (a clean end of the response).
    """

    status: int = 200
    messages: list[Any] = field(default_factory=list)
    delay: float = 0.0
    end: str = "hold"
    body: dict[str, Any] | None = None


class Timeline:
    """Messages published at ``rate`` a second on the server's clock (wall time + ``offset``).

    Message *i* is published at ``start + i / rate`` and its ``created_at`` says so. After the
    last message, connections get keep-alives. :meth:`skip` jumps the clock ahead: what would
    have been published meanwhile is published at once (a gap a client can only backfill).
    ``refuse_backfill`` answers a backfill request with 400, as access levels without it do.
    """

    def __init__(
        self, messages: list[Any], rate: float, offset: float = 0.0, refuse_backfill: bool = False
    ) -> None:
        self.rate = rate
        self.offset = offset
        self.refuse_backfill = refuse_backfill
        self.start = time.time() + offset
        self.messages = [_stamped(m, self.start + i / rate) for i, m in enumerate(messages)]
        self.generation = 0  # bumped by drop(): open connections end
        self.refuse_until = 0.0  # wall time: reconnects answered 503 until then
        self.backfill_asked: list[int] = []
        self.sent_indexes: list[int] = []
        self.connect_indexes: list[int] = []  # the first live message of each connection

    def now(self) -> float:
        return time.time() + self.offset

    def published(self, at: float | None = None) -> int:
        """How many messages are published by server time ``at`` (default now)."""
        at = self.now() if at is None else at
        return max(0, min(len(self.messages), int((at - self.start) * self.rate) + 1))

    def skip(self, seconds: float) -> None:
        """Jump the server's clock ahead by ``seconds``."""
        self.offset += seconds

    def drop(self, refuse_for: float = 0.0) -> None:
        """End every open connection (no final chunk); answer 503 for ``refuse_for`` seconds."""
        self.refuse_until = time.time() + refuse_for
        self.generation += 1


def _stamped(message: Any, at: float) -> Any:
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        return message
    moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
    return {**message, "data": {**message["data"], "created_at": moment}}


class XStreamServer:
    """A threaded HTTP server on 127.0.0.1 that plays :class:`Plan` objects, one per connection.

    Once the plans run out, connections are held open with keep-alives. ``requests`` records
    each request's path, query and Authorization header and
    arrival time (monotonic); ``sent`` counts JSON messages written.
    """

    def __init__(
        self,
        plans: Iterable[Plan] = (),
        token: str | None = None,
        keep_alive_every: float = 0.1,
        timeline: Timeline | None = None,
    ):
        self.plans = list(plans)
        self.timeline = timeline
        self.token = token
        self.keep_alive_every = keep_alive_every
        self.requests: list[dict[str, Any]] = []
        self.sent = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parsed = urlparse(self.path)
                with server._lock:
                    server.requests.append(
                        {
                            "path": parsed.path,
                            "query": {k: v[0] for k, v in parse_qs(parsed.query).items()},
                            "authorization": self.headers.get("Authorization"),
                            "at": time.monotonic(),
                        }
                    )
                    live = server.timeline if not server.plans else None
                    plan = server.plans.pop(0) if server.plans else Plan()
                if parsed.path not in ("/2/tweets/sample/stream", "/2/tweets/search/stream"):
                    plan = Plan(status=404, body={"title": "Not Found Error"})
                elif (
                    server.token is not None and self.headers.get("Authorization") != f"Bearer {server.token}"
                ):
                    plan = Plan(
                        status=401, body={"title": "Unauthorized", "status": 401, "type": "about:blank"}
                    )
                query = parse_qs(parsed.query)
                if plan.status == 200 and live is not None:
                    plan = self._live_plan(live, query)
                if plan.status != 200:
                    self._error(plan)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if live is not None:
                    self._play_live(live, query)
                    return
                try:
                    for message in plan.messages:
                        if server._stopping.is_set():
                            return
                        if message is KEEP_ALIVE:
                            self._chunk(b"\r\n")
                        else:
                            line = message if isinstance(message, bytes) else json.dumps(message).encode()
                            self._chunk(line + b"\r\n")
                            with server._lock:
                                server.sent += 1
                        if plan.delay:
                            time.sleep(plan.delay)
                    if plan.end == "drop":
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    if plan.end == "close":
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    while not server._stopping.wait(server.keep_alive_every):
                        self._chunk(b"\r\n")
                except OSError:
                    pass  # the client went away
                self.close_connection = True

            def _live_plan(self, live: Timeline, query: dict[str, list[str]]) -> Plan:
                if time.time() < live.refuse_until:
                    return Plan(status=503, body={"title": "Service Unavailable", "status": 503})
                if "backfill_minutes" in query and live.refuse_backfill:
                    detail = "backfill_minutes is not available for your access level"
                    return Plan(
                        status=400, body={"title": "Invalid Request", "detail": detail, "status": 400}
                    )
                return Plan()

            def _play_live(self, live: Timeline, query: dict[str, list[str]]) -> None:
                generation = live.generation
                index = live.published()
                live.connect_indexes.append(index)
                if "backfill_minutes" in query:
                    minutes = max(1, min(5, int(query["backfill_minutes"][0])))
                    live.backfill_asked.append(minutes)
                    index = live.published(live.now() - minutes * 60)
                try:
                    while not server._stopping.is_set():
                        if live.generation != generation:
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        upto = live.published()
                        while index < upto:
                            line = json.dumps(live.messages[index]).encode()
                            self._chunk(line + b"\r\n")
                            live.sent_indexes.append(index)
                            with server._lock:
                                server.sent += 1
                            index += 1
                        self._chunk(b"\r\n")
                        time.sleep(0.05)
                except OSError:
                    pass
                finally:
                    self.close_connection = True

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _error(self, plan: Plan) -> None:
                body = json.dumps(
                    plan.body or {"title": f"HTTP {plan.status}", "status": plan.status}
                ).encode()
                self.send_response(plan.status)
                self.send_header("Content-Type", "application/problem+json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> XStreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def connections(self) -> int:
        """How many stream requests arrived so far."""
        return len(self.requests)


def stream_messages_from(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Sampled-stream messages built from saved API payloads: a stream message is passed
    through; a response (``{"data": [tweets], "includes": ...}``, one a line or one a file) is
    split into one message per tweet, carrying the tweets it references in ``includes``."""
    for path in paths:
        text = path.read_text(encoding="utf-8")
        try:
            documents = [json.loads(text)]
        except ValueError:
            documents = [json.loads(line) for line in text.splitlines() if line.strip()]
        for document in documents:
            yield from _split(document)


def _split(document: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(document, dict):
        return
    data = document.get("data")
    if isinstance(data, dict):
        message = {k: v for k, v in document.items() if k != "__twarc"}
        yield message
        return
    if not isinstance(data, list):
        if "errors" in document:
            yield {"errors": document["errors"]}
        return
    includes = document.get("includes") or {}
    by_id = {t["id"]: t for t in includes.get("tweets", []) if isinstance(t, dict) and "id" in t}
    for tweet in data:
        referenced = [by_id[r["id"]] for r in tweet.get("referenced_tweets", []) if r.get("id") in by_id]
        split: dict[str, Any] = {"data": tweet}
        if referenced:
            split["includes"] = {"tweets": referenced}
        yield split


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target_port``; :meth:`cut` refuses and breaks connections
    (as a network outage does) and :meth:`restore` brings the port back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.delay = 0.0  # seconds to hold each chunk sent upstream (a slow link)
        self.bytes_up = 0  # bytes forwarded upstream so far

    def restore(self) -> None:
        """Listen and forward again."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening (connections are refused) and break every open connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _close(listener)  # shutdown() wakes the thread blocked in accept(); close() alone does not
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool = False) -> None:
        try:
            src.settimeout(None)
            while data := src.recv(16384 if up and self.delay else 65536):
                if up:
                    if self.delay:
                        time.sleep(self.delay)
                    self.bytes_up += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
