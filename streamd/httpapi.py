"""The read-only HTTP server: ``/healthz``, ``/metrics`` and ``/v1/cameras``.

Standard library ``ThreadingHTTPServer`` in its own thread: three GET routes do not
need a framework. There are no write endpoints, so there is nothing to authenticate;
it listens on loopback unless configured otherwise.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from streamd.config import split_listen
from streamd.log import get_logger

__all__ = ["StatusServer"]

_log = get_logger(stage="http")

Health = Callable[[], tuple[bool, dict[str, Any]]]
Status = Callable[[], dict[str, Any]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class StatusServer:
    """Serves health, metrics and status until stopped."""

    def __init__(self, listen: str, health: Health, status: Status, registry: CollectorRegistry) -> None:
        host, port = split_listen(listen)
        handler = _handler(health, status, registry)
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), handler)  # OSError when the address is taken
        self.address = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.25,), name="http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        _log.info("http listening", address=self.address, endpoints=["/healthz", "/metrics", "/v1/cameras"])

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


def _handler(health: Health, status: Status, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "streamd"
        sys_version = ""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/healthz":
                    ok, body = health()
                    self._json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
                elif path == "/metrics":
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._send(HTTPStatus.OK, encoder(registry), content_type)
                elif path in ("/v1/cameras", "/v1/cameras/"):
                    self._json(HTTPStatus.OK, status())
                else:
                    self._json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})
            except Exception as exc:  # a bug in a view must not take the server down
                _log.exception("http request failed", path=path)
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": repr(exc)})

        def do_POST(self) -> None:
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "read-only: GET only"})

        do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

        def _json(self, code: HTTPStatus, body: dict[str, Any]) -> None:
            self._send(code, orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n", "application/json")

        def _send(self, code: HTTPStatus, payload: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            _log.debug("http request", client=self.client_address[0], request=format % args)

    return Handler
