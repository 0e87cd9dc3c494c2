"""What a camera thread reads from, and how one is opened: FFmpeg (PyAV) or a GStreamer pipeline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from streamd.config import CameraConfig
from streamd.sources.pyav import Picture, open_stream

__all__ = ["Source", "open_source"]


class Source(Protocol):
    """An open camera: its frame rate, its pictures, and a way to let go of it."""

    fps: float | None

    def pictures(self, stop: threading.Event) -> Iterator[Picture]:
        """Pictures until the source fails (SourceError), ends, or ``stop`` is set."""
        ...

    def close(self) -> None: ...


def open_source(camera: CameraConfig) -> Source:
    """Open a camera with the reader its configuration asks for; SourceError when it cannot."""
    if camera.source.pipeline is not None:
        from streamd.sources.gst import GstStream  # noqa: PLC0415 - PyGObject only when used

        return GstStream(camera)
    return open_stream(camera)
