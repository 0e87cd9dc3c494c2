"""The live view's two pages: plain HTML, CSS and JavaScript (``static/``), nothing to build or fetch.

- ``/``: every camera with its state, processed fps, drops, last error, line totals and
  zone occupancy, and its annotated picture (``latest.jpg``, refreshed each second: no
  connection held per camera).
- ``/cameras/<id>``: one camera's live MJPEG stream, and a tool to click a line or a zone
  on it and get the YAML to paste into the camera file (normalized coordinates).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from importlib import resources

__all__ = ["camera_page", "index_page"]


def _static(name: str) -> str:
    return (resources.files("streamd.live") / "static" / name).read_text(encoding="utf-8")


_STYLE, _INDEX_SCRIPT, _CAMERA_SCRIPT = _static("style.css"), _static("index.js"), _static("camera.js")


def _page(title: str, body: str, script: str) -> bytes:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}<script>{script}</script></body></html>"
    ).encode()


def index_page() -> bytes:
    """Every camera, with its picture and numbers (filled in by the page from /v1/cameras)."""
    body = (
        "<header><h1>streamd</h1><span>live view</span>"
        "<a href='metrics'>metrics</a><a href='healthz'>health</a></header>"
        "<main><div class=grid id=grid></div></main>"
    )
    return _page("streamd", body, _INDEX_SCRIPT)


def camera_page(camera: str, geometry: Mapping[str, Mapping[str, object]]) -> bytes:
    """One camera's live stream, its lines and zones, and the drawing tool."""
    name = html.escape(camera)
    items = [(html.escape(kind), html.escape(str(item)), html.escape(str(value)))
             for kind, named in geometry.items() for item, value in named.items()]  # fmt: skip
    existing = (
        "".join(f"<li><b>{k} {n}</b>: <code>{v}</code></li>" for k, n, v in items) or "<li>none yet</li>"
    )
    body = (
        f"<header><h1>{name}</h1><a href='../'>all cameras</a></header><main>"
        f"<div class=view><img id=live alt='{name}' src='../v1/cameras/{name}/preview.mjpeg'>"
        "<canvas id=draw></canvas></div>"
        "<div class=tools>Drawing a <b id=mode>line</b>. <button id=line>line (A, B)</button>"
        "<button id=zone>zone (corners)</button><button id=undo>undo</button>"
        "<label>name <input id=name size=12 placeholder=door></label><button id=copy>copy</button></div>"
        "<pre id=yaml></pre><p class=muted>Coordinates are fractions of the picture (0..1): paste them into "
        f"the camera file and run <code>systemctl reload streamd</code>.</p><h3>In the camera file now</h3>"
        f"<ul>{existing}</ul></main>"
    )
    return _page(f"streamd: {camera}", body, _CAMERA_SCRIPT)
