"""The values that cross stage boundaries: Frame in, FrameResult out.

Detections are supervision's ``sv.Detections`` in source-image pixels, with
``data["class_name"]``; with tracking on, every row has a confirmed ``tracker_id``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import av
import numpy as np
import supervision as sv

from streamd.picture import to_bgr

if TYPE_CHECKING:
    from streamd.analytics.events import Event, StateUpdate

__all__ = ["Deferred", "Frame", "FrameResult", "Timings"]


class Deferred(Protocol):
    """A picture still in its source's memory (a GStreamer buffer): copied out only when taken.

    A frame that the slot replaces before a worker takes it is never copied.
    """

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    def load(self) -> av.VideoFrame: ...


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture of one camera.

    The picture stays as the decoder made it (usually YUV 4:2:0): a frame that is
    dropped costs no colour conversion, and the detector converts only its own
    small letterboxed copy. ``bgr()`` gives full-size BGR pixels when needed.
    """

    camera: str
    seq: int  # decoded-frame counter of the camera, from 0, kept across reconnects
    ts: float  # wall-clock capture time (unix seconds), for messages
    t_capture: float  # time.monotonic() at capture, for latencies
    decode_s: float  # time spent demuxing and decoding this frame
    t_ready: float  # time.monotonic() when the frame was put in the camera's slot
    picture: av.VideoFrame | Deferred  # a Deferred one becomes a VideoFrame in ``ready()``
    # Monotonic time of the scene, what tracking and events reason with: t_capture, except for
    # a file replayed faster than real time, where it is the frame's place in the file.
    t_scene: float = 0.0

    def __post_init__(self) -> None:
        if not self.t_scene:
            object.__setattr__(self, "t_scene", self.t_capture)

    @property
    def width(self) -> int:
        return int(self.picture.width)

    @property
    def height(self) -> int:
        return int(self.picture.height)

    def ready(self) -> Frame:
        """This frame with its picture in memory (a deferred one is copied out now, in the caller)."""
        if isinstance(self.picture, av.VideoFrame):
            return self
        return dataclasses.replace(self, picture=self.picture.load())

    @property
    def video(self) -> av.VideoFrame:
        """The decoded picture (of a frame that is ``ready()``)."""
        if not isinstance(self.picture, av.VideoFrame):
            raise TypeError("the frame's picture is deferred: call ready() first")
        return self.picture

    def bgr(self) -> np.ndarray:
        """Full-size HxWx3 uint8 BGR pixels (a conversion each call)."""
        return to_bgr(self.video)


@dataclass(frozen=True, slots=True)
class Timings:
    """Per-stage durations of one frame, in seconds."""

    decode: float
    wait: float
    infer: float
    track: float
    total: float  # capture to the tracked result; the message adds the sink's queue


@dataclass(frozen=True, slots=True)
class FrameResult:
    """What every sink receives for one processed frame."""

    camera: str
    seq: int
    ts: float
    width: int
    height: int
    detections: sv.Detections
    timings: Timings
    t_capture: float  # monotonic, so sinks can measure their own lag
    events: tuple[Event, ...] = ()  # what happened at this frame (lines, zones, tracks)
    states: tuple[StateUpdate, ...] = ()  # line totals and zone occupancy that changed
    picture: av.VideoFrame | None = None  # the decoded picture, for snapshots and the live view
