"""Reading RTSP, files and V4L2 devices with PyAV: open, demux, decode, pace.

``open_stream`` returns a ``Stream`` that yields ``Picture`` values until the
source ends or fails. Failures become ``SourceError`` with a readable reason;
the end of a live source is a failure too (PyAV simply stops when an RTSP server
dies).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av

from streamd.config import CameraConfig, source_kind
from streamd.errors import SourceError
from streamd.redact import redact
from streamd.types import Deferred

__all__ = ["Admit", "KeyframeRate", "Picture", "Stream", "admit_all", "decode_keyframes_only", "open_stream"]

Admit = Callable[[float], bool]  # a picture's scene time -> whether it goes to detection (the fps cap)


def admit_all(_t_scene: float) -> bool:
    return True


_FLAG2_CHUNKS = 1 << 15  # AV_CODEC_FLAG2_CHUNKS: packets may end at slice boundaries


@dataclass(frozen=True, slots=True)
class Picture:
    """A decoded picture with the time its data arrived."""

    picture: av.VideoFrame | Deferred
    ts: float  # wall clock of the scene: when its packet arrived (a replayed file: its place in the file)
    t_capture: float  # monotonic, when its packet arrived: latencies are measured from it
    decode_s: float
    t_scene: float  # monotonic time of the scene: t_capture, or for a replayed file its place in the file
    decoded: int = 1  # pictures decoded since the one before it was handed over, this one included


class KeyframeRate:
    """Keyframes a second of a stream, from the times of its latest keyframes (median interval)."""

    def __init__(self, window: int = 4) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=window + 1)

    def observe(self, t: float) -> None:
        if self._times and t <= self._times[-1]:
            self._times.clear()  # the stream's clock went back (a looped file, a new session)
        self._times.append(t)

    def rate(self) -> float | None:
        if len(self._times) < 2:
            return None
        intervals = [b - a for a, b in itertools.pairwise(self._times)]
        return 1.0 / statistics.median(intervals)


def decode_keyframes_only(mode: str, cap: float | None, keyframe_rate: float | None) -> bool:
    """Whether to decode only keyframes: asked for, or (auto) the fps cap is within the keyframe rate."""
    if mode != "auto":
        return mode == "keyframes"
    # 2% of slack: a 1 s GOP measured from arrival times may read 0.99 keyframes a second.
    return cap is not None and keyframe_rate is not None and cap <= keyframe_rate * 1.02


def _rtsp_options(camera: CameraConfig) -> dict[str, str]:
    # A default open probes the stream for seconds and then hands over the frames it
    # buffered meanwhile (about 2.8 s of old frames at 10 fps); a live camera needs
    # neither: a tiny probe reads one packet. That packet must be kept (no
    # fflags=nobuffer): on a camera that sends SPS/PPS only in band it is the keyframe
    # the session starts with, and dropping it costs a whole GOP (2 to 4 s on many cameras).
    options = {
        "rtsp_transport": camera.source.rtsp_transport,
        "flags": "low_delay",
        "probesize": "32",
        "analyzeduration": "0",
    }
    if camera.source.rtsp_transport == "udp":
        options["max_delay"] = "500000"  # reorder window for UDP, in microseconds
    return options


def _v4l2_options(camera: CameraConfig) -> dict[str, str]:
    options = {}
    if camera.source.video_size:
        options["video_size"] = camera.source.video_size
    if camera.source.input_format:
        options["input_format"] = camera.source.input_format
    if camera.fps:
        options["framerate"] = f"{camera.fps:g}"
    return options


class Stream:
    """An open source; iterate ``pictures(stop, admit)`` and close it when done."""

    def __init__(self, container: av.container.InputContainer, camera: CameraConfig, kind: str) -> None:
        self._container = container
        self._camera = camera
        self._live = kind != "file"
        self._video = container.streams.video[0]
        threads = camera.source.decode_threads
        if threads == 0:
            self._video.thread_type = "AUTO"
        elif threads > 1:
            self._video.thread_type = "FRAME"
            self._video.thread_count = threads
        if kind == "rtsp":
            # The RTSP demuxer hands over each slice of a picture as its own packet; decoded
            # one by one, a multi-slice camera's pictures come out half broken (and so do all
            # that refer to them until the next keyframe). In chunks mode the decoder puts a
            # picture together from its slices, and still returns it with its last slice.
            self._video.codec_context.flags2 |= _FLAG2_CHUNKS
        rate = self._video.average_rate or self._video.guessed_rate
        self.fps: float | None = float(rate) if rate else None
        self._scene_origin: tuple[float, float] | None = None
        self._frames = 0  # packets of pictures read, across loops of a file
        # Keyframe-only decoding: decided at each keyframe, for the pictures up to the next.
        self.keyframes_only = camera.source.decode == "keyframes"
        self._keyframe_rate = KeyframeRate()
        self._keyframe_at: float | None = None
        self._keyframe_admitted = True

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection or file."""
        with contextlib.suppress(av.FFmpegError):
            self._container.close()

    def pictures(self, stop: threading.Event, admit: Admit = admit_all) -> Iterator[Picture]:
        """Decoded pictures that ``admit`` lets through, until the source ends, fails or ``stop`` is set.

        ``admit(t_scene)`` is asked once per picture, before decoding when only keyframes
        are decoded (a keyframe the fps cap skips is never decoded), after it otherwise
        (every frame is a reference for the next). Fails with SourceError.
        """
        paced = not self._live and self._camera.source.realtime
        # Replayed as fast as the worker goes, a file's frames arrive faster than they were
        # filmed: the scene's clock is their place in the file, so that tracking and events,
        # which reason in seconds, see the scene as it was.
        replay = not self._live and not paced
        period = 1.0 / (self.fps or 25.0)
        started = time.monotonic()
        self._scene_origin = (started, time.time()) if replay else None
        while not stop.is_set():
            try:
                yield from self._demux_decode(stop, admit, paced, started, period)
            except av.FFmpegError as exc:
                raise SourceError(_describe(exc, reading=True)) from exc
            if stop.is_set():
                return
            if self._live:
                raise SourceError("stream ended (camera closed the connection)")
            if not self._camera.source.loop:
                return
            try:
                self._container.seek(0)
            except av.FFmpegError as exc:
                raise SourceError(f"cannot loop the file: {_describe(exc)}") from exc
            # Fresh decoder state after the seek: frames of the old position must not leak.
            self._video.codec_context.flush_buffers()

    def _demux_decode(
        self, stop: threading.Event, admit: Admit, paced: bool, started: float, period: float
    ) -> Iterator[Picture]:
        decoded = 0  # since the last picture handed over
        for packet in self._container.demux(self._video):
            if stop.is_set():
                return
            n = self._frames  # this packet's place in the stream, for pacing and replay
            if packet.size:
                self._frames += 1
                if paced:
                    delay = started + n * period - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        return
            t_capture, ts = time.monotonic(), time.time()
            t_scene = t_capture
            if self._scene_origin is not None:
                t_scene, ts = self._scene_origin[0] + n * period, self._scene_origin[1] + n * period
            if packet.size and not self._keyframe_gate(packet, t_capture, t_scene, admit):
                continue
            for picture in packet.decode():
                decoded += 1
                if not self.keyframes_only and not admit(t_scene):
                    continue
                now = time.monotonic()
                yield Picture(picture, ts, t_capture, now - t_capture, t_scene, decoded)
                decoded = 0
                t_capture, ts = now, time.time()

    def _keyframe_gate(
        self, packet: av.Packet[av.VideoStream], t_capture: float, t_scene: float, admit: Admit
    ) -> bool:
        """Whether a packet goes to the decoder: all of them, or in keyframe mode admitted keyframes."""
        if packet.is_keyframe:
            at = (
                float(packet.pts * packet.time_base)
                if packet.pts is not None and packet.time_base
                else t_capture
            )
            if at != self._keyframe_at:  # a new picture (its slices share the time)
                self._keyframe_at = at
                self._keyframe_rate.observe(at)
                self.keyframes_only = decode_keyframes_only(
                    self._camera.source.decode, self._camera.fps, self._keyframe_rate.rate()
                )
                self._keyframe_admitted = not self.keyframes_only or admit(t_scene)
            return self._keyframe_admitted
        return not self.keyframes_only


