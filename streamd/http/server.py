"""A small, hardened HTTP server (standard library) in front of streamd's routes.

- GET and HEAD only; every other method gets 405 with ``Allow: GET, HEAD``.
- A request must arrive whole within ``request_timeout_s`` (a client that trickles a
  byte every few seconds is cut off, not held forever); every read and write has a
  socket timeout too.
- At most ``max_connections`` at once: the next is answered 503 and closed at once,
  without a thread.
- A client that disconnects is not an error (one debug line); anything else a route
  raises is logged as JSON with the path, and answered 500.
- One request per connection (HTTP/1.0), so a connection's lifetime is bounded by
  its request and response (streams set their own limits).
- The accept loop is a supervised component.
"""

from __future__ import annotations

import io
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from streamd.config import split_listen
from streamd.log import get_logger
from streamd.redact import redact, redact_value
from streamd.supervise import Component

__all__ = ["HttpServer", "Request", "Response", "ServerStats", "json_response"]

_log = get_logger(stage="http")

# A client gone mid-response: nothing to fix, nothing to log above debug.
_DISCONNECTS = (ConnectionError, TimeoutError, socket.timeout, BrokenPipeError)


@dataclass(frozen=True)
class Request:
    """What a route sees of a request."""

    method: str  # GET or HEAD
    path: str
    query: dict[str, str]
    headers: Message
    client: str


Write = Callable[[bytes], None]
Alive = Callable[[], bool]


@dataclass
class Response:
    """A route's answer: a body, or a ``stream(write, alive)`` that writes chunks after the headers.

    ``alive()`` says whether the client is still connected (a stream that waits for data
    between writes asks it, so that a client gone abruptly is let go at once); each write
    of a stream must finish within ``write_timeout_s``.
    """

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Callable[[Write, Alive], None] | None = None
    write_timeout_s: float | None = None


def json_response(status: int, body: Any) -> Response:
    """A JSON body, redacted: no route can leak a password through what it returns."""
    return Response(status, orjson.dumps(redact_value(body), option=orjson.OPT_INDENT_2) + b"\n")


@dataclass
class ServerStats:
    requests: int = 0
    refused: int = 0  # over max_connections
    timeouts: int = 0  # requests not received in time
    errors: int = 0  # routes that raised
    open: int = 0  # connections now


class _DeadlineReader(io.RawIOBase):
    """Socket reads that must all finish before one deadline."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], cap: int) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(cap)
        self.stats = ServerStats()
        self.on_tick: Callable[[], None] = lambda: None

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.stats.refused += 1
            try:  # a short answer on the accept thread, which must never wait on a client
                request.settimeout(0.2)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")  # fmt: skip
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self.stats.open += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.stats.open -= 1
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.stats.open -= 1
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, _DISCONNECTS):
            _log.debug("http client went away", client=client_address[0], error=repr(exc))
            return
        self.stats.errors += 1
        _log.error("http connection failed", client=client_address[0], exc_info=True)

    def service_actions(self) -> None:
        self.on_tick()  # called by serve_forever at every poll: the accept loop's heartbeat


class _Server6(_Server):
    address_family = socket.AF_INET6


def _handler(
    app: Callable[[Request], Response], request_timeout_s: float, stats: ServerStats
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "streamd"
        sys_version = ""
        timeout = request_timeout_s  # each socket read and write

        def setup(self) -> None:
            super().setup()
            self.rfile = io.BufferedReader(_DeadlineReader(self.connection, request_timeout_s))

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except TimeoutError:
                stats.timeouts += 1
                self.close_connection = True

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # any other method, known or not
                return self._not_allowed
            raise AttributeError(name)

        def _not_allowed(self) -> None:
            body = orjson.dumps({"error": f"{self.command} is not allowed: read-only, GET and HEAD only"})
            self._write(
                Response(HTTPStatus.METHOD_NOT_ALLOWED, body, headers={"Allow": "GET, HEAD"}), head=False
            )

        def _serve(self, head: bool) -> None:
            stats.requests += 1
            self.connection.settimeout(request_timeout_s)
            parts = urlsplit(self.path)
            request = Request(
                method="HEAD" if head else "GET",
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                headers=self.headers,
                client=self.client_address[0],
            )
            try:
                response = app(request)
            except _DISCONNECTS:
                raise
            except Exception as exc:  # a bug in a route must not take the server down
                stats.errors += 1
                _log.exception("http request failed", path=request.path)
                response = json_response(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": redact(repr(exc))})
            self._write(response, head)

        def _write(self, response: Response, head: bool) -> None:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            if response.stream is None:
                self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.end_headers()
            if head:
                return
            if response.stream is not None:
                if response.write_timeout_s is not None:
                    self.connection.settimeout(response.write_timeout_s)
                response.stream(self._send_chunk, self._connected)
            else:
                self.wfile.write(response.body)

        def _send_chunk(self, data: bytes) -> None:
            self.wfile.write(data)
            self.wfile.flush()

        def _connected(self) -> bool:
            """False once the client closed or reset the connection (it sends nothing else: a GET is done)."""
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                return not readable or self.connection.recv(1, socket.MSG_PEEK) != b""
            except OSError:
                return False

        def log_message(self, format: str, *args: Any) -> None:
            _log.debug("http request", client=self.client_address[0], request=redact(format % args))

    return Handler


class HttpServer:
    """Serves ``app`` on ``listen`` in a supervised thread until stopped."""

    def __init__(
        self,
        listen: str,
        app: Callable[[Request], Response],
        *,
        max_connections: int = 32,
        request_timeout_s: float = 10.0,
    ) -> None:
        host, port = split_listen(listen)
        stats = ServerStats()
        handler = _handler(app, request_timeout_s, stats)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), handler, max_connections)  # OSError when taken
        self._server.stats = stats
        self.stats = stats
        self.address = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self._stop = threading.Event()
        self.component = Component("http", self._serve, self._stop)
        self._server.on_tick = self.component.beat

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self.component.start()
        _log.info("http listening", address=self.address)

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=0.25)

    def stop(self) -> None:
        self._stop.set()
        if self.component.alive:
            self._server.shutdown()
        self._server.server_close()

    def join(self, timeout: float) -> bool:
        return self.component.join(timeout)
