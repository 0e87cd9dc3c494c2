"""The streamd.frame/1 message: fixed field names, valid against the shipped schema, parsed by the client."""

from __future__ import annotations

import jsonschema
import numpy as np
import orjson
import pytest
import supervision as sv

import streamd
from streamd.client import parse_frame
from streamd.message import encode_frame, frame_message, load_schema, topic
from streamd.types import FrameResult, Timings


def result(tracked: bool = True) -> FrameResult:
    dets = sv.Detections(
        xyxy=np.array([[10.04, 20.0, 30.0, 40.0], [1, 2, 3, 4]], np.float32),
        confidence=np.array([0.8765, 0.5], np.float32),
        class_id=np.array([0, 2]),
        tracker_id=np.array([7, 9]) if tracked else None,
        data={"class_name": np.array(["person", "car"])},
    )
    return FrameResult(
        camera="entrance", seq=12, ts=1763800000.1234, width=768, height=576, detections=dets,
        timings=Timings(decode=0.002, wait=0.0001, infer=0.015, track=0.001, total=0.02), t_capture=1.0,
    )  # fmt: skip


def test_message_has_the_contract_fields_and_validates_against_the_schema():
    msg = orjson.loads(encode_frame(result()))
    jsonschema.validate(msg, load_schema())
    assert msg["schema"] == "streamd.frame/1"
    assert msg["camera"] == "entrance"
    assert msg["seq"] == 12
    assert set(msg["latency_ms"]) == {"decode", "wait", "infer", "track", "queue", "total"}
    assert msg["latency_ms"]["infer"] == 15.0
    assert msg["detections"][0] == {
        "track_id": 7, "class_id": 0, "class_name": "person", "confidence": 0.877, "bbox": [10.0, 20.0, 30.0, 40.0],
    }  # fmt: skip


def test_total_latency_includes_the_time_in_the_sinks_queue():
    # Tracked 20 ms after capture (t_capture 1.0), encoded by the sink 45 ms after capture.
    latency = frame_message(result(), now=1.045)["latency_ms"]
    assert latency["total"] == 45.0
    assert latency["queue"] == 25.0


def test_untracked_detections_carry_a_null_track_id():
    msg = orjson.loads(encode_frame(result(tracked=False)))
    jsonschema.validate(msg, load_schema())
    assert [d["track_id"] for d in msg["detections"]] == [None, None]


def test_client_parses_into_typed_objects():
    parsed = parse_frame(orjson.dumps(frame_message(result(), now=1.02)))
    assert parsed.camera == "entrance"
    assert parsed.detections[1].class_name == "car"
    assert parsed.detections[1].bbox == (1.0, 2.0, 3.0, 4.0)
    assert parsed.latency_ms.total == 20.0
    with pytest.raises(ValueError, match="not a streamd.frame/1"):
        parse_frame(b'{"schema": "other/1"}')


def test_topic_is_streamd_slash_camera():
    assert topic("entrance") == b"streamd/entrance"


def test_public_surface_is_pinned():
    assert sorted(streamd.__all__) == sorted([
        "ConfigError", "Frame", "FrameResult", "ModelError", "SourceError", "StreamdError", "Timings", "__version__",
    ])  # fmt: skip
