"""Configuration: ``streamd.yaml`` for the daemon and one YAML file per camera.

Every model forbids unknown keys and describes each field. ``load_config`` reads
everything, collects every problem across all files, and raises one
``ConfigError`` whose lines name the file, the key path and what was expected.
Relative paths are relative to the file that holds them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from streamd.errors import ConfigError

__all__ = [
    "CameraConfig",
    "Config",
    "DaemonConfig",
    "ModelConfig",
    "load_config",
    "redact_url",
    "source_kind",
    "split_listen",
]

DEFAULT_CONFIG = Path("/etc/streamd/streamd.yaml")

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- streamd.yaml ----------------------------------------------------------------------------


class ModelConfig(_Strict):
    """One ONNX detector that cameras refer to by name."""

    path: Path = Field(description="ONNX file; relative to streamd.yaml")
    family: Literal["yolox", "yolov8", "yolo11"] = Field(
        description="output layout: yolox (raw YOLOX head) or yolov8/yolo11 (Ultralytics export)"
    )
    provider: Literal["auto", "cpu", "cuda", "tensorrt"] = Field(
        "auto", description="execution provider; auto uses the GPU when one is usable, else the CPU"
    )
    device: int = Field(0, ge=0, description="GPU index for cuda and tensorrt")
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for inference; default: every core but one (the decoders'), at most 8",
    )
    input_size: tuple[int, int] | None = Field(
        None, description="[height, width] when the model's input size is dynamic"
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="inference sessions run side by side, each with `threads` threads; default: 1 on a GPU,"
        " on a CPU every core but one, at most 4 (one thread each)",
    )
    max_batch: int = Field(
        8, ge=1, description="most frames inferred at once when the model's batch axis is dynamic"
    )
    batch_wait_s: float = Field(
        0.0,
        ge=0,
        le=1,
        description="once a frame is ready, wait this long for other cameras to fill a batch (GPU: ~0.005)",
    )
    fp16: bool = Field(True, description="TensorRT: build FP16 engines (faster, tiny accuracy cost)")
    engine_cache_dir: Path | None = Field(
        None, description="TensorRT engine cache; default: <state_dir>/trt-engines (first start builds it)"
    )
    pipeline: Literal["auto", "on", "off"] = Field(
        "auto",
        description="prepare the next batch while one is inferred; auto: on for GPUs (on a CPU it only adds"
        " latency, the cores being busy with inference already)",
    )
    io_binding: Literal["auto", "on", "off"] = Field(
        "auto", description="bind inputs and outputs to avoid copies; auto: on for cuda and tensorrt"
    )
    confidence: Probability = Field(
        0.1, description="lowest score kept from the model (the tracker uses low scores too)"
    )
    nms_iou: Probability = Field(0.45, description="IoU above which NMS drops the lower-scored box")
    max_detections: int = Field(300, ge=1, description="most detections kept per frame after NMS")
    class_names: list[str] | None = Field(
        None,
        description="names of the classes by id; default: the model's metadata, else COCO for 80 classes",
    )


class ZmqConfig(_Strict):
    """The ZeroMQ PUB socket that publishes every result."""

    endpoint: str = Field(
        "tcp://127.0.0.1:5556", description="address the PUB socket binds; loopback by default"
    )
    send_hwm: int = Field(1000, ge=1, description="messages ZeroMQ queues per subscriber before dropping")
    queue_size: int = Field(
        256, ge=1, description="results waiting for the publisher thread; the oldest is dropped when full"
    )

    @field_validator("endpoint")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        if not re.match(r"^(tcp|ipc|inproc)://.+", value):
            raise ValueError("expected tcp://HOST:PORT, ipc://PATH or inproc://NAME")
        return value


class OutboxConfig(_Strict):
    """Bounds of an at_least_once sink's durable outbox; beyond them the oldest go, counted and logged."""

    max_messages: int = Field(100_000, ge=1, description="most messages kept")
    max_mb: float = Field(256.0, gt=0, description="most megabytes of messages kept")
    max_age_s: PositiveSeconds = Field(7 * 86400.0, description="older messages are dropped")
    fsync: bool = Field(
        False, description="sync every write to the disk (survives power loss, not only a killed daemon)"
    )


class RetryConfig(_Strict):
    """Capped exponential backoff between delivery attempts."""

    initial_s: PositiveSeconds = Field(0.5, description="first delay")
    max_s: PositiveSeconds = Field(30.0, description="longest delay")


