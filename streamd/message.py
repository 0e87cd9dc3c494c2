"""The ``streamd.frame/1`` message: what every sink sends for a processed frame."""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import numpy as np
import orjson

from streamd.types import FrameResult

__all__ = ["SCHEMA", "encode_frame", "frame_message", "load_schema", "topic"]

SCHEMA = "streamd.frame/1"


def topic(camera: str) -> bytes:
    """ZeroMQ topic of a camera: ``streamd/<camera>``."""
    return f"streamd/{camera}".encode()


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def frame_message(result: FrameResult, now: float | None = None) -> dict[str, Any]:
    """The message as a dict of plain JSON values, its total latency measured at ``now`` (monotonic)."""
    det = result.detections
    n = len(det)
    if n:
        xyxy = np.round(det.xyxy.astype(np.float64), 1).tolist()
        conf = (
            np.round(det.confidence.astype(np.float64), 3).tolist()
            if det.confidence is not None
            else [None] * n
        )
        class_ids = det.class_id.tolist() if det.class_id is not None else [None] * n
        names = det.data.get("class_name")
        class_names = np.asarray(names).tolist() if names is not None else [None] * n
        track_ids = det.tracker_id.tolist() if det.tracker_id is not None else [None] * n
        detections = [
            {"track_id": tid, "class_id": cid, "class_name": name, "confidence": c, "bbox": box}
            for tid, cid, name, c, box in zip(track_ids, class_ids, class_names, conf, xyxy, strict=True)
        ]
    else:
        detections = []
    t = result.timings
    # Measured here, in the sink's thread, so that the sink's queue counts in the total.
    total = (time.monotonic() if now is None else now) - result.t_capture
    return {
        "schema": SCHEMA,
        "camera": result.camera,
        "seq": result.seq,
        "ts": round(result.ts, 3),
        "width": result.width,
        "height": result.height,
        "latency_ms": {
            "decode": _ms(t.decode),
            "wait": _ms(t.wait),
            "infer": _ms(t.infer),
            "track": _ms(t.track),
            "queue": _ms(max(0.0, total - t.total)),
            "total": _ms(total),
        },
        "detections": detections,
        # Stable for this frame across retries and restarts: receivers drop duplicates by it.
        "message_id": f"{result.camera}:{int(result.ts * 1000)}:{result.seq}",
    }


def encode_frame(result: FrameResult) -> bytes:
    """The message as UTF-8 JSON bytes."""
    return orjson.dumps(frame_message(result))


def load_schema() -> dict[str, Any]:
    """The JSON Schema of ``streamd.frame/1`` shipped with the package."""
    text = resources.files("streamd").joinpath("schema/frame-1.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
