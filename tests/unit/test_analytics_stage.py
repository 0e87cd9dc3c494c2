"""A camera's analytics stage over synthetic tracks: events, counts that persist, resets, id switches."""

from __future__ import annotations

from datetime import datetime

import av
import jsonschema
import numpy as np
import pytest
import supervision as sv

from streamd.analytics.counts import CountsStore, next_reset
from streamd.analytics.events import load_event_schema
from streamd.analytics.stage import CameraAnalytics
from streamd.config import CameraConfig
from streamd.types import Frame

W, H = 800, 600
PICTURE = av.VideoFrame.from_ndarray(np.zeros((H, W, 3), np.uint8), format="bgr24")


def camera(**overrides) -> CameraConfig:
    body = {
        "id": "door",
        "url": "rtsp://127.0.0.1/x",
        "lines": {"door": {"points": [[0.5, 0.1], [0.5, 0.9]], "min_hold_s": 0.2}},
        "zones": {
            "hall": {
                "polygon": [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]],
                "enter_s": 0.2,
                "exit_s": 0.2,
            }
        },
        **overrides,
    }
    return CameraConfig.model_validate(body)


class Feed:
    """Frames at 10 fps of tracks whose feet are at given normalized points."""

    def __init__(self, analytics: CameraAnalytics, t0: float = 1000.0) -> None:
        self.analytics = analytics
        self.t = t0
        self.seq = 0
        self.events: list = []
        self.states: list = []

    def frame(self, tracks: dict[int, tuple[float, float]], cls: str = "person") -> list:
        ids = list(tracks)
        boxes = np.array(
            [[x * W - 10, y * H - 40, x * W + 10, y * H] for x, y in tracks.values()], np.float32
        )
        dets = sv.Detections(
            xyxy=boxes.reshape(-1, 4),
            confidence=np.full(len(ids), 0.9, np.float32),
            class_id=np.zeros(len(ids), int),
            tracker_id=np.array(ids, int),
            data={"class_name": np.array([cls] * len(ids))},
        )
        frame = Frame("door", self.seq, 1_763_800_000.0 + self.t, self.t, 0.0, self.t, PICTURE)
        events, states = self.analytics.update(frame, dets)
        self.events += events
        self.states += states
        self.t += 0.1
        self.seq += 1
        return list(events)

    def walk(self, track: int, x0: float, x1: float, steps: int = 20, y: float = 0.5) -> None:
        for i in range(steps):
            self.frame({track: (x0 + (x1 - x0) * i / (steps - 1), y)})

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def analytics(tmp_path, cfg: CameraConfig | None = None) -> tuple[CameraAnalytics, CountsStore]:
    store = CountsStore(tmp_path / "counts")
    cfg = cfg or camera()
    return CameraAnalytics(cfg, {}, store.open(cfg.id)), store


def test_a_walk_through_the_door_makes_schema_valid_events_in_order(tmp_path):
    feed = Feed(analytics(tmp_path)[0])
    feed.walk(7, 0.8, 0.2)  # right to left: "in" for a line drawn top to bottom; into the hall
    for _ in range(int(1.5 / 0.1)):  # the track is then lost: after lost_track_s it ends
        feed.frame({})
    schema = load_event_schema()
    for event in feed.events:
        jsonschema.validate(event.message(), schema)
    assert feed.types() == ["track.start", "line.cross", "zone.enter", "zone.exit", "track.end"]
    cross = feed.events[1].message()
    assert (cross["line"], cross["direction"], cross["counts"], cross["track_id"]) == (
        "door",
        "in",
        {"in": 1, "out": 0},
        7,
    )
    assert cross["class_counts"] == {"person": {"in": 1, "out": 0}}
    enter, leave = feed.events[2].message(), feed.events[3].message()
    assert enter["occupancy"] == 1 and leave["occupancy"] == 0 and leave["dwell_s"] > 0
    end = feed.events[4].message()
    assert (
        end["lines"] == {"door": ["in"]}
        and end["zones"] == ["hall"]
        and end["duration_s"] == pytest.approx(1.9)
    )
    assert len({e.event_id for e in feed.events}) == 5
    # The crossing's time is interpolated between the observations on each side of the line.
    assert cross["ts"] == pytest.approx(1_763_800_000.0 + 1000.0 + 0.95, abs=0.06)
    assert [s.key for s in feed.states[:2]] == ["lines/door", "zones/hall"]


