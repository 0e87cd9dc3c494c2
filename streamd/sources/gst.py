"""Reading a camera through a GStreamer pipeline that ends in an appsink.

This is the way to hardware decoders FFmpeg does not reach, above all Jetson's
``nvv4l2decoder``::

    rtspsrc location={url} latency=0 ! rtph264depay ! h264parse ! nvv4l2decoder
      ! nvvidconv ! video/x-raw,format=I420 ! appsink name=streamd

The appsink delivers I420 pictures; each becomes the same ``Picture`` the FFmpeg
reader yields, so nothing after the camera thread knows the difference. PyGObject
is imported only when a camera uses a pipeline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from streamd.config import CameraConfig
from streamd.errors import ConfigError, SourceError
from streamd.redact import redact
from streamd.sources.pyav import Admit, Picture, admit_all

__all__ = ["GstStream", "check_pipeline"]

_POLL_S = 0.25  # how often a pull that waits for data looks at the stop event
_gst: Any = None


@dataclass(frozen=True)
class _Bindings:
    gst: Any
    app: Any
    video: Any


def _modules() -> _Bindings:
    """GStreamer's Python bindings, initialised once; SourceError saying what to install."""
    global _gst  # noqa: PLW0603 - one initialisation per process
    if _gst is None:
        try:
            import gi  # noqa: PLC0415

            gi.require_version("Gst", "1.0")
            gi.require_version("GstApp", "1.0")
            gi.require_version("GstVideo", "1.0")
            from gi.repository import Gst, GstApp, GstVideo  # noqa: PLC0415
        except (ImportError, ValueError) as exc:
            raise SourceError(
                "GStreamer pipelines need PyGObject and GStreamer's introspection data "
                "(Debian: python3-gi gir1.2-gst-plugins-base-1.0; scripts/setup.sh and make install "
                f"link them into the virtualenv): {exc}"
            ) from exc
        if not Gst.is_initialized():
            Gst.init(None)
        _gst = _Bindings(Gst, GstApp, GstVideo)
    result: _Bindings = _gst
    return result


def _description(camera: CameraConfig) -> str:
    assert camera.source.pipeline is not None
    return camera.source.pipeline.replace("{url}", camera.url)


def _appsink(pipeline: Any) -> Any:
    g = _modules()
    named = pipeline.get_by_name("streamd")
    if isinstance(named, g.app.AppSink):
        return named
    iterator = pipeline.iterate_sinks()
    while True:
        result, element = iterator.next()
        if result != g.gst.IteratorResult.OK:
            return None
        if isinstance(element, g.app.AppSink):
            return element


def check_pipeline(camera: CameraConfig, file: str) -> None:
    """Parse a camera's pipeline without starting it; ConfigError naming a missing element or syntax error."""
    try:
        g = _modules()
        pipeline = g.gst.parse_launch(_description(camera))
    except SourceError as exc:
        raise ConfigError([f"{file}: source.pipeline: {exc}"]) from exc
    except Exception as exc:  # GLib.Error: no such element, bad syntax
        raise ConfigError([f"{file}: source.pipeline: {getattr(exc, 'message', exc)}"]) from exc
    if _appsink(pipeline) is None:
        raise ConfigError([f"{file}: source.pipeline: has no appsink element to read pictures from"])


