"""The daemon's file, ``streamd.yaml``: models, ZeroMQ, sinks, HTTP, logging."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from streamd.config.base import PositiveSeconds, Probability, Strict

__all__ = [
    "DaemonConfig",
    "HttpConfig",
    "LogConfig",
    "ModelConfig",
    "MqttSinkConfig",
    "OutboxConfig",
    "PreviewConfig",
    "RetryConfig",
    "SinkConfig",
    "SnapshotStoreConfig",
    "TlsConfig",
    "WebhookSinkConfig",
    "ZmqConfig",
    "default_state_dir",
    "is_loopback",
    "split_listen",
]


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` (set by systemd's StateDirectory=, per instance), else /var/lib/streamd."""
    first = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(first or "/var/lib/streamd")


def _unencoded_userinfo(url: str) -> bool:
    """Whether the user name or password holds ``/ ? #``, which end a URL's host part for FFmpeg too.

    ``rtsp://admin:a#b@host/`` reads as host "admin", port "a": the ``@`` comes after the
    host part ended, and what stands where a port would be is not a number.
    """
    rest = url.split("://", 1)[-1]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, after = rest[:end], rest[end:]
    _host, colon, port = authority.rpartition("@")[2].partition(":")
    return "@" not in authority and "@" in after and bool(colon) and not port.isdigit()


def check_host_port(url: str, schemes: tuple[str, ...]) -> str | None:
    """Why ``url`` cannot be connected to (missing host, bad port), or None. Never echoes the URL."""
    if _unencoded_userinfo(url):
        return (
            "the user name or password holds '/', '?' or '#', which end the host part of a URL:"
            " write them percent-encoded (%2F, %3F, %23)"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() not in schemes:
        return f"expected a URL starting with {' or '.join(s + '://' for s in schemes)}"
    try:
        port = parts.port
    except ValueError:
        return "the port must be a number from 1 to 65535"
    if not parts.hostname:
        return "the URL has no host name"
    if port == 0:
        return "the port must be a number from 1 to 65535"
    return None


class ModelConfig(Strict):
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
        description="CPU threads per inference session; default: (cores - 1) / workers, from 1 to 8",
    )
    input_size: tuple[int, int] | None = Field(
        None, description="[height, width] when the model's input size is dynamic"
    )
    fit_input: Literal["auto", "on", "off"] = Field(
        "auto",
        description="infer each camera's picture on an input of its own shape (sides multiples of 32 within"
        " the model's size) rather than padded to the model's square: a 4:3 picture costs 23% less, 16:9 38%;"
        " auto: on for the CPU when the model runs at other sizes",
    )
    workers: int | None = Field(
        None,
        ge=1,
        description="inference sessions run side by side, each with `threads` threads; default: 1 on a GPU,"
        " on a CPU one per core, at most 4",
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


class ZmqConfig(Strict):
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


class OutboxConfig(Strict):
    """Bounds of an at_least_once sink's durable outbox; beyond them the oldest go, counted and logged."""

    max_messages: int = Field(100_000, ge=1, description="most messages kept")
    max_mb: float = Field(256.0, gt=0, description="most megabytes of messages kept")
    max_age_s: PositiveSeconds = Field(7 * 86400.0, description="older messages are dropped")
    fsync: bool = Field(
        False, description="sync every write to the disk (survives power loss, not only a killed daemon)"
    )


class RetryConfig(Strict):
    """Capped exponential backoff between delivery attempts."""

    initial_s: PositiveSeconds = Field(0.5, description="first delay")
    max_s: PositiveSeconds = Field(30.0, description="longest delay")


class _SinkBase(Strict):
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


class TlsConfig(Strict):
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
    event_topic: str = Field("streamd/{camera}/events", description="topic of the events a camera sends here")
    state_topic: str | None = Field(
        "streamd/{camera}/{key}",
        description="retained topic of each line's totals and zone's occupancy ({key}: lines/<name>,"
        " zones/<name>), for cameras that send events here; null: none",
    )
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

    @model_validator(mode="before")
    @classmethod
    def _tls_is_not_empty(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tls" in data and data["tls"] is None:
            raise ValueError(
                "tls: is empty, which would leave TLS off; write `tls: {}` for TLS with the system's"
                " CA certificates, or remove the key for no TLS"
            )
        return data

    @field_validator("topic", "event_topic", "state_topic")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(camera="c", key="k", client_id="i")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"unknown placeholder {exc}; use {{camera}} (and {{key}} in state_topic)"
                ) from exc
        return value

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
        problem = check_host_port(value, ("http", "https"))
        if problem is not None:
            raise ValueError(problem)
        return value


SinkConfig = Annotated[MqttSinkConfig | WebhookSinkConfig, Field(discriminator="type")]


class SnapshotStoreConfig(Strict):
    """Where event snapshots go (state_dir/snapshots) and how much of the disk they may take."""

    max_mb: float = Field(256.0, gt=0, description="most megabytes of snapshots kept; the oldest go first")
    queue_size: int = Field(
        8,
        ge=1,
        description="snapshots waiting to be encoded; beyond it one is skipped and counted, never waited for",
    )


class LogConfig(Strict):
    """How the daemon logs."""

    level: Literal["debug", "info", "warning", "error"] = Field("info", description="lowest level logged")
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="json lines, key=value console lines, or auto (console on a terminal)"
    )