def _describe(exc: Exception, reading: bool = False) -> str:
    # A read timeout is PyAV's (ExitError: v4l2) or FFmpeg's own (TimeoutError: RTSP).
    if isinstance(exc, av.error.ExitError) or (reading and isinstance(exc, av.error.TimeoutError)):
        return "no data within the read timeout (camera hung)"
    if isinstance(exc, ConnectionRefusedError | av.error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | av.error.TimeoutError):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc)
    return f"{type(exc).__name__}: {text}"


def _open_timeout(exc: Exception, elapsed_s: float, open_s: float, answer_s: float) -> str | None:
    """Which timeout ended an RTSP open, in the user's keys; None when none did.

    FFmpeg reports either one as invalid data (or an exit, or a timeout), so the time the
    open took tells them apart.
    """
    if not isinstance(exc, av.error.ExitError | av.error.InvalidDataError | av.error.TimeoutError):
        return None
    if elapsed_s >= open_s * 0.9:
        return f"not open within source.open_timeout_s ({open_s:g} s)"
    if elapsed_s >= answer_s * 0.9:
        return f"no answer within {answer_s:g} s (half of source.read_timeout_s)"
    return None


def open_stream(camera: CameraConfig) -> Stream:
    """Open a camera's source; SourceError with the reason when it cannot be opened."""
    kind = source_kind(camera.url)
    src = camera.source
    options: dict[str, str]
    try:
        if kind == "rtsp":
            options = {**_rtsp_options(camera), **src.options}
            # At the first read timeout FFmpeg's RTSP demuxer hands over the frame it was
            # holding (its H.264 parser waits for the next frame's start) and only the
            # second one raises; half the timeout makes a hung camera fail within it.
            # The read timeout is FFmpeg's own (socket I/O, in microseconds): PyAV's takes
            # the GIL in a callback at every read, a few hundred times a second per
            # camera, and every worker's Python waits on those hand-overs.
            answer_s = src.read_timeout_s / 2
            options = {"timeout": str(round(answer_s * 1e6)), **options}
            started = time.monotonic()
            try:
                container = av.open(camera.url, options=options, timeout=(src.open_timeout_s, None))
            except av.FFmpegError as exc:
                why = _open_timeout(exc, time.monotonic() - started, src.open_timeout_s, answer_s)
                if why is None:
                    raise
                raise SourceError(f"cannot open {redact(camera.url)}: {why}") from exc
        elif kind == "v4l2":
            options = {**_v4l2_options(camera), **src.options}
            container = av.open(camera.url, format="v4l2", options=options, timeout=src.read_timeout_s)
        else:
            path = Path(camera.url.removeprefix("file://"))
            container = av.open(str(path), options=dict(src.options))
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {redact(camera.url)}: {_describe(exc)}") from exc
    if not container.streams.video:
        container.close()
        raise SourceError(f"{redact(camera.url)} has no video stream")
    return Stream(container, camera, kind)
