"""A camera's file, ``cameras/<id>.yaml``: its stream, model, filters, tracking and sinks."""

from __future__ import annotations

import math
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from streamd.config.analytics import AnalyticsConfig, EventType, LineConfig, SnapshotConfig, ZoneConfig
from streamd.config.base import PositiveSeconds, Probability, Strict
from streamd.config.daemon import check_host_port

__all__ = [
    "CameraConfig",
    "CameraSinkConfig",
    "ReconnectConfig",
    "SmoothingConfig",
    "SourceConfig",
    "TrackerConfig",
    "check_camera_url",
    "effective_fps",
    "source_kind",
]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def source_kind(url: str) -> Literal["rtsp", "v4l2", "file"]:
    """Tell which kind of source a camera URL names."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        return "rtsp"
    if url.startswith("/dev/video"):
        return "v4l2"
    return "file"


def check_camera_url(url: str) -> str | None:
    """Why FFmpeg cannot open ``url`` as a camera (scheme, host, port), or None. Never echoes the URL."""
    match = _SCHEME.match(url)
    if match is None:
        return None  # a file path or a device
    scheme = match.group(1).lower()
    if scheme in ("rtsp", "rtsps"):
        return check_host_port(url, ("rtsp", "rtsps"))
    if scheme == "file":
        return None
    return (
        f"unsupported URL scheme {scheme!r}: expected rtsp://, rtsps://, a video file or /dev/videoN"
        " (anything else GStreamer reads can be given with source.pipeline)"
    )


class ReconnectConfig(Strict):
    """Capped exponential backoff with jitter between connection attempts."""

    initial_s: PositiveSeconds = Field(0.5, description="delay before the first retry")
    max_s: PositiveSeconds = Field(30.0, description="longest delay between retries")
    multiplier: float = Field(2.0, ge=1, description="growth of the delay after each failed attempt")


class SourceConfig(Strict):
    """How a camera's stream is opened and read."""

    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    open_timeout_s: PositiveSeconds = Field(10.0, description="longest wait to open the stream")
    read_timeout_s: PositiveSeconds = Field(
        5.0, description="a stream silent this long is treated as hung and reconnected"
    )
    realtime: bool = Field(
        True, description="files: paced at their native rate like a camera; false replays as fast as possible"
    )
    loop: bool = Field(True, description="files: start again at the end")
    decode_threads: int = Field(
        1, ge=0, description="decoder threads; more than 1 adds a frame of latency per thread; 0 = auto"
    )
    decode: Literal["auto", "all", "keyframes"] = Field(
        "auto",
        description="keyframes: decode only keyframes (a fraction of the CPU); auto: only keyframes while the"
        " camera's fps cap is at or below its keyframe rate; all: every frame",
    )
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig, description="retry policy")
    video_size: str | None = Field(None, description="V4L2: WIDTHxHEIGHT to ask the device for")
    input_format: str | None = Field(None, description="V4L2: pixel or compressed format, e.g. mjpeg")
    options: dict[str, str] = Field(
        default_factory=dict, description="extra FFmpeg demuxer options, passed as given"
    )
    pipeline: str | None = Field(
        None,
        description="read through this GStreamer pipeline instead of FFmpeg (Jetson hardware decoding);"
        " it ends in an appsink, {url} stands for the camera's url",
    )

    @model_validator(mode="after")
    def _keyframes_need_ffmpeg(self) -> SourceConfig:
        if self.pipeline is not None and self.decode == "keyframes":
            raise ValueError(
                "decode: keyframes is done by the FFmpeg reader; a GStreamer pipeline decodes in its own"
                " elements (drop source.pipeline, or use decode: auto)"
            )
        return self

    @field_validator("pipeline")
    @classmethod
    def _ends_in_appsink(cls, value: str | None) -> str | None:
        if value is not None and not re.search(r"!\s*appsink\b[^!]*$", value):
            raise ValueError(
                "expected a GStreamer pipeline ending in '! appsink' (e.g. ... ! appsink name=streamd)"
            )
        return value