class _SinkBase(_Strict):
    delivery: Literal["at_most_once", "at_least_once"] = Field(
        "at_most_once",
        description="at_most_once: in memory, oldest dropped when full; at_least_once: a disk outbox, "
        "removed only when the peer acknowledged",
    )
    queue_size: int = Field(
        1000, ge=1, description="results waiting in memory; the oldest is dropped when full"
    )
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="at_least_once outbox bounds")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="backoff between attempts")


class TlsConfig(_Strict):
    """TLS for a sink's connection."""

    ca: Path | None = Field(None, description="CA certificate file; default: the system's")
    cert: Path | None = Field(None, description="client certificate file (mutual TLS)")
    key: Path | None = Field(None, description="client key file")
    insecure: bool = Field(False, description="skip certificate and host name checks (never in production)")


class MqttSinkConfig(_SinkBase):
    """An MQTT broker (paho-mqtt)."""

    type: Literal["mqtt"] = Field(description="mqtt")
    host: str = Field("127.0.0.1", description="broker host")
    port: int | None = Field(None, ge=1, le=65535, description="broker port; default 1883, or 8883 with TLS")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    client_id: str = Field("streamd", description="client id; unique per broker")
    username: str | None = Field(None, description="user name")
    password_file: Path | None = Field(None, description="file holding the password (never logged)")
    password_env: str | None = Field(None, description="environment variable holding the password")
    tls: TlsConfig | None = Field(None, description="TLS settings; TLS is on when this key is present")
    topic: str = Field("streamd/{camera}/frames", description="topic template; {camera} is the camera id")
    qos: Literal[0, 1, 2] = Field(1, description="QoS; at_least_once needs 1 or 2")
    retain: bool = Field(False, description="retain the last message of each topic")
    availability_topic: str = Field(
        "streamd/{client_id}/available", description="retained online/offline topic (last will: offline)"
    )
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive")
    max_inflight: int = Field(
        20,
        ge=1,
        description="most messages published and not yet acknowledged; an MQTT 5 broker's Receive Maximum"
        " lowers it; 3.1.1 brokers do not announce theirs and drop what exceeds it (mosquitto: 20)",
    )

    @model_validator(mode="after")
    def _at_least_once_needs_acks(self) -> MqttSinkConfig:
        if self.delivery == "at_least_once" and self.qos == 0:
            raise ValueError("delivery at_least_once needs qos 1 or 2 (QoS 0 is never acknowledged)")
        if self.password_file and self.password_env:
            raise ValueError("give password_file or password_env, not both")
        return self


class WebhookSinkConfig(_SinkBase):
    """HTTP POST of each message (or a batch) to a URL."""

    type: Literal["webhook"] = Field(description="webhook")
    url: str = Field(description="http:// or https:// URL")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    timeout_s: PositiveSeconds = Field(5.0, description="whole-request timeout")
    verify_tls: bool = Field(True, description="check the server's certificate")
    ca: Path | None = Field(None, description="CA certificate file to verify the server with")
    secret_file: Path | None = Field(None, description="file holding the HMAC secret for X-Streamd-Signature")
    secret_env: str | None = Field(None, description="environment variable holding the HMAC secret")
    batch_max: int = Field(1, ge=1, description="most messages per request (more than 1: a JSON array)")
    batch_wait_s: float = Field(0.0, ge=0, description="longest wait to fill a batch")

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("expected an http:// or https:// URL")
        return value


SinkConfig = Annotated[MqttSinkConfig | WebhookSinkConfig, Field(discriminator="type")]


