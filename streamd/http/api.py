"""The routes: ``/healthz``, ``/metrics`` and ``/v1/cameras``."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from streamd.http.server import Request, Response, json_response

__all__ = ["Routes"]

Health = Callable[[], tuple[bool, dict[str, Any]]]
Status = Callable[[], dict[str, Any]]


class Routes:
    """Maps a request to its answer; every JSON body goes out redacted."""

    def __init__(self, health: Health, status: Status, registry: CollectorRegistry) -> None:
        self._health = health
        self._status = status
        self._registry = registry
        self._exact: dict[str, Callable[[Request], Response]] = {
            "/healthz": self._healthz,
            "/metrics": self._metrics,
            "/v1/cameras": self._cameras,
            "/v1/cameras/": self._cameras,
        }

    def __call__(self, request: Request) -> Response:
        route = self._exact.get(request.path)
        if route is None:
            return json_response(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {request.path}"})
        return route(request)

    def _healthz(self, _request: Request) -> Response:
        ok, body = self._health()
        return json_response(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)

    def _metrics(self, request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return Response(HTTPStatus.OK, encoder(self._registry), content_type)

    def _cameras(self, _request: Request) -> Response:
        return json_response(HTTPStatus.OK, self._status())
