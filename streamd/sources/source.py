"""What a camera thread reads from, and how one is opened: FFmpeg (PyAV) or a GStreamer pipeline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from streamd.config import CameraConfig
from streamd.sources.pyav import Admit, Picture, open_stream

__all__ = ["Source", "open_source"]


class Source(Protocol):
    """An open camera: its frame rate, how it decodes, its pictures, and a way to let go of it."""

    fps: float | None
    keyframes_only: bool  # decoding only the keyframes now (source.decode)

    def pictures(self, stop: threading.Event, admit: Admit) -> Iterator[Picture]:
        """Pictures ``admit`` lets through, until the source fails (SourceError), ends, or ``stop`` is set.

        A source asks ``admit`` before the costly steps it can skip (decoding a keyframe,
        copying a picture out of GStreamer) and reports in ``Picture.decoded`` how many
        pictures it decoded since the last one it handed over.
        """
        ...

    def close(self) -> None: ...


def open_source(camera: CameraConfig) -> Source:
    """Open a camera with the reader its configuration asks for; SourceError when it cannot."""
    if camera.source.pipeline is not None:
        from streamd.sources.gst import GstStream  # noqa: PLC0415 - PyGObject only when used

        return GstStream(camera)
    return open_stream(camera)
