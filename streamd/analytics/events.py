"""The ``streamd.event/1`` message, and the retained state of a line or zone (``streamd.state/1``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson

__all__ = ["EVENT_SCHEMA", "STATE_SCHEMA", "Event", "StateUpdate", "event_topic", "load_event_schema"]

EVENT_SCHEMA = "streamd.event/1"
STATE_SCHEMA = "streamd.state/1"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened on a camera: a line crossed, a zone entered, a track started..."""

    event_id: str  # unique, the same on every redelivery: <camera>-<capture ms>-<seq>-<n>
    camera: str
    type: str  # line.cross, line.reset, zone.enter, zone.exit, zone.loiter, track.start, track.end
    ts: float  # wall-clock time it happened (unix seconds)
    track_id: int | None
    class_name: str | None
    fields: dict[str, Any] = field(default_factory=dict)  # the type's own fields
    box: tuple[float, float, float, float] | None = None  # the object, for its snapshot (source pixels)

    def message(self) -> dict[str, Any]:
        """The message as plain JSON values; fixed fields first, then the type's."""
        return {
            "schema": EVENT_SCHEMA,
            "event_id": self.event_id,
            "camera": self.camera,
            "type": self.type,
            "ts": round(float(self.ts), 3),
            "track_id": self.track_id,
            "class_name": self.class_name,
            **self.fields,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.message())


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """The current value of a line's totals or a zone's occupancy (MQTT: a retained message)."""

    key: str  # "lines/<name>" or "zones/<name>"
    payload: bytes


def event_topic(camera: str) -> bytes:
    """ZeroMQ topic of a camera's events: ``streamd.event/<camera>``."""
    return f"streamd.event/{camera}".encode()


def load_event_schema() -> dict[str, Any]:
    """The JSON Schema of ``streamd.event/1`` shipped with the package."""
    text = resources.files("streamd").joinpath("schema/event-1.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
