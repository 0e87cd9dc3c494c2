"""Events through the real daemon on the real video: lines, zones, tracks, counts, snapshots, sinks."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import jsonschema
import numpy as np
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families
from trackers.eval.box import box_iou
from trackers.eval.identity import compute_identity_metrics

from streamd.analytics.events import load_event_schema
from streamd.client import EventMessage, FrameMessage, Subscriber
from tests.helpers import MODEL, VIDEO, Daemon, collect, free_port, wait_for, write_config
from tests.servers import Mosquitto, WebhookServer

pytestmark = pytest.mark.e2e

# A line across the path and a zone over its right part (docs/events.md shows them on a frame).
LINES = {"middle": {"points": [[0.45, 0.25], [0.45, 0.75]]}}
ZONES = {"right": {"polygon": [[0.62, 0.35], [0.98, 0.35], [0.98, 0.72], [0.62, 0.72]]}}
CLIP_FRAMES = 400


def events_until_done(sub: Subscriber, daemon: Daemon, camera: str, seconds: float) -> list[dict[str, Any]]:
    """Events of a non-looping camera until it has processed the whole clip and stopped.

    ``sub`` takes frames too: every frame of the clip must arrive, the first included, so
    a subscriber connected before the daemon starts misses none of its results.
    """
    events: list[dict[str, Any]] = []
    seqs: list[int] = []
    deadline = time.monotonic() + seconds
    last_check = 0.0
    while time.monotonic() < deadline:
        msg = sub.recv_any(timeout_s=0.5)
        if isinstance(msg, EventMessage):
            events.append(msg.raw)
        elif msg is not None:
            seqs.append(msg.seq)
        if time.monotonic() - last_check > 1.0:
            last_check = time.monotonic()
            code, body = daemon.get("/v1/cameras")
            if code != 200:  # not listening yet
                continue
            status = {c["id"]: c for c in json.loads(body)["cameras"]}
            if status[camera]["state"] == "stopped" and status[camera]["processed"] == CLIP_FRAMES:
                for m in iter(lambda: sub.recv_any(timeout_s=0.5), None):
                    if isinstance(m, EventMessage):
                        events.append(m.raw)
                    else:
                        seqs.append(m.seq)
                assert seqs == list(range(CLIP_FRAMES)), (
                    f"frames missed: {sorted(set(range(CLIP_FRAMES)) - set(seqs))[:20]}"
                )
                return events
    raise AssertionError(
        f"camera {camera} did not finish in {seconds} s; {daemon.log_path.read_text()[-2000:]}"
    )


def line_totals(path: Path) -> dict[str, int] | None:
    """The middle line's in and out totals as the counts file holds them (None before it exists)."""
    try:
        line = json.loads(path.read_text())["lines"]["middle"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None
    return {"in": sum(line["in"].values()), "out": sum(line["out"].values())}


def check_consistency(events: list[dict[str, Any]], start: dict[str, int] | None = None) -> dict[str, int]:
    """Each crossing adds exactly one to its direction; zone visits alternate (a continuing id carries
    on the lost one's); occupancy never negative."""
    schema = load_event_schema()
    totals = dict(start or {"in": 0, "out": 0})
    inside: dict[int, bool] = defaultdict(bool)
    occupancy = 0
    started: set[int] = set()
    for event in events:
        jsonschema.validate(event, schema)
        track = event["track_id"]
        if event["type"] == "track.start":
            started.add(track)
            if event.get("continues") is not None:  # the new id takes over the lost one's zone state
                inside[track] = inside.pop(event["continues"], False)
        elif event["type"] == "line.cross":
            totals[event["direction"]] += 1
            assert event["counts"] == totals, (event, totals)
        elif event["type"] == "zone.enter":
            assert not inside[track], f"track {track} entered twice without leaving"
            inside[track] = True
            occupancy += 1
            assert event["occupancy"] == occupancy
        elif event["type"] == "zone.exit":
            assert inside[track], f"track {track} left without entering"
            inside[track] = False
            occupancy -= 1
            assert event["occupancy"] == occupancy >= 0
        if track is not None and event["type"] != "track.start":
            assert track in started or event.get("continues"), f"an event of track {track} before its start"
    return {**totals, "occupancy": occupancy}


class Retained:
    """An MQTT subscriber that keeps the newest message of each topic (retained ones included)."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._lock:
            body = json.loads(msg.payload)
            if msg.topic.endswith("/events"):
                self.events.append(body)
            else:
                self.messages[msg.topic] = body

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_events_counts_snapshots_and_sinks_through_the_daemon_and_a_restart(tmp_path, clip40):
    broker = Mosquitto(tmp_path / "broker").start()
    hook = WebhookServer(mode="fail").start()  # down: events wait in the outbox
    port = free_port()
    sinks = {
        "hook": {
            "type": "webhook",
            "url": hook.url,
            "delivery": "at_least_once",
            "retry": {"initial_s": 0.2, "max_s": 0.5},
        },
        "broker": {
            "type": "mqtt",
            "port": broker.port,
            "delivery": "at_least_once",
            "client_id": "streamd-events",
        },
    }
    camera = {
        "url": str(clip40),
        "source": {"realtime": False, "loop": False},
        "classes": ["person"],
        "lines": LINES,
        "zones": ZONES,
        "snapshots": {"events": ["line.cross"]},
        "sinks": [
            {"name": "hook", "send": "none", "events": ["line.cross", "zone.enter", "zone.exit"]},
            {"name": "broker", "send": "none", "events": True},
        ],
    }
    config = write_config(tmp_path, {"walk": camera}, port, sinks=sinks)
    daemon = Daemon(config)
    sub = Subscriber(f"tcp://127.0.0.1:{port}", events=True)
    try:
        first = events_until_done(sub, daemon, "walk", 90)
        end = check_consistency(first)
        crossings = [e for e in first if e["type"] == "line.cross"]
        assert end["in"] + end["out"] >= 10, end  # 13 people cross the middle in these 40 s
        assert sum(e["type"] == "zone.enter" for e in first) >= 10
        assert {"track.start", "track.end", "zone.exit"} <= {e["type"] for e in first}
        counts = daemon.get_json("/v1/cameras/walk/counts")
        assert (counts["lines"]["middle"]["in"], counts["lines"]["middle"]["out"]) == (end["in"], end["out"])
        assert counts["zones"]["right"]["occupancy"] == end["occupancy"]
        # Every crossing carries snapshots, served as JPEGs: the object a crop of the frame.
        shot = crossings[0]["snapshot"]
        code, obj = daemon.get(shot["object"])
        code2, frame = daemon.get(shot["frame"])
        assert code == code2 == 200
        obj_img = cv2.imdecode(np.frombuffer(obj, np.uint8), cv2.IMREAD_COLOR)
        frame_img = cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR)
        assert frame_img.shape == (576, 768, 3) and 10 < obj_img.shape[0] < 400 and obj_img.shape[1] < 200
        assert daemon.get("/v1/cameras/walk/snapshots/..%2Fstreamd.yaml")[0] == 404
        # Prometheus counts what the events counted.
        _, body = daemon.get("/metrics")
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body.decode())
            for s in f.samples
        }
        labels = (("camera", "walk"), ("class", "person"), ("direction", "in"), ("line", "middle"))
        assert samples[("streamd_line_crossings_total", labels)] == end["in"]
        assert (
            "streamd_zone_dwell_seconds_count",
            (("camera", "walk"), ("class", "person"), ("zone", "right")),
        ) in samples
        # Totals are written within a second of changing: once written, a kill loses none of them.
        state = tmp_path / "state" / "counts" / "walk.json"
        assert wait_for(lambda: line_totals(state) == {"in": end["in"], "out": end["out"]}, 5)
        daemon.proc.send_signal(signal.SIGKILL)  # the webhook never got anything: all in the outbox
        daemon.proc.wait(10)
        assert hook.accepted == []
        hook.mode = "ok"

        # A dashboard that connects now sees each line's totals and zone's occupancy at once.
        late = Retained(broker.port, ["streamd/walk/lines/#", "streamd/walk/zones/#"])
        assert wait_for(lambda: len(late.messages) == 2, 10), late.messages
        line_state = late.messages["streamd/walk/lines/middle"]
        assert line_state["counts"] == {"in": end["in"], "out": end["out"]}
        assert late.messages["streamd/walk/zones/right"]["occupancy"] == end["occupancy"]
        late.close()

        # Restarted, the totals carry on, and the outbox delivers what the webhook missed.
        again = Daemon(config)
        second = events_until_done(sub, again, "walk", 90)
        check_consistency(second, start={"in": end["in"], "out": end["out"]})
        wanted = {e["event_id"] for e in first if e["type"] in ("line.cross", "zone.enter", "zone.exit")}
        assert wait_for(lambda: wanted <= {m["event_id"] for m in hook.messages()}, 20)
        assert all(m["schema"] == "streamd.event/1" for m in hook.messages())  # events only, no frames
        again.stop()
    finally:
        daemon.stop()
        sub.close()
        hook.stop()
        broker.stop()


def tracks_and_counts(messages: list[Any]) -> tuple[dict[str, dict[int, Any]], dict[str, dict[str, int]]]:
    tracks: dict[str, dict[int, Any]] = defaultdict(dict)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"in": 0, "out": 0, "enter": 0})
    for msg in messages:
        if isinstance(msg, FrameMessage):
            ids = np.array([d.track_id for d in msg.detections], int)
            boxes = np.array([d.bbox for d in msg.detections], np.float64).reshape(-1, 4)
            tracks[msg.camera][msg.seq] = (ids, boxes)
        elif msg.type == "line.cross":
            counts[msg.camera][msg.direction or ""] += 1
        elif msg.type == "zone.enter":
            counts[msg.camera]["enter"] += 1
    return tracks, counts


def run_cameras(tmp_path: Path, clip: Path, cameras: int, realtime: bool, seconds: float) -> list[Any]:
    port = free_port()
    camera = {
        "url": str(clip),
        "source": {"realtime": realtime, "loop": False},
        "classes": ["person"],
        "lines": LINES,
        "zones": ZONES,
    }
    config = write_config(
        tmp_path,
        {f"cam{i}": camera for i in range(cameras)},
        port,
        # The full square input: 8 paced cameras (80 frames/s) overload 2 cores with it, and
        # identities under drops is what this measures (fitted, 2 cores process them all).
        model={"path": str(MODEL), "family": "yolox", "fit_input": "off"},
        zmq={"endpoint": f"tcp://127.0.0.1:{port}", "send_hwm": 100000},
    )
    daemon = Daemon(config)
    sub = Subscriber(f"tcp://127.0.0.1:{port}", events=True)
    messages: list[Any] = []
    try:
        assert sub.wait_connected(30)
        deadline = time.monotonic() + seconds
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 5:
            msg = sub.recv_any(timeout_s=0.5)
            if msg is not None:
                messages.append(msg)
                quiet_since = time.monotonic()
    finally:
        daemon.stop()
        sub.close()
    return messages


@pytest.mark.alone
def test_eight_overloaded_cameras_count_like_one_and_keep_their_identities(tmp_path, clip40):
    alone_tracks, alone_counts = tracks_and_counts(run_cameras(tmp_path / "alone", clip40, 1, False, 90))
    many_tracks, many_counts = tracks_and_counts(run_cameras(tmp_path / "many", clip40, 8, True, 90))
    reference, counts = alone_tracks["cam0"], alone_counts["cam0"]
    assert (
        len(reference) >= CLIP_FRAMES - 10
    )  # replayed: every frame (but the first few, before ZeroMQ joins)
    shares = [len(many_tracks[f"cam{i}"]) / CLIP_FRAMES for i in range(8)]
    print(f"\nalone: {counts}; 8 cameras: {dict(many_counts)}; processed {min(shares):.2f}-{max(shares):.2f}")
    # Overloaded: frames were dropped (80 frames/s offered; 2 cores processed 0.69-0.90 of them as the
    # shared machine's speed swung).
    assert max(shares) < 0.95
    for i in range(8):
        # Two per kind: a crossing near the line lost to an id switch in a group, or counted twice.
        got = many_counts[f"cam{i}"]
        assert all(abs(got[k] - counts[k]) <= 2 for k in ("in", "out", "enter")), (i, got, counts)
    other = many_tracks["cam0"]
    common = sorted(reference.keys() & other.keys())
    sims = [
        box_iou(reference[s][1], other[s][1], box_format="xyxy")
        if len(reference[s][0]) and len(other[s][0])
        else np.zeros((len(reference[s][0]), len(other[s][0])))
        for s in common
    ]
    idf1 = compute_identity_metrics([reference[s][0] for s in common], [other[s][0] for s in common], sims)[
        "IDF1"
    ]
    print(f"IDF1 of camera 0 against the video alone: {idf1:.3f} on {len(common)} frames")
    # bench/identity.py measures the whole video: 0.926 (0.868 without colours, 0.735 before overlapping
    # tracks kept their velocity); this clip 0.927 (0.902). How many frames a slow moment of a shared
    # machine drops moves it: here 0.82-0.92 with 74% of frames processed, 0.92-0.98 with 84-86%
    # (bench/identity.py, 12 random drop patterns: the worst 0.82 keeping 60%, 0.875 keeping 66%).
    # The floor follows the share processed; tests/unit/test_appearance.py checks that colours decide a swap.
    assert idf1 >= (0.88 if min(shares) >= 0.8 else 0.8)


def test_a_reload_moves_a_line_without_reconnecting_the_camera(tmp_path):
    port = free_port()
    camera = {"url": str(VIDEO), "classes": ["person"], "lines": LINES}
    config = write_config(tmp_path, {"walk": camera}, port)
    daemon = Daemon(config)
    sub = Subscriber(f"tcp://127.0.0.1:{port}", events=True)
    try:
        before = collect(sub, 30, until=lambda got: len(got) >= 20)
        moved = {**camera, "lines": {"middle": {"points": [[0.4, 0.25], [0.4, 0.75]]}}, "zones": ZONES}
        (tmp_path / "cameras" / "walk.yaml").write_text(yaml.safe_dump(moved))
        daemon.proc.send_signal(signal.SIGHUP)
        got: list[Any] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
            isinstance(m, EventMessage) and m.type == "line.reset" for m in got
        ):
            msg = sub.recv_any(timeout_s=0.5)
            if msg is not None:
                got.append(msg)
        (reset,) = [m for m in got if isinstance(m, EventMessage) and m.type == "line.reset"]
        assert reset.raw["reason"] == "geometry" and reset.counts is not None and reset.counts.inward == 0
        assert wait_for(lambda: "right" in daemon.get_json("/v1/cameras/walk/counts")["zones"], 5)
        frames_after = [m.seq for m in got if isinstance(m, FrameMessage)]
        status = {c["id"]: c for c in daemon.get_json("/v1/cameras")["cameras"]}
        assert status["walk"]["reconnects"] == 0 and min(frames_after) > before[-1].seq  # the same stream
        last = [e for e in daemon.logs() if e.get("event") == "configuration reloaded"][-1]
        assert last["updated_in_place"] == ["walk"]
    finally:
        daemon.stop()
        sub.close()
