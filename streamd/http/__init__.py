"""streamd's HTTP server: health, metrics, status (and, later, what the cameras see)."""

from streamd.http.api import Routes
from streamd.http.server import HttpServer, Request, Response, json_response

__all__ = ["HttpServer", "Request", "Response", "Routes", "json_response"]