class GstStream:
    """A playing pipeline; iterate ``pictures(stop, admit)`` and close it when done."""

    keyframes_only = False  # the pipeline's own elements decode: every frame

    def __init__(self, camera: CameraConfig) -> None:
        g = _modules()
        self._camera = camera
        self._where = redact(camera.url)
        try:
            self._pipeline = g.gst.parse_launch(_description(camera))
        except Exception as exc:
            raise SourceError(redact(f"bad pipeline: {getattr(exc, 'message', exc)}")) from exc
        # From here on the pipeline holds sockets and threads: every way out but success
        # sets it to NULL, or each failed retry would leak one.
        try:
            self._start(g, camera)
        except BaseException:
            self.close()
            raise

    def _start(self, g: _Bindings, camera: CameraConfig) -> None:
        self._sink = _appsink(self._pipeline)
        if self._sink is None:
            raise SourceError("the pipeline has no appsink")
        # The newest picture only, like the slot after it; pull as fast as it comes.
        self._sink.set_property("max-buffers", 1)
        self._sink.set_property("drop", True)
        self._sink.set_property("emit-signals", False)
        if self._sink.get_property("caps") is None:
            self._sink.set_property("caps", g.gst.Caps.from_string("video/x-raw,format=I420"))
        self._bus = self._pipeline.get_bus()
        if self._pipeline.set_state(g.gst.State.PLAYING) == g.gst.StateChangeReturn.FAILURE:
            error = self._bus_error() or "the pipeline did not start"
            raise SourceError(f"cannot open {self._where}: {error}")
        # The first picture tells the size and the rate; wait for it as long as an open may take.
        self._first = self._pull(camera.source.open_timeout_s, threading.Event())
        if self._first is None:
            raise SourceError(f"cannot open {self._where}: no picture within the open timeout")
        self.fps = self._rate(self._first[0])

    def _rate(self, sample: Any) -> float | None:
        ok, num, den = sample.get_caps().get_structure(0).get_fraction("framerate")
        return num / den if ok and num > 0 and den > 0 else None

    def _bus_error(self) -> str | None:
        g = _modules()
        message = self._bus.pop_filtered(g.gst.MessageType.ERROR | g.gst.MessageType.EOS)
        if message is None:
            return None
        if message.type == g.gst.MessageType.EOS:
            return "stream ended"
        error, _debug = message.parse_error()
        return redact(f"{message.src.get_name()}: {error.message}")

    def _pull(self, timeout_s: float, stop: threading.Event) -> tuple[Any, float, float] | None:
        """The next sample with its arrival times, or None on stop or when ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            sample = self._sink.try_pull_sample(int(min(remaining, _POLL_S) * 1e9))
            if sample is not None:
                return sample, time.monotonic(), time.time()
            error = self._bus_error()
            if error is not None:
                raise SourceError(error)
            if self._sink.is_eos():
                raise SourceError("stream ended")
        return None

    def pictures(self, stop: threading.Event, admit: Admit = admit_all) -> Iterator[Picture]:
        """Pictures until the pipeline fails or ends (SourceError), goes silent, or ``stop`` is set.

        A picture the fps cap skips is never copied out of GStreamer, and one that is kept
        is copied only when a worker takes it (a ``Deferred``): one the slot replaces first
        costs nothing either.
        """
        got, self._first = self._first, None
        skipped = 0
        while got is not None:
            sample, t_capture, ts = got
            if admit(t_capture):
                # Decoding happened in GStreamer's threads: it is the pull that is timed.
                yield Picture(_Sample(sample), ts, t_capture, time.monotonic() - t_capture, t_capture,
                              decoded=skipped + 1)  # fmt: skip
                skipped = 0
            else:
                skipped += 1
            got = self._pull(self._camera.source.read_timeout_s, stop)
            if got is None and not stop.is_set():
                raise SourceError("no data within the read timeout (camera hung)")

    def close(self) -> None:
        """Stop the pipeline (an RTSP source sends its TEARDOWN)."""
        g = _modules()
        self._pipeline.set_state(g.gst.State.NULL)


class _Sample:
    """A pulled sample whose picture is copied out when a worker takes it (``Deferred``)."""

    __slots__ = ("_sample", "height", "width")

    def __init__(self, sample: Any) -> None:
        self._sample = sample
        structure = sample.get_caps().get_structure(0)
        self.width = int(structure.get_value("width"))
        self.height = int(structure.get_value("height"))

    def load(self) -> av.VideoFrame:
        return _to_picture(self._sample)


def _to_picture(sample: Any) -> av.VideoFrame:
    """An I420 sample as a yuv420p ``av.VideoFrame``, copied plane by plane.

    GStreamer may pad rows and place planes apart, and odd sizes have chroma planes of
    (w + 1) / 2 by (h + 1) / 2; PyAV allocates the frame with its own strides and each
    plane is copied into it once.
    """
    g = _modules()
    info = g.video.VideoInfo.new_from_caps(sample.get_caps())
    if info.finfo.format != g.video.VideoFormat.I420:
        raise SourceError(f"the appsink must get I420 pictures, got {info.finfo.name}")
    frame = av.VideoFrame(info.width, info.height, "yuv420p")
    buffer = sample.get_buffer()
    ok, mapped = buffer.map(g.gst.MapFlags.READ)
    if not ok:
        raise SourceError("cannot read a picture buffer")
    try:
        data = np.frombuffer(mapped.data, dtype=np.uint8)
        for index, plane in enumerate(frame.planes):
            rows, cols = plane.height, plane.width
            src = np.lib.stride_tricks.as_strided(
                data[info.offset[index] :],
                shape=(rows, cols),
                strides=(info.stride[index], 1),
                writeable=False,
            )
            np.frombuffer(memoryview(plane), np.uint8).reshape(rows, plane.line_size)[:, :cols] = src
    finally:
        buffer.unmap(mapped)
    return frame
