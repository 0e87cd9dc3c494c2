"""The routes: health, metrics, status, a camera's counts and snapshots, and the live view.

When a token is required (``http.auth``, see ``needs_token``), every route but
``/healthz`` asks for it: an ``Authorization: Bearer <token>`` header, a ``token`` query
parameter, or the ``streamd_token`` cookie that the pages set when opened with
``?token=`` (so that the pictures they load carry it).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Collection
from http import HTTPStatus
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from streamd.http.server import Alive, Request, Response, Write, json_response
from streamd.live.hub import BOUNDARY, LiveView, TooManyViewersError
from streamd.live.pages import camera_page, index_page

__all__ = ["Routes"]

Health = Callable[[], tuple[bool, dict[str, Any]]]
Status = Callable[[], dict[str, Any]]
Counts = Callable[[str], dict[str, Any] | None]  # a camera's totals and occupancy; None: no such camera
Snapshot = Callable[[str, str], Path | None]  # camera, file name -> the file, if there is one

_CAMERA_PATH = re.compile(r"/v1/cameras/(?P<camera>[A-Za-z0-9_.-]+)/(?P<rest>.+)")
_PAGE_PATH = re.compile(r"/cameras/(?P<camera>[A-Za-z0-9_.-]+)/?")
_COOKIE = "streamd_token"
# The pages load only from this server, cannot be framed by another site, and send no referrer.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; connect-src 'self';"
    " script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_OPEN = {"/healthz"}  # health checks of load balancers and container runtimes carry no token


class Routes:
    """Maps a request to its answer; every JSON body goes out redacted."""

    def __init__(
        self,
        health: Health,
        status: Status,
        registry: CollectorRegistry,
        *,
        counts: Counts | None = None,
        snapshot: Snapshot | None = None,
        live: LiveView | None = None,
        cameras: Callable[[], Collection[str]] = tuple,
        token: str | None = None,
    ) -> None:
        self._health = health
        self._status = status
        self._registry = registry
        self._counts = counts or (lambda _camera: None)
        self._snapshot = snapshot or (lambda _camera, _name: None)
        self._live = live
        self._known = cameras
        self._token = token.encode() if token else None
        self._exact: dict[str, Callable[[Request], Response]] = {
            "/healthz": self._healthz,
            "/metrics": self._metrics,
            "/v1/cameras": self._cameras,
            "/v1/cameras/": self._cameras,
            "/": self._index,
        }

    def __call__(self, request: Request) -> Response:
        if self._token is not None and request.path not in _OPEN:
            denied = self._check_token(request)
            if denied is not None:
                return denied
        route = self._exact.get(request.path)
        if route is not None:
            return route(request)
        match = _CAMERA_PATH.fullmatch(request.path)
        if match is not None:
            return self._camera_route(request.path, match.group("camera"), match.group("rest"))
        page = _PAGE_PATH.fullmatch(request.path)
        if page is not None:
            return self._camera_page(page.group("camera"))
        return not_found(request.path)

    def _camera_route(self, path: str, camera: str, rest: str) -> Response:
        if rest == "counts":
            return self._camera_counts(camera)
        if rest.startswith("snapshots/"):
            return self._snapshot_file(camera, rest.removeprefix("snapshots/"))
        if rest not in ("latest.jpg", "preview.mjpeg") or self._live is None:
            return not_found(path)
        if camera not in self._known():
            return json_response(HTTPStatus.NOT_FOUND, {"error": f"no camera {camera!r}"})
        return self._latest(camera) if rest == "latest.jpg" else self._stream(camera)

    # --- the token --------------------------------------------------------------------------

    def _check_token(self, request: Request) -> Response | None:
        """None when the request carries the token; else the answer that refuses it."""
        assert self._token is not None
        offered: list[str] = []
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            offered.append(header.removeprefix("Bearer ").strip())
        if "token" in request.query:
            offered.append(request.query["token"])
        cookie = SimpleCookie(request.headers.get("Cookie", ""))
        if _COOKIE in cookie:
            offered.append(unquote(cookie[_COOKIE].value))
        if not any(hmac.compare_digest(o.encode(), self._token) for o in offered):
            refused = "a token is required (Authorization: Bearer <token>, or ?token= to open the page)"
            return json_response(HTTPStatus.UNAUTHORIZED, {"error": refused})
        if "token" in request.query and (request.path == "/" or _PAGE_PATH.fullmatch(request.path)):
            # Opened with ?token=: keep it in a cookie for the pictures the page loads, and drop it
            # from the address (and so from the browser's history).
            rest = {k: v for k, v in request.query.items() if k != "token"}
            location = request.path + (f"?{urlencode(rest)}" if rest else "")
            value = quote(request.query["token"], safe="")
            return Response(HTTPStatus.SEE_OTHER, b"", "text/plain", headers={
                "Location": location,
                "Set-Cookie": f"{_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/",
            })  # fmt: skip
        return None

    # --- the live view ----------------------------------------------------------------------

    def _index(self, _request: Request) -> Response:
        return _html(index_page())

    def _camera_page(self, camera: str) -> Response:
        if camera not in self._known():
            return json_response(HTTPStatus.NOT_FOUND, {"error": f"no camera {camera!r}"})
        counts = self._counts(camera) or {}
        geometry = {
            "line": {n: line.get("points") for n, line in counts.get("lines", {}).items()},
            "zone": {n: zone.get("polygon") for n, zone in counts.get("zones", {}).items()},
        }
        return _html(camera_page(camera, geometry))

    def _latest(self, camera: str) -> Response:
        assert self._live is not None
        jpeg = self._live.latest(camera)
        if jpeg is None:
            return json_response(HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"no picture of {camera} yet"})
        return Response(HTTPStatus.OK, jpeg, "image/jpeg", headers={"Cache-Control": "no-store"})

    def _stream(self, camera: str) -> Response:
        live = self._live
        assert live is not None
        if live.stats.viewers >= live.config.max_viewers:
            live.stats.refused += 1
            return json_response(
                HTTPStatus.SERVICE_UNAVAILABLE, {"error": "too many viewers; try again later"}
            )

        def stream(write: Write, alive: Alive) -> None:
            try:
                live.stream(camera, write, alive)
            except TooManyViewersError:
                return  # lost the race for the last place: the stream just ends

        return Response(HTTPStatus.OK, content_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
                        stream=stream, write_timeout_s=live.config.stream_timeout_s)  # fmt: skip

    def _healthz(self, _request: Request) -> Response:
        ok, body = self._health()
        return json_response(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)

    def _metrics(self, request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(HTTPStatus.OK, encoder(self._registry), content_type)

    def _cameras(self, _request: Request) -> Response:
        return json_response(HTTPStatus.OK, self._status())

    def _camera_counts(self, camera: str) -> Response:
        counts = self._counts(camera)
        if counts is None:
            return json_response(HTTPStatus.NOT_FOUND, {"error": f"no camera {camera!r}"})
        return json_response(HTTPStatus.OK, {"camera": camera, **counts})

    def _snapshot_file(self, camera: str, name: str) -> Response:
        path = self._snapshot(camera, name)
        if path is None:
            return json_response(
                HTTPStatus.NOT_FOUND, {"error": "no such snapshot (deleted to keep under max_mb?)"}
            )
        try:
            data = path.read_bytes()
        except OSError:  # deleted between the look and the read
            return json_response(HTTPStatus.NOT_FOUND, {"error": "no such snapshot"})
        return Response(HTTPStatus.OK, data, "image/jpeg")


def not_found(path: str) -> Response:
    return json_response(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {path}"})


def _html(body: bytes) -> Response:
    return Response(HTTPStatus.OK, body, "text/html; charset=utf-8", headers=_PAGE_HEADERS)