def test_line_totals_survive_a_restart(tmp_path):
    first, store = analytics(tmp_path)
    feed = Feed(first)
    feed.walk(1, 0.8, 0.2)
    feed.walk(2, 0.2, 0.8)
    store.flush()
    again, _ = analytics(tmp_path)
    feed = Feed(again, t0=2000.0)
    feed.walk(3, 0.8, 0.2)
    (cross,) = [e.message() for e in feed.events if e.type == "line.cross"]
    assert cross["counts"] == {"in": 2, "out": 1}
    assert again.view()["lines"]["door"]["in"] == 2


def test_moving_a_line_resets_its_totals_and_says_so(tmp_path):
    first, store = analytics(tmp_path)
    Feed(first).walk(1, 0.8, 0.2)
    store.flush()
    moved = camera(lines={"door": {"points": [[0.4, 0.1], [0.4, 0.9]], "min_hold_s": 0.2}})
    again, _ = analytics(tmp_path, moved)
    feed = Feed(again, t0=2000.0)
    feed.frame({})
    (reset,) = [e.message() for e in feed.events]
    assert reset["type"] == "line.reset" and reset["reason"] == "geometry"
    assert reset["previous"]["in"] == 1 and reset["counts"] == {"in": 0, "out": 0}
    jsonschema.validate(reset, load_event_schema())


def test_a_reload_that_keeps_the_points_keeps_the_totals(tmp_path):
    stage, _ = analytics(tmp_path)
    feed = Feed(stage)
    feed.walk(1, 0.8, 0.2)
    stage.reconfigure(camera(lines={"door": {"points": [[0.5, 0.1], [0.5, 0.9]], "min_hold_s": 0.5}}), {})
    feed.walk(2, 0.8, 0.2)
    crossings = [e.message()["counts"] for e in feed.events if e.type == "line.cross"]
    assert crossings == [{"in": 1, "out": 0}, {"in": 2, "out": 0}]


def test_a_scheduled_reset_comes_at_local_midnight_and_at_the_hour():
    noon = datetime(2026, 11, 23, 12, 30).timestamp()
    assert datetime.fromtimestamp(next_reset(noon, "daily", "00:00")) == datetime(2026, 11, 24, 0, 0)
    assert datetime.fromtimestamp(next_reset(noon, "daily", "18:15")) == datetime(2026, 11, 23, 18, 15)
    assert datetime.fromtimestamp(next_reset(noon, "hourly", "00:00")) == datetime(2026, 11, 23, 13, 0)
    assert next_reset(noon, "never", "00:00") is None


def test_totals_reset_when_the_schedule_comes(tmp_path):
    stage, _ = analytics(
        tmp_path,
        camera(lines={"door": {"points": [[0.5, 0.1], [0.5, 0.9]], "reset": "hourly", "min_hold_s": 0.2}}),
    )
    feed = Feed(stage)
    feed.walk(1, 0.8, 0.2)
    line = stage._lines["door"]
    line.next_reset = 1_763_800_000.0 + feed.t - 1  # the hour has come, by the scene's clock
    feed.frame({})
    reset = [e.message() for e in feed.events if e.type == "line.reset"]
    assert len(reset) == 1 and reset[0]["reason"] == "schedule" and reset[0]["previous"]["in"] == 1
    assert stage.view()["lines"]["door"]["in"] == 0


def test_a_new_id_where_a_lost_track_was_headed_continues_it(tmp_path):
    feed = Feed(analytics(tmp_path)[0])
    for i in range(8):  # track 1 walks left towards the line and is lost just before it...
        feed.frame({1: (0.8 - 0.03 * i, 0.5)})
    feed.frame({})
    for i in range(10, 20):  # ...and the tracker finds it again as track 2, where it was headed
        feed.frame({2: (0.8 - 0.03 * i, 0.5)})
    types = feed.types()
    assert types.count("line.cross") == 1
    start2 = next(e for e in feed.events if e.type == "track.start" and e.track_id == 2).message()
    end1 = next(e for e in feed.events if e.type == "track.end" and e.track_id == 1).message()
    assert start2["continues"] == 1 and end1["continued_by"] == 2


def test_someone_new_far_away_is_not_a_continuation(tmp_path):
    feed = Feed(analytics(tmp_path)[0])
    feed.walk(1, 0.9, 0.7, steps=5)
    feed.frame({2: (0.1, 0.2)})  # appears at once, elsewhere
    start2 = next(e for e in feed.events if e.type == "track.start" and e.track_id == 2).message()
    assert "continues" not in start2


def test_without_tracking_there_are_no_events(tmp_path):
    stage, _ = analytics(tmp_path)
    dets = sv.Detections(xyxy=np.array([[0, 0, 10, 10]], np.float32), class_id=np.array([0]))
    frame = Frame("door", 0, 1.0, 1.0, 0.0, 1.0, PICTURE)
    assert stage.update(frame, dets) == ((), ())
