"""Receive streamd results in your own Python program.

from streamd.client import EventMessage, Subscriber

with Subscriber("tcp://127.0.0.1:5556", cameras=["entrance"]) as sub:
    for msg in sub:
        for det in msg.detections:
            print(msg.camera, msg.seq, det.track_id, det.class_name, det.bbox)

with Subscriber(cameras=["entrance"], frames=False, events=True) as sub:
    for event in sub:  # EventMessage
        if event.type == "line.cross":
            print(event.line, event.direction, event.counts)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import zmq
from zmq.utils.monitor import recv_monitor_message

__all__ = [
    "Counts",
    "Detection",
    "EventMessage",
    "FrameMessage",
    "Latency",
    "Subscriber",
    "parse_event",
    "parse_frame",
    "parse_message",
]

_FRAME_PREFIX = "streamd/"
_EVENT_PREFIX = "streamd.event/"


@dataclass(frozen=True, slots=True)
class Detection:
    track_id: int | None
    class_id: int
    class_name: str
    confidence: float
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in source pixels


@dataclass(frozen=True, slots=True)
class Latency:
    decode: float
    wait: float
    infer: float
    track: float
    total: float
    queue: float = 0.0  # in the sink's queue (messages of streamd 0.1 lack it)


@dataclass(frozen=True, slots=True)
class FrameMessage:
    """One ``streamd.frame/1`` message."""

    schema: str
    camera: str
    seq: int
    ts: float
    width: int
    height: int
    latency_ms: Latency
    detections: tuple[Detection, ...]
    raw: dict[str, Any]  # the decoded JSON, including fields added after this client


def _decoded(data: bytes | dict[str, Any], schema: str) -> dict[str, Any]:
    """The message as a dict, checked to be of ``schema`` (ValueError otherwise)."""
    raw: dict[str, Any] = orjson.loads(data) if isinstance(data, bytes | bytearray | memoryview) else data
    if not str(raw.get("schema", "")).startswith(schema):
        raise ValueError(f"not a {schema} message: schema={raw.get('schema')!r}")
    return raw


def parse_frame(data: bytes | dict[str, Any]) -> FrameMessage:
    """A FrameMessage from JSON bytes or an already decoded dict."""
    raw = _decoded(data, "streamd.frame/1")
    lat = raw["latency_ms"]
    return FrameMessage(
        schema=raw["schema"],
        camera=raw["camera"],
        seq=raw["seq"],
        ts=raw["ts"],
        width=raw["width"],
        height=raw["height"],
        latency_ms=Latency(
            lat["decode"], lat["wait"], lat["infer"], lat["track"], lat["total"], lat.get("queue", 0.0)
        ),
        detections=tuple(
            Detection(d["track_id"], d["class_id"], d["class_name"], d["confidence"], tuple(d["bbox"]))
            for d in raw["detections"]
        ),
        raw=raw,
    )


@dataclass(frozen=True, slots=True)
class Counts:
    """A line's totals."""

    inward: int
    outward: int


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One ``streamd.event/1`` message; the fields of other types than its own are None."""

    schema: str
    event_id: str
    camera: str
    type: str  # line.cross, line.reset, zone.enter, zone.exit, zone.loiter, track.start, track.end
    ts: float
    track_id: int | None
    class_name: str | None
    line: str | None
    direction: str | None  # in, out
    counts: Counts | None  # line.cross, line.reset: the line's totals after it
    zone: str | None
    occupancy: int | None  # zone.*: after it
    dwell_s: float | None
    snapshot: dict[str, str] | None  # paths of JPEGs on the daemon's HTTP server
    raw: dict[str, Any]  # the decoded JSON, including fields added after this client


def parse_event(data: bytes | dict[str, Any]) -> EventMessage:
    """An EventMessage from JSON bytes or an already decoded dict."""
    raw = _decoded(data, "streamd.event/1")
    counts = raw.get("counts")
    return EventMessage(
        schema=raw["schema"],
        event_id=raw["event_id"],
        camera=raw["camera"],
        type=raw["type"],
        ts=raw["ts"],
        track_id=raw.get("track_id"),
        class_name=raw.get("class_name"),
        line=raw.get("line"),
        direction=raw.get("direction"),
        counts=Counts(counts["in"], counts["out"]) if counts else None,
        zone=raw.get("zone"),
        occupancy=raw.get("occupancy"),
        dwell_s=raw.get("dwell_s"),
        snapshot=raw.get("snapshot"),
        raw=raw,
    )


def parse_message(topic: str, data: bytes) -> FrameMessage | EventMessage:
    """A frame or an event, by the ZeroMQ topic it came on."""
    return parse_event(data) if topic.startswith(_EVENT_PREFIX) else parse_frame(data)


class Subscriber:
    """A ZeroMQ SUB socket on a streamd endpoint, optionally limited to some cameras.

    ValueError when the endpoint is not one ZeroMQ understands. ZeroMQ connects in the
    background and retries forever; ``wait_connected`` tells whether anything is
    listening.
    """

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5556",
        cameras: Iterable[str] | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        *,
        frames: bool = True,
        events: bool = False,
    ) -> None:
        self.endpoint = endpoint
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        if "[" in endpoint:
            self._socket.setsockopt(zmq.IPV6, 1)
        prefixes = [p for p, wanted in ((_FRAME_PREFIX, frames), (_EVENT_PREFIX, events)) if wanted]
        if not prefixes:
            raise ValueError("subscribe to frames, events or both")
        self._topics = {f"{p}{c}".encode() for p in prefixes for c in cameras} if cameras else None
        # ZeroMQ filters by prefix, so "streamd/door" would also pass "streamd/door2";
        # the exact topic is checked again on receipt.
        for prefix in self._topics or {p.encode() for p in prefixes}:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix)
        self._monitor: zmq.Socket[bytes] | None = self._socket.get_monitor_socket(zmq.EVENT_CONNECTED)
        self._connected = False
        try:
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise ValueError(
                f"invalid endpoint {endpoint!r}: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
                f" ({exc.strerror})"
            ) from exc

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
        self._socket.close(linger=0)

    def wait_connected(self, timeout_s: float) -> bool:
        """Whether a publisher accepted the connection within ``timeout_s`` (True once it has)."""
        deadline = time.monotonic() + timeout_s
        while not self._connected and self._monitor is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._monitor.poll(max(1, int(remaining * 1000))):
                return False
            if recv_monitor_message(self._monitor)["event"] == zmq.EVENT_CONNECTED:
                self._connected = True
        return self._connected

    def recv_raw(self, timeout_s: float | None = None) -> tuple[str, bytes] | None:
        """The next (topic, JSON bytes) of a wanted camera, or None once ``timeout_s`` has passed.

        The timeout holds whatever else arrives meanwhile (other cameras that share the
        topic prefix are skipped without extending it).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            poll_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if not self._socket.poll(poll_ms):
                return None
            parts = self._socket.recv_multipart()
            if len(parts) == 2 and (self._topics is None or parts[0] in self._topics):
                return parts[0].decode(), parts[1]
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def recv(self, timeout_s: float | None = None) -> FrameMessage | None:
        """The next frame message of a wanted camera, or None after ``timeout_s`` (events are skipped)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            got = self.recv_any(remaining)
            if got is None or isinstance(got, FrameMessage):
                return got

    def recv_any(self, timeout_s: float | None = None) -> FrameMessage | EventMessage | None:
        """The next frame or event of a wanted camera, or None after ``timeout_s``."""
        got = self.recv_raw(timeout_s)
        return None if got is None else parse_message(*got)

    def __iter__(self) -> Iterator[FrameMessage | EventMessage]:
        """Frames (FrameMessage) and, when subscribed, events (EventMessage), as they come."""
        while True:
            msg = self.recv_any()
            if msg is not None:
                yield msg

    def frames(self) -> Iterator[FrameMessage]:
        """Frames only, as they come."""
        for msg in self:
            if isinstance(msg, FrameMessage):
                yield msg

    def events(self) -> Iterator[EventMessage]:
        """Events only, as they come (subscribe with ``events=True``)."""
        for msg in self:
            if isinstance(msg, EventMessage):
                yield msg
