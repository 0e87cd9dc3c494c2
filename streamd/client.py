"""Receive streamd results in your own Python program.

from streamd.client import Subscriber

with Subscriber("tcp://127.0.0.1:5556", cameras=["entrance"]) as sub:
    for msg in sub:
        for det in msg.detections:
            print(msg.camera, msg.seq, det.track_id, det.class_name, det.bbox)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import zmq
from zmq.utils.monitor import recv_monitor_message

__all__ = ["Detection", "FrameMessage", "Latency", "Subscriber", "parse_frame"]


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


def parse_frame(data: bytes | dict[str, Any]) -> FrameMessage:
    """A FrameMessage from JSON bytes or an already decoded dict."""
    raw: dict[str, Any] = orjson.loads(data) if isinstance(data, bytes | bytearray | memoryview) else data
    if not str(raw.get("schema", "")).startswith("streamd.frame/1"):
        raise ValueError(f"not a streamd.frame/1 message: schema={raw.get('schema')!r}")
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
    ) -> None:
        self.endpoint = endpoint
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        if "[" in endpoint:
            self._socket.setsockopt(zmq.IPV6, 1)
        self._topics = {f"streamd/{c}".encode() for c in cameras} if cameras else None
        # ZeroMQ filters by prefix, so "streamd/door" would also pass "streamd/door2";
        # the exact topic is checked again on receipt.
        for prefix in self._topics or {b"streamd/"}:
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
        """The next message of a wanted camera, or None after ``timeout_s``."""
        got = self.recv_raw(timeout_s)
        return None if got is None else parse_frame(got[1])

    def __iter__(self) -> Iterator[FrameMessage]:
        while True:
            msg = self.recv()
            if msg is not None:
                yield msg
