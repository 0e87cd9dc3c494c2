"""Receive streamd results in your own Python program.

from streamd.client import Subscriber

with Subscriber("tcp://127.0.0.1:5556", cameras=["entrance"]) as sub:
    for msg in sub:
        for det in msg.detections:
            print(msg.camera, msg.seq, det.track_id, det.class_name, det.bbox)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import zmq

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
        latency_ms=Latency(lat["decode"], lat["wait"], lat["infer"], lat["track"], lat["total"]),
        detections=tuple(
            Detection(d["track_id"], d["class_id"], d["class_name"], d["confidence"], tuple(d["bbox"]))
            for d in raw["detections"]
        ),
        raw=raw,
    )


class Subscriber:
    """A ZeroMQ SUB socket on a streamd endpoint, optionally limited to some cameras."""

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5556",
        cameras: Iterable[str] | None = None,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
    ) -> None:
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
        self._socket.connect(endpoint)

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._socket.close(linger=0)

    def recv_raw(self, timeout_s: float | None = None) -> tuple[str, bytes] | None:
        """The next (topic, JSON bytes) of a wanted camera, or None after ``timeout_s``."""
        poll_ms = None if timeout_s is None else max(0, int(timeout_s * 1000))
        while True:
            if not self._socket.poll(poll_ms):
                return None
            parts = self._socket.recv_multipart()
            if len(parts) != 2:
                continue
            topic, payload = parts
            if self._topics is None or topic in self._topics:
                return topic.decode(), payload

    def recv(self, timeout_s: float | None = None) -> FrameMessage | None:
        """The next message of a wanted camera, or None after ``timeout_s``."""
        got = self.recv_raw(timeout_s)
        return None if got is None else parse_frame(got[1])

    def __iter__(self) -> Iterator[FrameMessage]:
        while True:
            msg = self.recv()
            if msg is not None:
                yield msg