class TrackerConfig(Strict):
    """ByteTrack settings; durations in seconds so they hold at any fps."""

    enabled: bool = Field(True, description="track objects; when off, detections carry no track_id")
    lost_track_s: PositiveSeconds = Field(1.0, description="how long a lost track is kept for re-association")
    activation_confidence: Probability = Field(0.5, description="lowest score that starts a new track")
    high_confidence: Probability = Field(0.5, description="scores at or above match first; the rest second")
    min_iou: Probability = Field(0.1, description="lowest IoU that associates a detection with a track")
    confirm_frames: int = Field(2, ge=1, description="consecutive detections before a track gets its id")
    appearance: bool = Field(
        True, description="weigh how alike boxes look (their colours) when matching them to tracks"
    )


class SmoothingConfig(Strict):
    """Exponential smoothing of each track's box, by time rather than by frame."""

    enabled: bool = Field(True, description="smooth tracked boxes")
    time_constant_s: PositiveSeconds = Field(
        0.15, description="larger is smoother but lags more; the box moves 63% of the way in this time"
    )


class CameraSinkConfig(Strict):
    """A sink a camera sends to, and what it sends there."""

    name: str = Field(description="a sink name from streamd.yaml")
    send: Literal["all", "detections", "changes", "none"] = Field(
        "all",
        description="frames: every one, only those with detections, only when the set of tracked objects"
        " changes, or none (events only)",
    )
    events: bool | list[EventType] = Field(
        False, description="events too: true for every type, or a list of types (e.g. [line.cross])"
    )
    max_rate: float | None = Field(
        None, gt=0, description="at most this many messages a second; the newest wins"
    )


class CameraConfig(Strict):
    """One camera file, ``cameras/<id>.yaml``."""

    id: str = Field(description="camera id; defaults to the file's stem", pattern=r"^[A-Za-z0-9_.-]+$")
    url: str = Field(description="rtsp:// URL, video file (relative to this file) or /dev/videoN")
    enabled: bool = Field(True, description="false keeps the file but runs no camera")
    model: str = Field("default", description="a model name from streamd.yaml")
    fps: float | None = Field(None, gt=0, description="most frames per second sent to detection")
    classes: list[str | int] | None = Field(None, description="class names or ids to keep; default: all")
    min_confidence: Probability = Field(0.3, description="lowest score published")
    source: SourceConfig = Field(default_factory=SourceConfig, description="how the stream is read")
    tracker: TrackerConfig = Field(default_factory=TrackerConfig, description="tracking")
    smoothing: SmoothingConfig = Field(default_factory=SmoothingConfig, description="box smoothing")
    sinks: list[CameraSinkConfig] = Field(
        default_factory=list,
        description="sinks that get this camera's results: names, or {name, send, events, max_rate}",
    )
    lines: dict[str, LineConfig] = Field(default_factory=dict, description="counting lines by name")
    zones: dict[str, ZoneConfig] = Field(default_factory=dict, description="zones by name")
    analytics: AnalyticsConfig = Field(
        default_factory=AnalyticsConfig, description="track events, id switches"
    )
    snapshots: SnapshotConfig = Field(
        default_factory=SnapshotConfig, description="pictures attached to events"
    )

    @field_validator("lines", "zones")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        bad = [name for name in value if not _NAME.fullmatch(name)]
        if bad:
            raise ValueError(
                f"{bad[0]!r}: names are letters, digits, '_', '-' and '.' (they name MQTT topics and files)"
            )
        return value

    @model_validator(mode="after")
    def _distinct_names(self) -> CameraConfig:
        shared = sorted(self.lines.keys() & self.zones.keys())
        if shared:
            raise ValueError(f"{shared[0]!r} names both a line and a zone; give each its own name")
        return self

    @field_validator("sinks", mode="before")
    @classmethod
    def _names_are_routes(cls, value: Any) -> Any:
        # A bare name is the route with every default: no union, so errors keep the user's key path.
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    def sink_routes(self) -> list[CameraSinkConfig]:
        """The camera's sinks, each with its filter."""
        return list(self.sinks)


def effective_fps(camera: CameraConfig, stream_fps: float | None) -> float:
    """The rate detection will see: the camera's cap, else the stream's rate, else 10."""
    rates = [r for r in (camera.fps, stream_fps) if r and math.isfinite(r) and r > 0]
    return min(rates) if rates else 10.0