class PreviewConfig(Strict):
    """The live view: annotated pictures drawn only while someone watches, at a capped rate and size."""

    fps: float = Field(5.0, gt=0, le=30, description="pictures a second per watched camera, at most")
    max_width: int = Field(960, ge=160, le=3840, description="pictures are scaled down to this width")
    quality: int = Field(70, ge=10, le=100, description="JPEG quality")
    max_viewers: int = Field(
        8, ge=1, le=256, description="MJPEG streams served at once (all cameras); more are answered 503"
    )
    stream_timeout_s: PositiveSeconds = Field(
        5.0, description="a viewer that takes no picture for this long is disconnected (slow or gone)"
    )


class HttpConfig(Strict):
    """The HTTP server: health, metrics, status, and the live view (read-only)."""

    listen: str | None = Field(
        "127.0.0.1:9771",
        description="HOST:PORT to listen on ([::1]:PORT for IPv6); loopback by default; null turns it off",
    )
    max_connections: int = Field(
        32, ge=1, le=1024, description="connections served at once; more are answered 503 at once"
    )
    request_timeout_s: PositiveSeconds = Field(
        10.0,
        description="a request must arrive whole within this time, and each read and write must progress",
    )
    auth: Literal["auto", "token", "none"] = Field(
        "auto",
        description="auto: a token is required unless listen is a loopback address; token: always;"
        " none: never (what the cameras see is then open to anyone who reaches the port)",
    )
    token_file: Path | None = Field(None, description="file holding the token (relative to streamd.yaml)")
    preview: PreviewConfig = Field(default_factory=PreviewConfig, description="the live view")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value

    def needs_token(self) -> bool:
        """Whether requests must carry the token (every path but /healthz)."""
        if self.listen is None or self.auth == "none":
            return False
        return self.auth == "token" or not is_loopback(split_listen(self.listen)[0])


def is_loopback(host: str) -> bool:
    """Whether a listen host is reachable only from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


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


class DaemonConfig(Strict):
    """The daemon's file, ``streamd.yaml``."""

    cameras_dir: Path = Field(Path("cameras"), description="folder of camera files; relative to streamd.yaml")
    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="state: delivery outboxes, line counts, snapshots, TensorRT engines; default:"
        " $STATE_DIRECTORY (systemd's StateDirectory=, one per instance), else /var/lib/streamd",
    )
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
    snapshots: SnapshotStoreConfig = Field(
        default_factory=SnapshotStoreConfig, description="storage of the pictures attached to events"
    )
    strict_start: bool = Field(
        False,
        description="refuse to start when a camera file is invalid; by default the valid cameras start"
        " and the invalid ones are reported (log, /healthz, /v1/cameras)",
    )
    stall_timeout_s: PositiveSeconds = Field(
        10.0,
        description="a supervised thread (camera, worker, sink, HTTP) that makes no progress this long past"
        " its own timeouts is stuck: /healthz turns 503 and systemd's watchdog restarts streamd",
    )
