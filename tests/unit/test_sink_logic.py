"""Sink logic without a network: per-camera filters, the outbox's order and bounds, signatures."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import supervision as sv

from streamd.config import CameraSinkConfig, OutboxConfig
from streamd.sinks.base import CameraFilter
from streamd.sinks.outbox import Outbox
from streamd.sinks.webhook import sign
from streamd.types import FrameResult, Timings


def result(seq: int, track_ids: list[int], camera: str = "door") -> FrameResult:
    n = len(track_ids)
    dets = sv.Detections(
        xyxy=np.zeros((n, 4), np.float32), confidence=np.ones(n, np.float32), class_id=np.zeros(n, int),
        tracker_id=np.array(track_ids, int), data={"class_name": np.array(["person"] * n)},
    )  # fmt: skip
    return FrameResult(camera, seq, 1000.0 + seq / 10, 640, 480, dets, Timings(0, 0, 0, 0, 0), float(seq))


def test_send_all_detections_and_changes():
    frames = [result(0, []), result(1, [1]), result(2, [1]), result(3, [1, 2]), result(4, [2]), result(5, [])]
    admitted = {}
    for send in ("all", "detections", "changes"):
        filt = CameraFilter(CameraSinkConfig(name="s", send=send))
        admitted[send] = [f.seq for f in frames if filt.admit(f, now=f.seq)]
    assert admitted["all"] == [0, 1, 2, 3, 4, 5]
    assert admitted["detections"] == [1, 2, 3, 4]
    assert admitted["changes"] == [0, 1, 3, 4, 5]


def test_max_rate_keeps_the_newest_and_releases_it_when_due():
    filt = CameraFilter(CameraSinkConfig(name="s", max_rate=2))  # one every 0.5 s
    assert filt.admit(result(0, [1]), now=0.0)
    assert not filt.admit(result(1, [1]), now=0.1)
    assert not filt.admit(result(2, [1]), now=0.2)  # replaces seq 1: newest wins
    assert filt.due(now=0.3) is None
    assert filt.next_due() == 0.5
    released = filt.due(now=0.5)
    assert released is not None
    assert released.seq == 2
    assert filt.due(now=2.0) is None


def test_outbox_keeps_order_across_reopen_and_removes_only_acknowledged(tmp_path):
    path = tmp_path / "o.sqlite"
    box = Outbox(path, OutboxConfig())
    box.add([("a", b"1"), ("b", b"2"), ("a", b"3")])
    first = box.peek(0, 2)
    box.remove([first[0].id])
    box.close()
    again = Outbox(path, OutboxConfig())
    assert [(r.camera, r.payload) for r in again.peek(0, 10)] == [("b", b"2"), ("a", b"3")]
    assert again.count == 2
    assert again.bytes == 2


def test_outbox_bounds_drop_the_oldest_and_say_how_many(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", OutboxConfig(max_messages=3, max_age_s=60))
    assert box.add([("a", b"%d" % i) for i in range(5)], now=1000.0) == 2
    assert [r.payload for r in box.peek(0, 10)] == [b"2", b"3", b"4"]
    assert box.add([("a", b"new")], now=1100.0) == 3  # the rest are older than 60 s
    assert [r.payload for r in box.peek(0, 10)] == [b"new"]
    assert box.count == 1


def test_signature_is_hmac_sha256_of_the_body():
    body = b'{"camera": "door"}'
    expected = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert sign(b"k3y", body) == f"sha256={expected}"
