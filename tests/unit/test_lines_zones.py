"""The line and zone state machines: jitter, drops, reversed time, resolutions, segment ends, id switches."""

from __future__ import annotations

import random

import numpy as np
import pytest

from streamd.analytics.geometry import anchor_points, crossing, inside_polygon, polygon_self_intersects
from streamd.analytics.lines import LineCrossings
from streamd.analytics.zones import ZoneOccupancy

# A vertical line at x = 0.5 drawn top to bottom: walking right to left is "in" (DESIGN.md).
A, B = (0.5, 0.2), (0.5, 0.8)


def line(**kwargs) -> LineCrossings:
    return LineCrossings(A, B, min_hold_s=kwargs.get("hold", 0.3), min_distance=kwargs.get("dist", 0.01),
                         once=kwargs.get("once", True))  # fmt: skip


def walk(x0: float, x1: float, y: float = 0.5, seconds: float = 4.0, fps: float = 10.0):
    """(t, (x, y)) observations of a walk from x0 to x1 at constant speed."""
    n = round(seconds * fps)
    return [(i / fps, (x0 + (x1 - x0) * i / (n - 1), y)) for i in range(n)]


def run(counter: LineCrossings, observations, track_id: int = 1) -> list[tuple[str, float]]:
    out = []
    for t, p in observations:
        c = counter.observe(track_id, p, t)
        if c is not None:
            out.append((c.direction, round(c.t, 3)))
    end = counter.end(track_id)
    if end is not None:
        out.append((end.direction, round(end.t, 3)))
    return out


def test_direction_follows_the_design_example():
    assert [d for d, _ in run(line(), walk(0.8, 0.2))] == ["in"]  # right to left
    assert [d for d, _ in run(line(), walk(0.2, 0.8))] == ["out"]


def test_jitter_inside_the_hysteresis_band_gives_no_crossing():
    rng = random.Random(3)
    obs = []
    for i in range(300):  # 30 s at 10 fps, resting on the line, jittering +-0.008 across it
        obs.append((i / 10, (0.5 + rng.uniform(-0.008, 0.008), 0.5)))
    assert run(line(), obs) == []


