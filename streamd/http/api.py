"""The routes: ``/healthz``, ``/metrics``, ``/v1/cameras``, a camera's counts and its event snapshots."""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from streamd.http.server import Request, Response, json_response

__all__ = ["Routes"]

Health = Callable[[], tuple[bool, dict[str, Any]]]
Status = Callable[[], dict[str, Any]]
Counts = Callable[[str], dict[str, Any] | None]  # a camera's totals and occupancy; None: no such camera
Snapshot = Callable[[str, str], Path | None]  # camera, file name -> the file, if there is one

_CAMERA_PATH = re.compile(r"/v1/cameras/(?P<camera>[A-Za-z0-9_.-]+)/(?P<rest>.+)")


class Routes:
    """Maps a request to its answer; every JSON body goes out redacted."""

    def __init__(
        self,
        health: Health,
        status: Status,
        registry: CollectorRegistry,
        counts: Counts | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        self._health = health
        self._status = status
        self._registry = registry
        self._counts = counts or (lambda _camera: None)
        self._snapshot = snapshot or (lambda _camera, _name: None)
        self._exact: dict[str, Callable[[Request], Response]] = {
            "/healthz": self._healthz,
            "/metrics": self._metrics,
            "/v1/cameras": self._cameras,
            "/v1/cameras/": self._cameras,
        }

    def __call__(self, request: Request) -> Response:
        route = self._exact.get(request.path)
        if route is not None:
            return route(request)
        match = _CAMERA_PATH.fullmatch(request.path)
        if match is not None:
            camera, rest = match.group("camera"), match.group("rest")
            if rest == "counts":
                return self._camera_counts(camera)
            if rest.startswith("snapshots/"):
                return self._snapshot_file(camera, rest.removeprefix("snapshots/"))
        return not_found(request.path)

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