class LogConfig(_Strict):
    """How the daemon logs."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="lowest level logged")
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="json lines, key=value console lines, or auto (console on a terminal)"
    )


class HttpConfig(_Strict):
    """The HTTP server for health, metrics and status (read-only)."""

    listen: str | None = Field(
        "127.0.0.1:9771",
        description="HOST:PORT to listen on ([::1]:PORT for IPv6); loopback by default; null turns it off",
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value


def split_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port); ValueError naming what was expected."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value)
    if not match:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9771 or [::1]:9771")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


class DaemonConfig(_Strict):
    """The daemon's file, ``streamd.yaml``."""

    cameras_dir: Path = Field(Path("cameras"), description="folder of camera files; relative to streamd.yaml")
    state_dir: Path = Field(Path("/var/lib/streamd"), description="state: delivery outbox, model cache")
    models: dict[str, ModelConfig] = Field(description="detectors by name", min_length=1)
    zmq: ZmqConfig = Field(default_factory=ZmqConfig, description="the result publisher")
    log: LogConfig = Field(default_factory=LogConfig, description="logging")
    sinks: dict[str, SinkConfig] = Field(
        default_factory=dict, description="named sinks that cameras choose (ZeroMQ always gets everything)"
    )

    @field_validator("sinks")
    @classmethod
    def _zmq_is_reserved(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "zmq" in value:
            raise ValueError("the name 'zmq' is taken by the built-in ZeroMQ publisher; choose another")
        return value

    shutdown_timeout_s: PositiveSeconds = Field(
        4.0, description="how long stopping may take before threads are abandoned"
    )
    http: HttpConfig = Field(default_factory=HttpConfig, description="health, metrics and status endpoints")
    stall_timeout_s: PositiveSeconds = Field(
        10.0,
        description="an inference worker, or a camera thread past its own timeouts, that makes no progress"
        " this long is stuck: systemd's watchdog then restarts streamd",
    )


# --- cameras/<id>.yaml -----------------------------------------------------------------------


class ReconnectConfig(_Strict):
    """Capped exponential backoff with jitter between connection attempts."""

    initial_s: PositiveSeconds = Field(0.5, description="delay before the first retry")
    max_s: PositiveSeconds = Field(30.0, description="longest delay between retries")
    multiplier: float = Field(2.0, ge=1, description="growth of the delay after each failed attempt")


class SourceConfig(_Strict):
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

    @field_validator("pipeline")
    @classmethod
    def _ends_in_appsink(cls, value: str | None) -> str | None:
        if value is not None and not re.search(r"!\s*appsink\b[^!]*$", value):
            raise ValueError(
                "expected a GStreamer pipeline ending in '! appsink' (e.g. ... ! appsink name=streamd)"
            )
        return value


class TrackerConfig(_Strict):
    """ByteTrack settings; durations in seconds so they hold at any fps."""

    enabled: bool = Field(True, description="track objects; when off, detections carry no track_id")
    lost_track_s: PositiveSeconds = Field(1.0, description="how long a lost track is kept for re-association")
    activation_confidence: Probability = Field(0.5, description="lowest score that starts a new track")
    high_confidence: Probability = Field(0.5, description="scores at or above match first; the rest second")
    min_iou: Probability = Field(0.1, description="lowest IoU that associates a detection with a track")
    confirm_frames: int = Field(2, ge=1, description="consecutive detections before a track gets its id")


class SmoothingConfig(_Strict):
    """Exponential smoothing of each track's box, by time rather than by frame."""

    enabled: bool = Field(True, description="smooth tracked boxes")
    time_constant_s: PositiveSeconds = Field(
        0.15, description="larger is smoother but lags more; the box moves 63% of the way in this time"
    )


class CameraSinkConfig(_Strict):
    """A sink a camera sends to, and what it sends there."""

    name: str = Field(description="a sink name from streamd.yaml")
    send: Literal["all", "detections", "changes"] = Field(
        "all",
        description="every frame, only frames with detections, or only when the set of tracked objects"
        " changes",
    )
    max_rate: float | None = Field(
        None, gt=0, description="at most this many messages a second; the newest wins"
    )


class CameraConfig(_Strict):
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
    sinks: list[str | CameraSinkConfig] = Field(
        default_factory=list,
        description="sinks that get this camera's results: names, or {name, send, max_rate}",
    )

    def sink_routes(self) -> list[CameraSinkConfig]:
        """The camera's sinks, each with its filter."""
        return [CameraSinkConfig(name=s) if isinstance(s, str) else s for s in self.sinks]


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    path: Path
    daemon: DaemonConfig
    cameras: dict[str, CameraConfig]
    camera_files: dict[str, Path]


# --- helpers ---------------------------------------------------------------------------------


def source_kind(url: str) -> Literal["rtsp", "v4l2", "file"]:
    """Tell which kind of source a camera URL names."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        return "rtsp"
    if url.startswith("/dev/video"):
        return "v4l2"
    return "file"


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _format_errors(file: Path, error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{file}: {loc}: unknown key")
            continue
        if item["type"] == "missing":
            lines.append(f"{file}: {loc}: required key is missing")
            continue
        got = item.get("input")
        msg = item["msg"]
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{file}: {loc}: {msg}{shown}")
    return lines


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{file}: invalid YAML{where}: {problem}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: expected a mapping of keys to values, got {type(data).__name__}"])
    return data


def _resolve(base: Path, path: Path) -> Path:
    # normpath, not resolve(): a user's symlinks stay as written in logs and errors.
    return path if path.is_absolute() else Path(os.path.normpath(base / path))


def _resolve_sink_paths(
    base: Path, sink: MqttSinkConfig | WebhookSinkConfig
) -> MqttSinkConfig | WebhookSinkConfig:
    def fix(p: Path | None) -> Path | None:
        return None if p is None else _resolve(base, p)

    if isinstance(sink, MqttSinkConfig):
        tls = sink.tls
        if tls is not None:
            tls = tls.model_copy(update={"ca": fix(tls.ca), "cert": fix(tls.cert), "key": fix(tls.key)})
        return sink.model_copy(update={"password_file": fix(sink.password_file), "tls": tls})
    return sink.model_copy(update={"secret_file": fix(sink.secret_file), "ca": fix(sink.ca)})


def _load_daemon(path: Path) -> DaemonConfig:
    raw = _read_yaml(path)
    try:
        daemon = DaemonConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from exc
    base = path.parent
    state_dir = _resolve(base, daemon.state_dir)
    sinks = {name: _resolve_sink_paths(base, sink) for name, sink in daemon.sinks.items()}
    models = {
        name: model.model_copy(
            update={
                "path": _resolve(base, model.path),
                "engine_cache_dir": _resolve(base, model.engine_cache_dir)
                if model.engine_cache_dir
                else state_dir / "trt-engines",
            }
        )
        for name, model in daemon.models.items()
    }
    return daemon.model_copy(
        update={
            "cameras_dir": _resolve(base, daemon.cameras_dir),
            "state_dir": state_dir,
            "models": models,
            "sinks": sinks,
        }
    )


def _load_camera(file: Path, daemon: DaemonConfig) -> CameraConfig:
    raw = _read_yaml(file)
    raw.setdefault("id", file.stem)
    try:
        camera = CameraConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(file, exc)) from exc
    problems = []
    for route in camera.sink_routes():
        if route.name not in daemon.sinks:
            known = ", ".join(sorted(daemon.sinks)) or "none defined"
            problems.append(f"{file}: sinks: no sink named {route.name!r} in streamd.yaml (known: {known})")
    if camera.model not in daemon.models:
        known = ", ".join(sorted(daemon.models))
        problems.append(f"{file}: model: no model named {camera.model!r} in streamd.yaml (known: {known})")
    if source_kind(camera.url) == "file" and camera.source.pipeline is None:
        url_path = Path(camera.url.removeprefix("file://"))
        resolved = _resolve(file.parent, url_path)
        if not resolved.is_file():
            problems.append(f"{file}: url: no such video file {resolved}")
        camera = camera.model_copy(update={"url": str(resolved)})
    if problems:
        raise ConfigError(problems)
    return camera


def camera_files(cameras_dir: Path) -> list[Path]:
    """The camera files of a folder, in name order."""
    if not cameras_dir.is_dir():
        return []
    return sorted(p for p in cameras_dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_config(path: Path) -> Config:
    """Read and validate ``streamd.yaml`` and every camera file; raise ConfigError listing all problems."""
    path = Path(os.path.abspath(path))
    daemon = _load_daemon(path)
    problems: list[str] = []
    if not daemon.cameras_dir.is_dir():
        problems.append(f"{path}: cameras_dir: no such folder {daemon.cameras_dir}")
    cameras: dict[str, CameraConfig] = {}
    files: dict[str, Path] = {}
    for file in camera_files(daemon.cameras_dir):
        try:
            camera = _load_camera(file, daemon)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if camera.id in cameras:
            problems.append(f"{file}: id: camera id {camera.id!r} is also used by {files[camera.id]}")
            continue
        cameras[camera.id] = camera
        files[camera.id] = file
    for name, model in daemon.models.items():
        if not model.path.is_file():
            problems.append(f"{path}: models.{name}.path: no such model file {model.path}")
    if problems:
        raise ConfigError(problems)
    return Config(path=path, daemon=daemon, cameras=cameras, camera_files=files)


def effective_fps(camera: CameraConfig, stream_fps: float | None) -> float:
    """The rate detection will see: the camera's cap, else the stream's rate, else 10."""
    rates = [r for r in (camera.fps, stream_fps) if r and math.isfinite(r) and r > 0]
    return min(rates) if rates else 10.0