@pytest.mark.parametrize("drop", [0.0, 0.1, 0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", range(20))
def test_a_single_pass_with_random_drops_counts_exactly_once(drop, seed):
    rng = random.Random(seed)
    obs = walk(0.8, 0.2, seconds=3.0)
    kept = [o for i, o in enumerate(obs) if i in (0, len(obs) - 1) or rng.random() >= drop]
    crossings = run(line(), kept)
    assert [d for d, _ in crossings] == ["in"]
    assert crossings[0][1] == pytest.approx(1.5, abs=0.15)  # interpolated: the walk reaches x=0.5 at 1.5 s


def test_reversed_time_swaps_in_and_out():
    obs = walk(0.8, 0.2)
    reverse = [(t, p) for (t, _), (_, p) in zip(obs, reversed(obs), strict=True)]
    assert [d for d, _ in run(line(), obs)] == ["in"]
    assert [d for d, _ in run(line(), reverse)] == ["out"]


def test_the_same_path_at_another_resolution_gives_the_same_result():
    results = []
    for width, height in ((768, 576), (1920, 1080), (320, 240)):
        counter = line()
        out = []
        for i, (t, (x, y)) in enumerate(walk(0.8, 0.2)):
            box = np.array([[x * width - 10, y * height - 40, x * width + 10, y * height]])  # feet at (x, y)
            (p,) = anchor_points(box, "bottom_center", width, height)
            c = counter.observe(1, (float(p[0]), float(p[1])), t)
            if c is not None:
                out.append((c.direction, round(c.t, 3), i))
        results.append(out)
    assert results[0] == results[1] == results[2] and len(results[0]) == 1


def test_passing_beyond_an_end_of_the_segment_counts_nothing():
    below = walk(0.8, 0.2, y=0.9)  # the segment spans y 0.2 .. 0.8
    above = walk(0.2, 0.8, y=0.1)
    assert run(line(), below) == [] and run(line(), above) == []


def test_a_one_frame_flicker_to_the_other_side_and_back_counts_nothing():
    obs = [(i / 10, (0.55, 0.5)) for i in range(10)]
    obs.append((1.0, (0.45, 0.5)))  # one frame across, well beyond the distance threshold
    obs += [(1.1 + i / 10, (0.55, 0.5)) for i in range(10)]
    counter = line()
    assert run(counter, obs) == []


def test_an_id_switch_in_the_middle_of_a_crossing_counts_once():
    counter = line()
    obs = walk(0.8, 0.2)
    half = len(obs) // 2 - 2
    for t, p in obs[:half]:  # track 1 reaches the line...
        assert counter.observe(1, p, t) is None
    counter.continue_track(1, 2)  # ...and the tracker goes on with a new id
    crossings = [c for t, p in obs[half:] if (c := counter.observe(2, p, t)) is not None]
    assert [(c.track_id, c.direction) for c in crossings] == [(2, "in")]
    assert counter.end(1) is None and counter.end(2) is None


def test_once_per_direction_by_default_every_crossing_when_asked():
    there_and_back = walk(0.8, 0.2, seconds=2) + [(t + 2.0, p) for t, p in walk(0.2, 0.8, seconds=2)]
    twice = there_and_back + [(t + 4.0, p) for t, p in there_and_back]
    assert [d for d, _ in run(line(), twice)] == ["in", "out"]
    assert [d for d, _ in run(line(once=False), twice)] == ["in", "out", "in", "out"]


def test_a_track_that_ends_just_after_crossing_counts_if_it_went_far_enough():
    # The walk reaches the line between samples 19 and 20 (x 0.508 -> 0.492).
    just_before = walk(0.8, 0.2)[:20]
    just_past = walk(0.8, 0.2)[:21]  # last seen at x 0.492: across, under both thresholds
    went_far = walk(0.8, 0.2)[:22]  # last seen at x 0.477: 0.023 beyond, under the 1 s hold
    assert run(line(hold=1.0), just_before) == []
    assert run(line(hold=1.0, dist=0.01), just_past) == []
    assert [d for d, _ in run(line(hold=1.0, dist=0.01), went_far)] == ["in"]


def test_segment_crossing_geometry():
    assert crossing(A, B, (0.6, 0.5), (0.4, 0.5)) == pytest.approx(0.5)
    assert crossing(A, B, (0.6, 0.9), (0.4, 0.9)) is None  # beyond the end
    assert crossing(A, B, (0.5, 0.5), (0.4, 0.5)) is None  # starts on the line
    assert crossing(A, B, (0.6, 0.5), (0.5, 0.5)) is None  # ends on it: the next step decides
    square = np.array([[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]])
    assert inside_polygon(square, np.array([[0.5, 0.5], [0.9, 0.5]])).tolist() == [True, False]
    assert polygon_self_intersects([(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)])  # a bow tie
    assert not polygon_self_intersects([(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)])


# --- zones ---------------------------------------------------------------------------------------


def visits(zone: ZoneOccupancy, samples, track_id: int = 1, cls: str = "person"):
    out = []
    for t, inside in samples:
        out += [
            (e.kind, round(e.t, 2), e.dwell_s and round(e.dwell_s, 2))
            for e in zone.observe(track_id, cls, inside, t)
        ]
        assert all(v >= 0 for v in zone.occupancy.values())
    return out


def test_zone_enter_and_exit_with_dwell_at_any_rate():
    for fps in (2, 10, 30):
        samples = [(i / fps, 2.0 <= i / fps < 6.0) for i in range(round(8 * fps))]
        zone = ZoneOccupancy(enter_s=0.5, exit_s=1.0, loiter_s=None)
        events = visits(zone, samples)
        assert [e[0] for e in events] == ["enter", "exit"]
        assert events[0][1] == 2.0 and events[1][1] == 6.0  # the times it was first seen in, and out
        assert events[1][2] == 4.0
        assert zone.occupancy == {}


def test_a_flicker_at_the_edge_neither_enters_nor_leaves():
    zone = ZoneOccupancy(enter_s=0.5, exit_s=1.0, loiter_s=None)
    samples = [(i / 10, i % 7 == 0) for i in range(50)]  # inside one frame in seven
    assert visits(zone, samples) == []
    zone = ZoneOccupancy(enter_s=0.5, exit_s=1.0, loiter_s=None)
    samples = [(i / 10, i % 7 != 0) for i in range(100)]  # out one frame in seven
    assert [e[0] for e in visits(zone, samples)] == ["enter"]


def test_loiter_once_per_visit_and_exit_when_the_track_ends():
    zone = ZoneOccupancy(enter_s=0.0, exit_s=1.0, loiter_s=3.0)
    events = visits(zone, [(i / 10, True) for i in range(80)])
    assert [e[0] for e in events] == ["enter", "loiter"] and events[1][1] == 3.0
    (gone,) = zone.end(1, last_seen=7.9)
    assert (gone.kind, gone.t, round(gone.dwell_s or 0, 1)) == ("exit", 7.9, 7.9)
    assert zone.occupancy == {}


def test_occupancy_by_class_and_id_switches_inside_keep_it():
    zone = ZoneOccupancy(enter_s=0.0, exit_s=0.5, loiter_s=None)
    zone.observe(1, "person", True, 0.0)
    zone.observe(2, "person", True, 0.0)
    zone.observe(3, "car", True, 0.0)
    assert zone.occupancy == {"person": 2, "car": 1}
    zone.continue_track(1, 7)  # same person, new id: no exit, no enter
    assert zone.observe(7, "person", True, 0.1) == []
    assert zone.occupancy == {"person": 2, "car": 1}
    assert sorted(zone.inside()) == [2, 3, 7]
